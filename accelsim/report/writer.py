"""``write_report``: a results folder in, ``report.md`` (+ ``figures/*.svg``) and ``report.html`` out."""

from __future__ import annotations

from pathlib import Path

from accelsim.atomic_file import write_atomic
from accelsim.report.document import Document
from accelsim.report.html import render_html
from accelsim.report.markdown import FIGURE_DIR, render_markdown
from accelsim.report.performance import performance_document
from accelsim.report.results import load_results


def write_document(folder: Path, document: Document) -> tuple[Path, Path]:
    """Write ``document`` into ``folder`` as ``report.md`` (+ ``figures/*.svg``) and ``report.html``.

    Figures go first so the Markdown never links a missing file; figures a previous report wrote and
    this one does not (e.g. SQNR once values are gone) are removed so the folder matches the report.
    """
    figures = folder / FIGURE_DIR
    written = {write_atomic(figures / f"{image.name}.svg", image.svg) for image in document.images}
    for stale in set(figures.glob("*.svg")) - written:
        stale.unlink()
    markdown = write_atomic(folder / "report.md", render_markdown(document))
    html = write_atomic(folder / "report.html", render_html(document))
    return markdown, html


def write_report(results_dir: Path) -> tuple[Path, Path]:
    """Write the report of a ``run``/``compare`` folder into it; returns (Markdown, HTML) paths."""
    results = load_results(Path(results_dir))
    return write_document(results.folder, performance_document(results))
