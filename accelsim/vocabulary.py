"""Looking a row up by name in one of the vocabulary tables (schemes, requant modes, dynamic flavours,
weight formats), each a dict keyed by its name enum.

One lookup, so an unknown name is the same :class:`AccelsimError` for every table, wherever it arrives
(``simulate``, ``run_values``, the layer API, the CLI): one line naming what was wrong and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from accelsim.errors import AccelsimError

Name = TypeVar("Name", bound=StrEnum)
Row = TypeVar("Row")


def named_row(table: Mapping[Name, Row], name: str, what: str, path: str | None = None) -> Row:
    """The row of ``table`` named ``name`` (a plain string or its enum: a ``StrEnum`` equals its string);
    an unknown name is the user's mistake, reported at ``path`` (``what`` when not given)."""
    for key, row in table.items():  # a handful of rows: a scan, and no cast from the caller's string
        if key == name:
            return row
    raise AccelsimError(f"unknown {what} {name!r}", path=path or what, allowed=list(table))
