"""Suite-wide rule: once the test extra is installed, a skipped test is a failure; and the shared fixtures.

The numerics are only as good as the references they are checked against, so a framework test that
skips (``pytest.importorskip("onnxruntime")`` with a broken install, say) must not pass silently.
When ``accelsim``'s ``test`` extra is installed (every requirement present at a matching version,
read from the installed metadata), any skip whose reason is not in :data:`ALLOWED_SKIPS` is reported
as a failure (an error when the skip happens at collection or setup). ``ACCELSIM_REQUIRE_REFERENCES=1``
forces the rule, ``=0`` turns it off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the shared hostile cases (tests/hostile/) import as tests.hostile.*
    sys.path.insert(0, str(REPO))

pytest_plugins = ("pytester",)  # tests/test_skip_policy.py runs this file on tiny suites

ENV_VAR = "ACCELSIM_REQUIRE_REFERENCES"

#: skips that stay legitimate with the extra installed (a substring of the skip reason): none is a
#: Python package the extra could provide
ALLOWED_SKIPS = (
    "chromium not installed",  # test_report_browser.py: Chromium is a system package (README)
    "SCALE-Sim's shipped topologies are not beside this checkout",  # test_scalesim_import.py: data in /work/shared
    "needs AVX512-VNNI",  # test_kernels_twins.py: the host CPU lacks the instructions
)

_REQUIRED = pytest.StashKey[bool]()


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def extra_installed(
    requires: Iterable[str], version: Callable[[str], str | None] = _installed_version, extra: str = "test"
) -> bool:
    """Whether every requirement of ``extra`` among ``requires`` (a distribution's ``Requires-Dist``)
    is installed at a version its specifier allows."""
    wanted = [
        r
        for r in map(Requirement, requires)
        if r.marker is not None and r.marker.evaluate({"extra": extra}) and not r.marker.evaluate({"extra": ""})
    ]
    found = [(r, version(r.name)) for r in wanted]
    return bool(wanted) and all(v is not None and r.specifier.contains(v, prereleases=True) for r, v in found)


def references_required() -> bool:
    """The rule is on: forced by :data:`ENV_VAR`, else when accelsim's test extra is installed."""
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return extra_installed(metadata.requires("accelsim") or [])
    except metadata.PackageNotFoundError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REQUIRED] = references_required()


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)


def _fail_unallowed_skip(config: pytest.Config, report: pytest.CollectReport | pytest.TestReport) -> None:
    if not (report.skipped and config.stash.get(_REQUIRED, False)) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if not any(allowed in reason for allowed in ALLOWED_SKIPS):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped although accelsim's test extra is installed (or {ENV_VAR}=1): {reason}\n"
            f'Reinstall the references (pip install -e ".[test]"), or add the reason to ALLOWED_SKIPS in tests/conftest.py '
            f"if no package can provide what is missing."
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    _fail_unallowed_skip(item.config, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report = yield
    _fail_unallowed_skip(collector.config, report)
    return report


@pytest.fixture
def sweep_spec(tmp_path: Path) -> Callable[..., Path]:
    """Writes the tests' small sweep: the default hardware with 8 or 16 array rows, OS or WS dataflow
    (4 configs), over tiny_cnn and mlp, its results under ``tmp_path / name``. ``schemes`` and extra
    ``axes`` vary it; returns the spec file (``tmp_path / f"{name}.yaml"``)."""

    def write(name: str, *, schemes: Sequence[str] = ("static",), axes: dict[str, list[Any]] | None = None) -> Path:
        spec = {
            "schema_version": 1,
            "base": "default",
            "axes": {"array.rows": [8, 16], "array.dataflow": ["os", "ws"], **(axes or {})},
            "workloads": ["tiny_cnn", "mlp"],
            "schemes": list(schemes),
            "output": str(tmp_path / name),
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return write
