"""Configs load through libyaml when they are plainly well-formed; what they load to, and every error, is
StrictSafeLoader's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from accelsim.config import yaml_source
from accelsim.config.yaml_source import MAX_DEPTH, StrictSafeLoader, parse_yaml_text
from accelsim.errors import AccelsimError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*ROOT.glob("workloads/*.yaml"), *ROOT.glob("hwconfigs/*.yaml"), *ROOT.glob("sweeps/*.yaml")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_configs_take_the_libyaml_path_and_load_the_same(path: Path) -> None:
    text = path.read_text()
    assert yaml_source._nesting_fits(text)
    assert parse_yaml_text(text, str(path)) == yaml.load(text, Loader=StrictSafeLoader)


def _nested(levels: int) -> str:
    return "a: " + "[" * levels + "]" * levels


@pytest.mark.parametrize(
    "text",
    [
        _nested(MAX_DEPTH + 5),  # too deep for either
        "a: &x [1, *x]",  # an alias inside the node it names
        "a: *nowhere",  # an undefined alias
        "b: &x " + _nested(MAX_DEPTH - 3)[3:] + "\nc: [[[[*x]]]]",  # deep only once the alias is followed
    ],
    ids=["deep", "recursive-alias", "undefined-alias", "deep-through-alias"],
)
def test_nesting_or_alias_trouble_goes_to_the_strict_loader(text: str) -> None:
    """libyaml's composer recurses in C without these checks: such documents never reach it, and the error
    is StrictSafeLoader's own."""
    assert not yaml_source._nesting_fits(text)
    with pytest.raises(AccelsimError):
        parse_yaml_text(text, "t.yaml")
    with pytest.raises(yaml.YAMLError):
        yaml.load(text, Loader=StrictSafeLoader)


def test_errors_after_composition_read_as_the_strict_loaders() -> None:
    """A duplicate key passes the nesting check; the message is StrictSafeLoader's (path and both lines)."""
    text = "array:\n  rows: 4\n  rows: 8\n"
    assert yaml_source._nesting_fits(text)
    with pytest.raises(AccelsimError, match=r"duplicate key 'rows' at line 2, column 3 and again at line 3, column 3"):
        parse_yaml_text(text, "t.yaml")
