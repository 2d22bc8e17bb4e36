"""Plain-text tables and number formats for the terminal (and Markdown, which shares the grid).

Terminal tables fit a width when given one: headers first wrap onto two lines (most headers are wider
than their numbers), then whole columns are hidden in the caller's order of least importance, and a
note names them. Hiding beats letting the terminal wrap every row into an unreadable zigzag.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence

SEPARATOR = "  "


def si(value: float, unit: str = "") -> str:
    """``4_089_184_256`` -> ``'4.09 G'``: three significant digits, SI prefix."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip() if isinstance(value, float) else f"{value} {unit}".rstrip()


#: energy units from picojoules up: reports show each energy in the largest that keeps it >= 1
ENERGY_UNITS = ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ"))


def energy_unit(pj: float) -> tuple[float, str]:
    """The (picojoules per unit, unit name) to show ``pj`` in: ``1.5e10`` -> ``(1e9, "mJ")``."""
    return next(((f, u) for f, u in ENERGY_UNITS if abs(pj) >= f), ENERGY_UNITS[-1])


def joules(pj: float) -> str:
    """``1.495e10`` (pJ) -> ``'15 mJ'``: three significant digits."""
    factor, unit = energy_unit(pj)
    return f"{pj / factor:.3g} {unit}"


def terminal_width(wide: bool = False) -> int | None:
    """Characters a table may take: the terminal's width (or ``COLUMNS``); ``None`` (no limit) with
    ``--wide`` or when the output is a file or a pipe, where nothing wraps it."""
    if wide:
        return None
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def format_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    markdown: bool = False,
    width: int | None = None,
    hide_order: Sequence[str] = (),
) -> str:
    """Left-aligned text columns, right-aligned numbers; ``markdown`` adds pipes and a rule.

    With ``width``, a wider terminal table wraps its headers onto two lines, then hides the columns named
    in ``hide_order`` (least important first) until it fits, and says which it hid."""
    names = [str(h) for h in headers]
    cells = [[str(c) for c in row] for row in rows]
    stacked = [[h] for h in names]
    keep = list(range(len(names)))
    if width is not None and not markdown and _grid_width(stacked, cells, keep) > width:
        stacked = [_two_lines(h) for h in names]
        for name in hide_order:
            if _grid_width(stacked, cells, keep) <= width:
                break
            keep.remove(names.index(name))
    table = _grid([stacked[i] for i in keep], [[r[i] for i in keep] for r in cells], markdown)
    hidden = [names[i] for i in range(len(names)) if i not in keep]
    if hidden and width is not None:  # columns are only hidden to fit a width
        note = f"({len(hidden)} columns hidden to fit {width} characters: {', '.join(hidden)}; --wide shows all)"
        table += "\n" + textwrap.fill(note, width)
    return table


def _two_lines(header: str) -> list[str]:
    """A header split at the space that makes its widest line narrowest (one line if it has no space)."""
    words = header.split(" ")
    splits = [[" ".join(words[:i]), " ".join(words[i:])] for i in range(1, len(words))]
    return min(splits, key=lambda pair: max(map(len, pair))) if splits else [header]


def _widths(stacked: list[list[str]], cells: list[list[str]], keep: list[int]) -> list[int]:
    return [max(len(text) for text in [*stacked[i], *(r[i] for r in cells)]) for i in keep]


def _grid_width(stacked: list[list[str]], cells: list[list[str]], keep: list[int]) -> int:
    return sum(_widths(stacked, cells, keep)) + len(SEPARATOR) * (len(keep) - 1)


def _grid(stacked: list[list[str]], cells: list[list[str]], markdown: bool) -> str:
    columns = list(range(len(stacked)))
    widths = _widths(stacked, cells, columns)
    numeric = [bool(cells) and all(is_number(r[i]) for r in cells) for i in columns]
    depth = max(len(s) for s in stacked) if stacked else 1
    header_lines = [[([""] * (depth - len(s)) + s)[line] for s in stacked] for line in range(depth)]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        return "| " + " | ".join(parts) + " |" if markdown else SEPARATOR.join(parts).rstrip()

    rule = (
        "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
        if markdown
        else SEPARATOR.join("-" * w for w in widths)
    )
    return "\n".join([*map(line, header_lines), rule, *map(line, cells)])


def is_number(text: str) -> bool:
    try:
        float(text.split()[0].replace(",", "").rstrip("x%"))
    except (ValueError, IndexError):
        return False
    return True
