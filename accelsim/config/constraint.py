"""Sweep constraints: a tiny expression language over a hardware config, parsed with ``ast``, never ``eval``.

A constraint such as ``sram.ifmap_kib + sram.filter_kib + sram.ofmap_kib <= 1024`` is parsed once into
a tree whose every node is checked against a short allow-list (numbers, strings, dotted field names,
arithmetic, comparisons, ``and``/``or``/``not``), then interpreted against each point's config. There is
no call, attribute of an object, subscript, power or comprehension, so a spec cannot run code or ask
for an unbounded amount of work.
"""

from __future__ import annotations

import ast
import operator
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from accelsim.config.hardware import HardwareConfig

MAX_LENGTH = 500

#: Values a config computes from its fields, usable by name in constraints.
DERIVED = {
    "pe_count": "array.rows * array.cols",
    "sram_total_kib": "sram.ifmap_kib + sram.filter_kib + sram.ofmap_kib",
    "dram_bytes_per_cycle": "DRAM bytes per cycle, whichever way the bandwidth is given",
}

_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARISONS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
ALLOWED = "numbers, 'strings', dotted field names, + - * / // %, < <= > >= == !=, and, or, not, parentheses"


class ConstraintError(ValueError):
    """A constraint that cannot be parsed or evaluated; the caller adds the file and field."""


def _dotted(node: ast.expr) -> str | None:
    """``sram.ifmap_kib`` from its Attribute/Name chain, or None if the node is anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def hardware_fields(model: type[BaseModel] = HardwareConfig, prefix: str = "") -> list[str]:
    """Every dotted leaf field of a config model (``array.rows``, ``dram.latency_cycles``, ...)."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        nested = [
            a
            for a in typing.get_args(info.annotation) or (info.annotation,)
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        out.extend(hardware_fields(nested[0], f"{prefix}{name}.") if nested else [f"{prefix}{name}"])
    return out


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: ``holds(hw)`` says whether a point's config may run."""

    text: str
    tree: ast.Expression

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if len(text) > MAX_LENGTH:
            raise ConstraintError(f"constraint is longer than {MAX_LENGTH} characters")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ConstraintError(f"cannot parse {text!r}: {exc.msg}") from None
        if not isinstance(tree.body, (ast.Compare, ast.BoolOp)) and not (
            isinstance(tree.body, ast.UnaryOp) and isinstance(tree.body.op, ast.Not)
        ):
            raise ConstraintError(f"{text!r} is not a comparison (write e.g. 'array.rows * array.cols <= 4096')")
        _check(tree.body, text, set(hardware_fields()) | set(DERIVED))
        return cls(text, tree)

    def holds(self, hw: HardwareConfig) -> bool:
        return bool(_evaluate(self.tree.body, hw, self.text))


def _check(node: ast.expr, text: str, known: set[str]) -> None:
    """Reject every node outside the allow-list; names must be fields of the hardware config."""
    if isinstance(node, (ast.Attribute, ast.Name)):
        name = _dotted(node)
        if name is None:
            raise ConstraintError(f"{text!r}: only dotted field names may be used, not {ast.unparse(node)!r}")
        if name not in known:
            raise ConstraintError(
                f"{text!r}: unknown field {name!r} (fields like array.rows, sram.ifmap_kib, or {', '.join(DERIVED)})"
            )
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float, str)):
            raise ConstraintError(f"{text!r}: constant {node.value!r} is not allowed; use numbers or 'strings'")
        return
    children: list[ast.expr]
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        children = [node.left, node.right]
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        children = [node.operand]
    elif isinstance(node, ast.BoolOp):
        children = node.values
    elif isinstance(node, ast.Compare) and all(type(op) in _COMPARISONS for op in node.ops):
        children = [node.left, *node.comparators]
    else:
        raise ConstraintError(f"{text!r}: {ast.unparse(node)!r} is not allowed (allowed: {ALLOWED})")
    for child in children:
        _check(child, text, known)


def _number(value: Any, text: str) -> float | int:
    """Arithmetic is on numbers only: ``'ws' * 10**9`` must not build a gigabyte string."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConstraintError(f"{text!r}: arithmetic needs numbers, got {value!r}")
    return value


def _lookup(name: str, hw: HardwareConfig, text: str) -> Any:
    if name in DERIVED:
        return getattr(hw, name)
    value: Any = hw
    for part in name.split("."):
        value = getattr(value, part)
    if value is None:
        raise ConstraintError(f"{text!r}: {name} is not set in this config")
    return value


def _evaluate(node: ast.expr, hw: HardwareConfig, text: str) -> Any:
    """Interpret a checked tree; only the node kinds ``_check`` allows can reach here."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Attribute, ast.Name)):
        return _lookup(_dotted(node) or "", hw, text)
    try:
        if isinstance(node, ast.BinOp):
            left = _number(_evaluate(node.left, hw, text), text)
            return _ARITHMETIC[type(node.op)](left, _number(_evaluate(node.right, hw, text), text))
        if isinstance(node, ast.UnaryOp):
            value = _evaluate(node.operand, hw, text)
            if isinstance(node.op, ast.Not):
                return not value
            return -_number(value, text) if isinstance(node.op, ast.USub) else _number(value, text)
        if isinstance(node, ast.BoolOp):
            values = (_evaluate(v, hw, text) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare):
            left = _evaluate(node.left, hw, text)
            for op, right_node in zip(node.ops, node.comparators):
                right = _evaluate(right_node, hw, text)
                if not _COMPARISONS[type(op)](left, right):
                    return False
                left = right
            return True
    except ZeroDivisionError:
        raise ConstraintError(f"{text!r}: division by zero") from None
    except TypeError as exc:  # e.g. 'ws' < 4
        raise ConstraintError(f"{text!r}: {exc}") from None
    raise ConstraintError(f"{text!r}: cannot evaluate {ast.unparse(node)!r}")
