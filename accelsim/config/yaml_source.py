"""Reading YAML files safely: ``yaml.safe_load`` only, and every failure becomes an AccelsimError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from accelsim.config.errors import AccelsimError, format_path

#: Largest number of values a document may expand to once aliases are followed. Real configs have a
#: few thousand; an alias bomb ("billion laughs") has billions and would hang validation.
MAX_EXPANDED_NODES = 1_000_000
#: Larger files are certainly not hand-written configs.
MAX_FILE_BYTES = 16 * 1024 * 1024


def expanded_size(doc: Any, limit: int = MAX_EXPANDED_NODES) -> int:
    """Number of values ``doc`` has when every alias is expanded, computed without expanding.

    Stops counting past ``limit``. Shared sub-objects (how safe_load represents aliases) are
    measured once and counted at each use, so a bomb is detected in time linear in the file.
    """
    memo: dict[int, int] = {}

    def size(obj: Any) -> int:
        key = id(obj)
        if key in memo:
            return memo[key]
        if isinstance(obj, dict):
            children = list(obj.keys()) + list(obj.values())
        elif isinstance(obj, list):
            children = obj
        else:
            return 1
        memo[key] = limit + 1  # a self-referencing alias counts as unbounded
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        memo[key] = min(total, limit + 1)
        return memo[key]

    return size(doc)


def _problem_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return where + problem


def _path_at(text: str, mark: yaml.Mark | None) -> str:
    """Dotted path of the node that starts at ``mark`` (composing nodes constructs no objects)."""
    if mark is None:
        return ""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return ""
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())] if root is not None else []
    while stack:
        node, loc = stack.pop()
        if node.start_mark.line == mark.line and node.start_mark.column == mark.column and loc:
            return format_path(loc)
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, (*loc, str(key.value))) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return ""


def parse_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text with ``yaml.safe_load``; raise AccelsimError naming ``file`` on any problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        raise AccelsimError(
            f"{_problem_line(exc)} (tags that construct objects are never loaded)",
            file=file,
            path=_path_at(text, exc.problem_mark),
            allowed="plain YAML: mappings, lists, strings, numbers, booleans, null",
        ) from None
    except yaml.YAMLError as exc:
        raise AccelsimError(f"YAML syntax error: {_problem_line(exc)}", file=file) from None
    if expanded_size(doc) > MAX_EXPANDED_NODES:
        raise AccelsimError(
            f"document expands to more than {MAX_EXPANDED_NODES:,} values through aliases "
            "(an alias bomb?)",
            file=file,
        )
    return doc


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Load a YAML file whose top level must be a mapping (every accelsim config is one)."""
    file = str(path)
    p = Path(path)
    if not p.exists():
        raise AccelsimError("file not found", file=file)
    if p.is_dir():
        raise AccelsimError("is a directory, expected a YAML file", file=file)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise AccelsimError(f"cannot read file: {exc.strerror}", file=file) from None
    if len(raw) > MAX_FILE_BYTES:
        raise AccelsimError(f"file is larger than {MAX_FILE_BYTES // 2**20} MiB", file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AccelsimError(f"not UTF-8 text (byte {exc.start})", file=file) from None
    doc = parse_yaml_text(text, file)
    if doc is None:
        raise AccelsimError("file is empty, expected a mapping with schema_version", file=file)
    if not isinstance(doc, dict):
        raise AccelsimError(
            f"top level is a {type(doc).__name__}, expected a mapping with schema_version", file=file
        )
    return doc
