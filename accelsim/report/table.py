"""Plain-text tables and number formats for the terminal (and Markdown, which shares the grid)."""

from __future__ import annotations

from collections.abc import Sequence


def si(value: float, unit: str = "") -> str:
    """``4_089_184_256`` -> ``'4.09 G'``: three significant digits, SI prefix."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip() if isinstance(value, float) else f"{value} {unit}".rstrip()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """Left-aligned text columns, right-aligned numbers; ``markdown`` adds pipes and a rule."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    numeric = [all(is_number(r[i]) for r in cells[1:]) if rows else False for i in range(len(headers))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        return "| " + " | ".join(parts) + " |" if markdown else "  ".join(parts).rstrip()

    rule = (
        "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
        if markdown
        else "  ".join("-" * w for w in widths)
    )
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def is_number(text: str) -> bool:
    try:
        float(text.split()[0].replace(",", "").rstrip("x%"))
    except (ValueError, IndexError):
        return False
    return True
