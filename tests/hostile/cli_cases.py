"""Hostile file paths for every CLI entry point (issue 14 items 8, 9, 11): FIFOs, devices, folders, huge files."""

from __future__ import annotations

import os
from pathlib import Path

from .case import Case


def fifo(name: str):  # noqa: ANN201
    def make(tmp: Path) -> None:
        os.mkfifo(tmp / name)

    return make


CASES: list[Case] = [
    Case("validate-fifo", ("validate", "{tmp}/f.yaml"), setup=fifo("f.yaml"), timeout_s=5),
    Case("validate-missing", ("validate", "{tmp}/nope.yaml"), match="nope.yaml"),
    Case("validate-ok", ("validate", "tiny_cnn"), expect="ok"),
]
