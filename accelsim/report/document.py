"""A report as plain blocks, so the Markdown and the HTML render the same content from one source."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    """Text with the inline markup both renderers understand: ``**bold**`` and ```code```."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    """An SVG plot: a file ``figures/<name>.svg`` beside the Markdown, inline data in the HTML."""

    name: str
    caption: str
    svg: bytes


Block = Paragraph | Bullets | Table | Image


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block]
    #: long reference material (per-layer tables) the HTML folds away
    collapsed: bool = False


@dataclass(frozen=True)
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)

    @property
    def images(self) -> list[Image]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Image)]
