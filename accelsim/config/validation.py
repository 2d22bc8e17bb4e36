"""Pydantic glue: strict models that reject unknown keys, and ValidationError -> AccelsimError."""

from __future__ import annotations

import re
import typing
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, ValidationError, model_serializer

from accelsim.errors import AccelsimError, format_path

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys and silent type coercion are user errors.

    Each model builds its validator when first used, not when its class is defined (``defer_build``): a
    workload's validator holds its layers' schemas, so building each layer's own as well, or the hardware's
    when validating a workload, cost 2% of ``accelsim validate`` (tests/test_lazy_plumbing.py)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class WithLaterFields(StrictModel):
    """A model that gained fields after results were first stored: its dump leaves each such field out while
    it holds its default, so a config that does not use them dumps as before and its results folders, sweep
    point ids and config digests stay valid."""

    #: field name -> the default that is left out of dumps
    later_fields: ClassVar[dict[str, Any]] = {}

    @model_serializer(mode="wrap")
    def _without_unset_additions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key, default in self.later_fields.items():
            if data.get(key, default) == default:
                data.pop(key, None)
        return data


class FieldError(ValueError):
    """Raised inside model validators to point at a field other than the validator's own."""

    def __init__(self, loc: tuple[str | int, ...], message: str, allowed: Any = None) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.allowed = allowed
        self.more = 0  # further problems it stands for (:func:`first_problem`)

    def __str__(self) -> str:
        """The message after its field's path: what pydantic's own error text shows (``Workload.model_validate``
        called directly), where the CLI's line puts the path first itself."""
        return f"{format_path(self.loc)}: {self.message}" if self.loc else self.message


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModel classes an annotation may hold (through Optional, Union, list, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None:
        return []
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_model_classes(arg))
    return out


#: How pydantic names the schema it tried (``constrained-int``, ``function-before[...]``, ``list[int]``):
#: such location parts are its internals, never a field users wrote.
_SCHEMA_TAG = re.compile(
    r"[a-z]+(-[a-z]+)*\[.*\]|(constrained|function|lax|strict|json-or-python|is-instance)-.*"
    r"|int|float|str|bool|bytes|none|list|dict|tuple"
)


def _walk(root: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], list[type[BaseModel]]]:
    """Follow a pydantic location from ``root``: the location as users wrote it (pydantic's schema names
    dropped) and the model classes that may hold its end (none past a scalar)."""
    out: list[str | int] = []
    current: list[type[BaseModel]] = [root]
    for part in loc:
        if isinstance(part, str):
            if current and not any(part in cls.model_fields for cls in current):
                continue  # inside a model, a part that is no field is a schema name
            if not current and _SCHEMA_TAG.fullmatch(part):
                continue
        out.append(part)
        if isinstance(part, str):
            current = [
                m
                for cls in current
                if part in cls.model_fields
                for m in _model_classes(cls.model_fields[part].annotation)
            ]
    return tuple(out), current


#: What a value of the wrong type should have been, for pydantic's type errors.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "text",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _listing(expected: str | None) -> str | None:
    """pydantic's "'os', 'ws' or 'is'" as users write the values: "os, ws, is"."""
    return expected.replace("'", "").replace(" or ", ", ") if expected else None


def describe(value: Any) -> str:
    """A value as the message shows it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(root: type[BaseModel], err: ErrorDetails) -> tuple[tuple[str | int, ...], str, Any]:
    """One pydantic error as (location as users wrote it, message, what is allowed)."""
    ctx = err.get("ctx") or {}
    original = ctx.get("error")
    loc = _walk(root, tuple(err["loc"]))[0]
    if err["type"] == "extra_forbidden":  # the unknown key is no field, but it is what the user wrote
        loc = _walk(root, tuple(err["loc"])[:-1])[0] + tuple(err["loc"])[-1:]
    if isinstance(original, FieldError):
        return loc + original.loc, original.message, original.allowed
    kind = err["type"]
    allowed: Any = None
    if kind == "extra_forbidden":
        parents = _walk(root, tuple(err["loc"])[:-1])[1]
        message = "unknown field"
        allowed = sorted(parents[0].model_fields) if len(parents) == 1 else None
    elif kind == "missing":
        message = "required field is missing"
    elif kind in ("literal_error", "enum"):  # a Literal, or an enum such as SchemeName: one message
        message = f"{describe(err['input'])} is not allowed"
        allowed = _listing(ctx.get("expected"))
    else:
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        message = f"{msg[0].lower()}{msg[1:]}, got {describe(err['input'])}"
        allowed = _EXPECTED.get(kind)
    return loc, message, allowed


def first_problem(model: type[BaseModel], exc: ValidationError) -> FieldError:
    """``exc``'s first problem, located within ``model``, as a FieldError that counts the others: how a
    validator that hands a value to another model's validator (a workload's layer to its type's) reports
    its problems where they are, and as many as they are."""
    errors = exc.errors()
    error = FieldError(*_problem(model, errors[0]))
    error.more = len(errors) - 1 + sum(_more(e) for e in errors)
    return error


def _more(err: ErrorDetails) -> int:
    """Problems behind one error beyond itself: a :func:`first_problem` carries the rest of its model's."""
    original = (err.get("ctx") or {}).get("error")
    return original.more if isinstance(original, FieldError) else 0


def validate(model: type[M], data: Any, file: str | None = None) -> M:
    """Validate ``data`` into ``model``; the first problem becomes one AccelsimError line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = first_problem(model, exc)
        first = AccelsimError(problem.message, file=file, path=format_path(problem.loc), allowed=problem.allowed)
        first.more = problem.more
        raise first from None
