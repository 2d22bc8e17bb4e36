"""Reading YAML files safely: ``yaml.safe_load`` semantics only, and every failure becomes an AccelsimError.

The loader is PyYAML's SafeLoader with three checks added, because plain safe_load accepts what a
config must not contain: a key given twice in one mapping (safe_load silently keeps the last one, so a
sweep once lost an axis value), nesting so deep that composing it exhausts Python's recursion limit,
and integer literals so long that ``int()`` refuses them (Python caps decimal conversions at 4300 digits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from accelsim import file_checks
from accelsim.errors import AccelsimError, format_path

#: Largest number of values a document may expand to once aliases are followed. Real configs have a
#: few thousand; an alias bomb ("billion laughs") has billions and would hang validation.
MAX_EXPANDED_NODES = 1_000_000
#: Larger files are certainly not hand-written configs.
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Deepest nesting of lists and mappings, aliases followed. Configs nest 4 levels; composing a document
#: recurses a few Python frames per level, so ~300 levels would raise RecursionError.
MAX_DEPTH = 32
#: Longest integer literal, in characters: far past any physical quantity (ranges are checked later)
#: and far below the 4300 digits where ``int()`` raises ValueError.
MAX_INT_CHARS = 100

_MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigYAMLError(yaml.MarkedYAMLError):
    """A document PyYAML would accept but a config must not be; ``path_mark`` locates the field."""

    def __init__(self, problem: str, mark: yaml.Mark | None, path_mark: yaml.Mark | None = None, key: str = "") -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.path_mark = path_mark
        self.key = key


class _StrictConstruction(yaml.constructor.SafeConstructor):
    """The checks made while constructing objects: duplicate keys and huge integers."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                    continue  # merged keys may be overridden; unhashable keys are PyYAML's error
                key = self.construct_object(key_node)
                if key in seen:
                    raise ConfigYAMLError(
                        f"duplicate key {key!r} at {_position(seen[key].start_mark)} and again at "
                        f"{_position(key_node.start_mark)} (each key may appear once in a mapping)",
                        key_node.start_mark,
                        node.start_mark,
                        str(key),
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]  # SafeConstructor checks the node kind itself

    def construct_yaml_int(self, node: ScalarNode) -> int:
        if len(node.value) > MAX_INT_CHARS:
            raise ConfigYAMLError(
                f"integer of {len(node.value)} digits (at most {MAX_INT_CHARS})", node.start_mark, node.start_mark
            )
        return super().construct_yaml_int(node)


class StrictSafeLoader(_StrictConstruction, yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, too-deep nesting, recursive aliases and huge integers."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._heights: dict[int, int] = {}  # id(node) -> nesting height, once composed

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        mark = self.peek_event().start_mark
        if self._depth >= MAX_DEPTH:
            raise ConfigYAMLError(f"nested more than {MAX_DEPTH} levels deep", mark)
        alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        assert node is not None  # None only past the stream's end, which compose_document checks first
        height = self._heights.get(id(node))
        if height is None:
            if alias:  # the anchored node is still being composed: it contains this alias
                raise ConfigYAMLError("an alias refers to a list or mapping that contains it", mark)
            height = 1 + max((self._heights[id(child)] for child in _children(node)), default=0)
            self._heights[id(node)] = height
        if self._depth + height > MAX_DEPTH:  # an alias brings its whole nesting along
            raise ConfigYAMLError(f"nested more than {MAX_DEPTH} levels deep once aliases are followed", mark)
        return node


class _LibyamlStrictLoader(_StrictConstruction, yaml.CSafeLoader):
    """The same constructor on libyaml's C parser and composer (a fifth of the time on a ResNet-50 workload).
    Its composer recurses in C and checks neither nesting nor recursive aliases, so it only composes a
    document whose events :func:`_nesting_fits` has cleared; every error comes from StrictSafeLoader."""


# types-PyYAML binds a constructor's self to the loader classes PyYAML ships, not to a subclass's mixin
StrictSafeLoader.add_constructor("tag:yaml.org,2002:int", StrictSafeLoader.construct_yaml_int)  # type: ignore[type-var]
_LibyamlStrictLoader.add_constructor("tag:yaml.org,2002:int", _LibyamlStrictLoader.construct_yaml_int)  # type: ignore[type-var]


def _nesting_fits(text: str) -> bool:
    """Whether ``text`` parses and nests, aliases followed, well inside MAX_DEPTH with every alias naming a
    node already complete (C composition is then safe); False sends it to StrictSafeLoader, which says why."""
    heights: dict[str | None, int] = {}  # anchor -> height of its node
    open_nodes: list[tuple[str | None, list[int]]] = []  # (anchor, [tallest child so far]) per open collection
    limit = MAX_DEPTH - 2  # a margin: StrictSafeLoader decides the cases near the limit
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            height = 0
            if isinstance(event, yaml.CollectionStartEvent):
                open_nodes.append((event.anchor, [0]))
                if len(open_nodes) > limit:
                    return False
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, tallest = open_nodes.pop()
                height = tallest[0] + 1
                if anchor is not None:
                    heights[anchor] = height
            elif isinstance(event, yaml.ScalarEvent):
                height = 1
                if event.anchor is not None:
                    heights[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                height = heights.get(event.anchor, limit + 1)  # unknown: not yet complete, or undefined
            if height and open_nodes:
                tallest = open_nodes[-1][1]
                tallest[0] = max(tallest[0], height)
                if len(open_nodes) + height > limit:
                    return False
    except yaml.YAMLError:
        return False
    return True


def _load(text: str) -> Any:
    """``text`` loaded by libyaml when it is plainly well-formed, else (and for every error) by StrictSafeLoader."""
    if _nesting_fits(text):
        try:
            return yaml.load(text, Loader=_LibyamlStrictLoader)
        except yaml.YAMLError:
            pass  # StrictSafeLoader reports it in its own words
    return yaml.load(text, Loader=StrictSafeLoader)


def _position(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


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
    where = f"{_position(mark)}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return where + problem


def _path_at(text: str, mark: yaml.Mark | None) -> str:
    """Dotted path of the node that starts at ``mark`` (composing nodes constructs no objects)."""
    if mark is None:
        return ""
    try:
        root = yaml.compose(text, Loader=StrictSafeLoader)
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
    """Parse YAML text with safe_load semantics (StrictSafeLoader); raise AccelsimError naming ``file``."""
    try:
        doc = _load(text)
    except ConfigYAMLError as exc:
        where = _path_at(text, exc.path_mark)
        path = ".".join(p for p in (where, exc.key) if p) if exc.key else where
        raise AccelsimError((exc.problem or "") if exc.key else _problem_line(exc), file=file, path=path) from None
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
            f"document expands to more than {MAX_EXPANDED_NODES:,} values through aliases (an alias bomb?)",
            file=file,
        )
    return doc


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Load a YAML file whose top level must be a mapping (every accelsim config is one)."""
    file = str(path)
    raw = file_checks.read_user_file(path, MAX_FILE_BYTES, expected="a YAML file")  # type and size before reading
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AccelsimError(f"not UTF-8 text (byte {exc.start})", file=file) from None
    doc = parse_yaml_text(text, file)
    if doc is None:
        raise AccelsimError("file is empty, expected a mapping with schema_version", file=file)
    if not isinstance(doc, dict):
        raise AccelsimError(f"top level is a {type(doc).__name__}, expected a mapping with schema_version", file=file)
    return doc
