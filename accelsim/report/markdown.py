"""Render a ``Document`` as Markdown that links its plots as relative files (``figures/*.svg``)."""

from __future__ import annotations

from accelsim.report.document import Bullets, Document, Image, Paragraph, Table
from accelsim.report.table import format_table

FIGURE_DIR = "figures"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(document: Document) -> str:
    out = [f"# {document.title}"]
    for section in document.sections:
        out.append(f"## {section.title}")
        for block in section.blocks:
            if isinstance(block, Paragraph):
                out.append(block.text)
            elif isinstance(block, Bullets):
                out.append("\n".join(f"- {item}" for item in block.items))
            elif isinstance(block, Table):
                out.append(format_table(block.headers, [[_cell(c) for c in row] for row in block.rows], markdown=True))
            elif isinstance(block, Image):
                out.append(f"![{block.name}]({FIGURE_DIR}/{block.name}.svg)\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"
