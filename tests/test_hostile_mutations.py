"""Hypothesis mutations of every shipped YAML file through ``accelsim validate`` (issue 14).

Each mutation (a key deleted or duplicated, a value's type swapped, a number made huge, negative, zero
or non-finite, a string given path separators or control characters, a value nested deeply or made a
5000-digit integer) must either validate (exit 0) or fail cleanly: exit 2, at most 3 lines on stderr,
no traceback, within a deadline. Mutations that can never be valid must fail.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.cli import main
from tests.hostile.case import deadline

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(
    [*REPO.glob("workloads/*.yaml"), *REPO.glob("hwconfigs/*.yaml"), *REPO.glob("hwconfigs/sweeps/*.yaml")]
)
DOCS = {path.name: yaml.safe_load(path.read_text()) for path in SHIPPED}
DEADLINE_S = 10
#: placeholders for values safe_dump cannot write (too deep, too many digits): spliced into the text
DEEP, LONG_INT = "__deep_nesting__", "__long_integer__"
SPLICES = {DEEP: "[" * 400 + "]" * 400, LONG_INT: "9" * 5000}

NUMBERS = [0, -1, -0.5, 10**30, 1e308, float("inf"), float("-inf"), float("nan"), 2**63, 1e-300]
STRINGS = ["../../x", "/abs/dir", "a/b", "..", ".", "a\0b", "a\nb", "\x1b[31m", "x" * 500, "", " ", "C:\\x"]
OTHERS: list[Any] = [None, True, [], {}, [1, 2, 3], {"a": 1}, "text", 7, 2.5, DEEP, LONG_INT]


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in ``doc`` (mapping keys and list indices), parents before children."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths(value, (*prefix, i))
    return out


def replace(doc: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    """A copy of ``doc`` with the value at ``path`` replaced (or deleted)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    if rest:
        copy[head] = replace(doc[head], rest, value, delete)
    elif delete:
        del copy[head]
    else:
        copy[head] = value
    return copy


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, bool]:
    """(file name, mutated YAML text, whether the mutation can never be valid)."""
    name = draw(st.sampled_from(sorted(DOCS)))
    doc = DOCS[name]
    kind = draw(st.sampled_from(["delete", "number", "string", "other", "duplicate", "deep", "name"]))
    path = draw(st.sampled_from(paths(doc)))
    must_fail = False
    if kind == "delete":
        doc = replace(doc, path, None, delete=True)
    elif kind == "number":
        value = draw(st.sampled_from(NUMBERS))
        leaf = at(doc, path)
        doc = replace(doc, path, value)
        # every number a hardware config or workload gives has a finite, bounded range
        must_fail = (
            isinstance(leaf, (int, float))
            and not isinstance(leaf, bool)
            and "axes" not in path
            and value in (10**30, 1e308, float("inf"), float("-inf"))
        )
        must_fail |= isinstance(leaf, float) and math.isnan(value)
    elif kind == "string":
        doc = replace(doc, path, draw(st.sampled_from(STRINGS)))
    elif kind == "other":
        value = draw(st.sampled_from(OTHERS))
        doc = replace(doc, path, value)
        must_fail = value in (DEEP, LONG_INT)
    elif kind == "deep":
        doc = replace(doc, path, DEEP)
        must_fail = True
    elif kind == "name" and "name" in doc:
        doc = replace(doc, ("name",), draw(st.sampled_from(STRINGS)))
        must_fail = True
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=False)
    for placeholder, splice in SPLICES.items():
        text = text.replace(placeholder, splice)
    if kind == "duplicate":
        key = draw(st.sampled_from(sorted(doc)))
        text += yaml.safe_dump({key: doc[key]}, sort_keys=False)
        must_fail = True
    return name, text, must_fail


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mutations")


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=mutations())
def test_mutated_shipped_yaml_validates_or_fails_cleanly(mutation: tuple[str, str, bool], folder: Path) -> None:
    name, text, must_fail = mutation
    path = folder / name
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), deadline(DEADLINE_S):
        code = main(["validate", str(path)])
    stderr = err.getvalue()
    assert "Traceback" not in stderr, stderr
    assert code in (0, 2), (code, stderr)
    if code == 2:
        lines = stderr.strip().splitlines()
        assert 0 < len(lines) <= 3 and lines[0].startswith(f"accelsim: error: {path}"), stderr
    else:
        assert not must_fail, f"a mutation that can never be valid validated:\n{text[:2000]}"


def test_mutations_cover_every_shipped_file() -> None:
    """The shipped files are all found and all valid unmutated (so a failure is the mutation's)."""
    assert {p.parent.name for p in SHIPPED} == {"workloads", "hwconfigs", "sweeps"} and len(SHIPPED) >= 10
    for path in SHIPPED:
        assert main(["validate", str(path)]) == 0
