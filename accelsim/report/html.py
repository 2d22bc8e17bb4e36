"""Render a ``Document`` as one self-contained HTML file: plots inline as data URIs, no network needed."""

from __future__ import annotations

import base64
import re
from html import escape

from accelsim.report.document import Block, Bullets, Document, Image, Paragraph, Section, Table
from accelsim.report.table import is_number

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 66rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.8rem 0; }
th, td { padding: 0.2rem 0.35rem; border-bottom: 1px solid #eee; text-align: left; }
td { white-space: nowrap; } th { vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; }
code { background: #f4f4f4; padding: 0 0.2rem; }
summary { cursor: pointer; font-weight: 600; }
"""


def _inline(text: str) -> str:
    """Escape, then the two inline marks paragraphs may carry."""
    html = escape(text, quote=False)
    html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", html)


def _table(table: Table) -> str:
    numeric = [bool(table.rows) and all(is_number(row[i]) for row in table.rows) for i in range(len(table.headers))]
    cls = [' class="num"' if n else "" for n in numeric]
    # "bias+scales MB" may break after the "+" too: a header, not its numbers, sets most columns' width
    head = "".join(f"<th{c}>{escape(h).replace('+', '+<wbr>')}</th>" for h, c in zip(table.headers, cls))
    body = "".join(
        "<tr>" + "".join(f"<td{c}>{escape(v)}</td>" for v, c in zip(row, cls)) + "</tr>" for row in table.rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        data = base64.b64encode(block.svg).decode("ascii")
        return (
            f'<figure id="{escape(block.name)}"><img src="data:image/svg+xml;base64,{data}" '
            f'alt="{escape(block.caption)}"><figcaption>{_inline(block.caption)}</figcaption></figure>'
        )
    raise TypeError(f"unknown block {type(block).__name__}")


def _section(section: Section) -> str:
    body = "\n".join(_block(b) for b in section.blocks)
    if section.collapsed:
        return f"<h2>{escape(section.title)}</h2>\n<details><summary>show</summary>\n{body}\n</details>"
    return f"<h2>{escape(section.title)}</h2>\n{body}"


def render_html(document: Document) -> str:
    sections = "\n".join(_section(s) for s in document.sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(document.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(document.title)}</h1>\n{sections}\n</body>\n</html>\n"
    )
