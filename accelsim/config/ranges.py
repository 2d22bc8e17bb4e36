"""Plausible ranges for every physical quantity in a config, and the names that may become file names.

A config that asks for 10^30 PEs, a 10^9 batch or an infinite SRAM describes no machine and no network;
running it only ends in overflow, a ZeroDivisionError or hours of work. So every number is checked
against a documented range (docs/hardware.md, docs/workloads.md give the reason for each bound) and
the error says what is allowed. The checks run before pydantic's strict type check, so a wrong type
gets the same message, with the range, as a wrong value.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BeforeValidator

from accelsim.config.validation import FieldError
from accelsim.config.validation import describe as _describe


def _number(value: float) -> str:
    """``4096`` -> ``4,096``, ``0.0009765625`` as is: bounds read as users would write them."""
    return f"{value:,}" if float(value).is_integer() and abs(value) >= 1 else repr(value)


def _check_number(value: Any, lo: float, hi: float, unit: str, integer: bool) -> Any:
    kind = "a whole number" if integer else "a number"
    allowed = f"{kind} from {_number(lo)} to {_number(hi)}{' ' + unit if unit else ''}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        hint = ""
        if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9]+[eE][-+]?[0-9]+", value.strip()):
            hint = " (YAML reads 1e3 as text: write 1000 or 1.0e+3)"
        raise FieldError((), f"{_describe(value)} is not {kind}{hint}", allowed)
    if not math.isfinite(value):
        raise FieldError((), f"{value} is not a finite number", allowed)
    if not lo <= value <= hi:
        shown = f"{value:.3g}" if abs(value) >= 1e15 or (value and abs(value) < 1e-4) else _describe(value)
        raise FieldError((), f"{shown} is outside the plausible range", allowed)
    return value


def whole(lo: int, hi: int, unit: str = "") -> BeforeValidator:
    """An int field in ``lo..hi``: ``Annotated[int, whole(1, 4096, "PEs")]``."""
    return BeforeValidator(lambda value: _check_number(value, lo, hi, unit, integer=True))


def whole_number(value: Any, lo: int, hi: int, unit: str = "") -> Any:
    """``value`` checked as a :func:`whole` field checks it, for values read outside a model (CSV cells)."""
    return _check_number(value, lo, hi, unit, integer=True)


def number(lo: float, hi: float, unit: str = "") -> BeforeValidator:
    """A finite float field in ``lo..hi`` (whole numbers are accepted too)."""
    return BeforeValidator(lambda value: _check_number(value, lo, hi, unit, integer=False))


def pair(lo: int, hi: int, unit: str = "") -> BeforeValidator:
    """A whole number in range, or a list of two (height, width): kernel, stride, padding, dilation."""

    def check(value: Any) -> Any:
        if isinstance(value, list):
            if len(value) != 2:
                raise FieldError(
                    (),
                    f"a list of {len(value)} values",
                    f"a whole number from {lo} to {hi}{' ' + unit if unit else ''}, or a list of two [height, width]",
                )
            for i, item in enumerate(value):
                try:
                    _check_number(item, lo, hi, unit, integer=True)
                except FieldError as exc:
                    raise FieldError((i,), exc.message, exc.allowed) from None
            return value
        return _check_number(value, lo, hi, unit, integer=True)

    return BeforeValidator(check)


#: Names that become folder or file names (hardware and workload ``name``, the results folder): a
#: letter or digit first (no ``.``, ``..``, hidden files or option-like ``-x``), then letters, digits and
#: ``. _ + -`` only: no separator, no NUL or control character, nothing a shell or a filesystem treats
#: specially.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
PLAIN_NAME_MAX = 64
PLAIN_NAME_ALLOWED = f"1 to {PLAIN_NAME_MAX} letters, digits and . _ + - , the first a letter or digit"
#: Layer names never become paths (they are references between layers and table labels), so they may
#: hold ONNX-style names like ``/layer1/conv/Conv``; only what breaks one-line messages is refused.
LABEL_MAX = 100


def _plain_name(value: Any) -> Any:
    if isinstance(value, str) and not (len(value) <= PLAIN_NAME_MAX and PLAIN_NAME.fullmatch(value)):
        raise FieldError((), f"{_describe(value)} cannot be used as a folder name", PLAIN_NAME_ALLOWED)
    return value


def _label(value: Any) -> Any:
    if isinstance(value, str) and not (0 < len(value) <= LABEL_MAX and value.isprintable()):
        raise FieldError(
            (),
            f"{_describe(value)} is not a usable name",
            f"1 to {LABEL_MAX} printable characters (no control characters or line breaks)",
        )
    return value


#: ``Annotated[str, PLAIN_NAME_CHECK]``: a name that becomes a folder name.
PLAIN_NAME_CHECK = BeforeValidator(_plain_name)
#: ``Annotated[str, LABEL_CHECK]``: a layer or tensor name, shown in tables and messages.
LABEL_CHECK = BeforeValidator(_label)


def plain_name(text: str, fallback: str) -> str:
    """``text`` turned into a plain name (other characters become ``_``), or ``fallback`` if nothing is left."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", text).lstrip("._+-")[:PLAIN_NAME_MAX]
    return name or fallback
