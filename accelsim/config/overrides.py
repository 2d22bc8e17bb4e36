"""Command-line overrides by dotted path (``--set array.rows=64``), applied before validation."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from accelsim.config.yaml_source import parse_yaml_text
from accelsim.errors import AccelsimError

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """``layers[2].stride`` or ``layers.2.stride`` -> ``['layers', 2, 'stride']``."""
    parts: list[str | int] = []
    pos = 0
    for match in _PART.finditer(path):
        gap = path[pos : match.start()]
        if gap not in ("", "."):
            break
        key, index = match.groups()
        parts.append(int(index) if index is not None else (int(key) if key.isdigit() else key))
        pos = match.end()
    if not parts or pos != len(path):
        raise AccelsimError(
            f"cannot parse path {path!r}", path="--set", allowed="dotted paths like array.rows or layers[0].stride"
        )
    return parts


def set_path(doc: dict[str, Any], path: str, value: Any, file: str, *, option: str = "--set ") -> None:
    """Set ``value`` at ``path`` in ``doc``; every level but the last must already exist. Errors start with
    ``option`` and the path (a sweep's workload ``set`` names its own location instead: ``option=""``)."""
    parts = parse_path(path)
    node: Any = doc
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(str(p) for p in parts[: depth + 1])
        if isinstance(node, dict) and isinstance(part, str):
            if last:
                node[part] = value
                return
            if part not in node:
                raise AccelsimError(f"{option}{path}: no field {here!r}", file=file, allowed=sorted(node))
        elif isinstance(node, list) and isinstance(part, int):
            if not 0 <= part < len(node):
                raise AccelsimError(
                    f"{option}{path}: index {part} out of range", file=file, allowed=f"0..{len(node) - 1}"
                )
            if last:
                node[part] = value
                return
        else:
            raise AccelsimError(f"{option}{path}: {here!r} does not exist", file=file)
        node = node[part]


def apply_overrides(doc: dict[str, Any], overrides: Iterable[str], file: str) -> dict[str, Any]:
    """A copy of ``doc`` with each ``PATH=VALUE`` applied; values are parsed as YAML scalars/lists."""
    doc = copy.deepcopy(doc)
    for item in overrides:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            raise AccelsimError(f"--set {item!r}: expected PATH=VALUE", file=file, allowed="e.g. --set array.rows=64")
        set_path(doc, path.strip(), parse_yaml_text(text, f"--set {path.strip()}"), file)
    return doc
