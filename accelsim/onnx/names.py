"""Unique names: ONNX graphs may reuse or omit node names, but layers and tensors need one name each."""

from __future__ import annotations


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base#2``, ``base#3``... the first not in ``taken``; the name is added to ``taken``."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}#{n}"
    taken.add(name)
    return name
