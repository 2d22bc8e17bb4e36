"""tests/conftest.py: with the test extra installed a skip fails the run, except the allowed reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ENV_VAR, extra_installed

TINY_SUITE = {
    "test_module_skip": "import pytest\npytest.importorskip('accelsim_no_such_reference')\n\ndef test_never():\n    pass\n",
    "test_call_skip": "import pytest\n\ndef test_skips():\n    pytest.importorskip('accelsim_no_such_reference')\n",
    "test_allowed": "import pytest\n\n@pytest.mark.skipif(True, reason='chromium not installed (Debian: apt-get install chromium)')\n"
    "def test_browser():\n    pass\n\ndef test_passes():\n    pass\n",
}


@pytest.mark.parametrize("required", ["1", "0"])
def test_a_skip_fails_when_references_are_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str
) -> None:
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makepyfile(**TINY_SUITE)
    monkeypatch.setenv(ENV_VAR, required)
    result = pytester.runpytest("-p", "no:cacheprovider", "--continue-on-collection-errors")
    if (
        required == "1"
    ):  # a module-level importorskip is a collection error (it stops a plain run), a skip in the test a failure
        result.assert_outcomes(passed=1, skipped=1, failed=1, errors=1)
        result.stdout.fnmatch_lines(
            ["*skipped although accelsim's test extra is installed*accelsim_no_such_reference*"]
        )
        assert result.ret != 0
    else:
        result.assert_outcomes(passed=1, skipped=3)
        assert result.ret == 0


def test_extra_installed_reads_the_requirements() -> None:
    requires = [
        "numpy>=1.26",
        'torch==2.13.0; extra == "test"',
        'onnx>=1.16; extra == "test"',
        'pandas>=2.0; extra == "pandas"',
    ]
    versions = {"numpy": "2.0", "torch": "2.13.0+cpu", "onnx": "1.23.2"}
    assert extra_installed(requires, versions.get)
    assert not extra_installed(requires, (versions | {"onnx": "1.15"}).get)  # too old
    assert not extra_installed(requires, {k: v for k, v in versions.items() if k != "torch"}.get)  # missing
    assert not extra_installed(requires[:1], versions.get)  # no test extra at all
