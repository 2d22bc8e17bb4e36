"""Hostile uses of ``--smoothquant ALPHA`` (issue 18): each ends in one line naming the option and what is allowed
(exit 2), and writes nothing: the option is checked before the results folder is touched."""

from __future__ import annotations

from .case import Case


def _run(*extra: str) -> tuple[str, ...]:
    return ("run", "mlp", "--scheme", "static", "--out", "{tmp}/out", *extra)


CASES = [
    Case("smoothquant-above-one", _run("--smoothquant", "1.5"), match=r"--smoothquant: alpha 1\.5 is outside \[0, 1\]"),
    Case("smoothquant-negative", _run("--smoothquant", "-0.1"), match=r"--smoothquant: alpha -0\.1 is outside"),
    Case("smoothquant-nan", _run("--smoothquant", "nan"), match=r"--smoothquant: alpha nan is outside"),
    Case("smoothquant-inf", _run("--smoothquant", "inf"), match=r"--smoothquant: alpha inf is outside"),
    Case("smoothquant-huge", _run("--smoothquant", "1e308"), match=r"--smoothquant: alpha 1e\+308 is outside"),
    Case("smoothquant-text", _run("--smoothquant", "half"), match=r"--smoothquant: invalid float value: 'half'"),
    Case(
        "smoothquant-with-data",
        ("compare", "digits-mlp", "--out", "{tmp}/out", "--data", "digits", "--smoothquant", "0.5"),
        match=r"--smoothquant: .*not with --data",
    ),
]
