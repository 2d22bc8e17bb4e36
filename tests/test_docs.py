"""The README's commands are what CI runs, its YAML examples are valid, and every field is documented."""

from __future__ import annotations

import re
import shlex
import shutil
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from accelsim.cli import main
from accelsim.config.hardware import HardwareConfig
from accelsim.config.validation import validate
from accelsim.config.workload import Layer, Workload

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)


def test_ci_runs_the_readme_install_and_test_commands() -> None:
    main_job, tests = blocks(README, "bash")[:2]
    install, test_command = [part.strip() for part in tests.strip().split("&&")]
    ci = [
        line.strip()
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ci.index(install) < ci.index(test_command)
    assert main_job.strip().startswith("pip install -e . && accelsim ")


def test_readme_main_job_runs(capsys: typing.Any, tmp_path: Path) -> None:
    """The README's main command, with its results sent to a temporary folder instead of reports/."""
    main_job = blocks(README, "bash")[0].strip().split("&&")[1]
    assert main([*shlex.split(main_job)[1:], "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(scheme in out for scheme in ("fp32", "woq", "dynamic", "static"))
    assert (tmp_path / "resnet18" / "default-32x32" / "results.csv").is_file()


def commands(text: str) -> list[list[str]]:
    """Every ``accelsim ...`` line of a text's bash blocks (or an epilog), split into argv lists; ``&&`` chains
    become consecutive commands."""
    out = []
    for block in [*blocks(text, "bash"), text if "```" not in text else ""]:
        for line in block.splitlines():
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv[:1] == ["accelsim"]:
                    out.append(argv[1:])
    return out


# Sweeps take tens of seconds: their commands are parsed and their specs validated, not run.
PARSE_ONLY = {"sweep"}


def run_as_documented(argv: list[str], cwd: Path) -> None:
    """One documented command in ``cwd``: globs expanded as a shell would, simulations with --timing-only
    (the values path is the main job's test; an accuracy run, ``--data``, is all values: it runs whole),
    sweeps only parsed and validated."""
    from accelsim.cli import build_parser
    from accelsim.config.sweep import load_sweep

    argv = [e for a in argv for e in ([str(p.relative_to(cwd)) for p in sorted(cwd.glob(a))] if "*" in a else [a])]
    if argv[0] in PARSE_ONLY:
        load_sweep(build_parser().parse_args(argv).spec)
        return
    if argv[0] in ("run", "compare") and "--timing-only" not in argv and "--data" not in argv:
        argv.append("--timing-only")
    assert main(argv) == 0, argv


@pytest.mark.parametrize("source", ["README.md", "accelsim --help"])
def test_every_documented_command_runs(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh clone's view: every command of the README (all bash blocks but the install and test lines) and
    of the CLI's examples epilog runs from a copy of the shipped folders, writing only there."""
    from accelsim.cli import COMMAND_EXAMPLES, EXAMPLES

    text = (
        README if source == "README.md" else "\n".join([EXAMPLES, *(e for ex in COMMAND_EXAMPLES.values() for e in ex)])
    )
    for folder in ("workloads", "hwconfigs"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    documented = commands(text)
    assert len(documented) >= (13 if source == "README.md" else 25)
    for argv in documented:
        run_as_documented(argv, tmp_path)
    assert "Traceback" not in capsys.readouterr().err


def test_readme_yaml_examples_validate() -> None:
    hardware, workload = blocks(README, "yaml")
    validate(HardwareConfig, yaml.safe_load(hardware))
    validate(Workload, yaml.safe_load(workload))


def fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        nested = [
            a
            for a in typing.get_args(info.annotation) or (info.annotation,)
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        out.extend(fields(nested[0], f"{prefix}{name}.") if nested else [f"{prefix}{name}"])
    return out


def test_every_hardware_field_is_documented() -> None:
    doc = (ROOT / "docs/hardware.md").read_text()
    missing = [f for f in fields(HardwareConfig) if f"`{f}`" not in doc]
    assert not missing


def test_every_workload_field_and_layer_type_is_documented() -> None:
    doc = (ROOT / "docs/workloads.md").read_text()
    top = [f for f in Workload.model_fields if f"`{f}`" not in doc]
    assert not top
    for cls in typing.get_args(typing.get_args(Layer)[0]):
        tag = cls.model_fields["type"].annotation.__args__[0]
        section = doc.split(f"### `{tag}`")[1].split("\n### ")[0] if f"### `{tag}`" in doc else ""
        assert section, f"no section for layer type {tag}"
        missing = [f for f in cls.model_fields if f not in ("name", "type", "inputs") and f"`{f}`" not in section]
        assert not missing, (tag, missing)


def test_every_result_field_is_documented() -> None:
    from dataclasses import fields as dataclass_fields

    from accelsim.results.records import LayerRecord

    doc = (ROOT / "docs/metrics.md").read_text()
    missing = [f.name for f in dataclass_fields(LayerRecord) if f"`{f.name}`" not in doc]
    assert not missing


def test_readme_links_point_to_files() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert not missing
