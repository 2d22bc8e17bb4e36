"""Runs too big to finish are refused before they start; timing alone holds no batch-sized tensors (issue 14 item 11)."""

from __future__ import annotations

import re
import tracemalloc
from math import prod
from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.config import load_workload
from accelsim.errors import AccelsimError
from accelsim.values.footprint import check_values_fit, values_bytes


def test_values_refused_with_the_batch_that_fits() -> None:
    workload = load_workload("resnet50", ["batch=1000"])
    with pytest.raises(AccelsimError) as err:
        check_values_fit(workload, 4, available=16 * 2**30)
    text = str(err.value)
    assert text.startswith("batch: the values of workload resnet50 at batch 1000 need about"), text
    assert "--timing-only" in text
    fits = int(re.search(r"--set-workload batch=(\d+)", text).group(1))
    assert fits >= 1
    check_values_fit(load_workload("resnet50", [f"batch={fits}"]), 4, available=16 * 2**30)  # the advice works
    with pytest.raises(AccelsimError):
        check_values_fit(load_workload("resnet50", [f"batch={fits + 1}"]), 4, available=16 * 2**30)


def test_commands_without_timing_only_do_not_suggest_it() -> None:
    with pytest.raises(AccelsimError) as err:
        check_values_fit(load_workload("resnet50", ["batch=1000"]), 1, timing_only_flag=False, available=2**30)
    assert "--timing-only" not in str(err.value) and "batch" in str(err.value)


@pytest.mark.parametrize("schemes", [("static",), ("fp32", "woq", "dynamic", "static")])
def test_estimate_covers_the_values_run(schemes: tuple[str, ...]) -> None:
    """The estimate is at least the traced peak of the values run it stands for (else a run it lets through
    could still end in a MemoryError)."""
    from accelsim.config import load_hardware
    from accelsim.simulation import compare_schemes

    workload, hw = load_workload("tiny_cnn", ["batch=256"]), load_hardware(None)
    compare_schemes(load_workload("tiny_cnn"), hw, schemes)  # compile outside the measurement
    tracemalloc.start()
    try:
        compare_schemes(workload, hw, schemes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert values_bytes(workload, len(schemes)) >= peak > values_bytes(workload, len(schemes)) / 10, peak


def test_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal comes before the simulation: nothing is simulated, nothing written."""
    from accelsim import simulation

    monkeypatch.setattr(simulation, "simulate", lambda *a, **k: pytest.fail("simulated a run that cannot fit"))
    code = main(["run", "resnet50", "--set-workload", "batch=1000", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "--timing-only" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_timing_only_allocates_nothing_batch_sized(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``run --timing-only`` at batch 4096: peak traced allocation far below one batch-sized activation tensor set."""
    argv = ["run", "tiny_cnn", "--timing-only", "--out", str(tmp_path / "warm")]
    assert main(argv) == 0  # imports and caches outside the measurement
    batch = 4096
    workload = load_workload("tiny_cnn", [f"batch={batch}"])
    tensor_bytes = 4 * batch * sum(prod(s.output_shape) for s in workload.shapes)  # float32 activations, whole batch
    tracemalloc.start()
    try:
        assert (
            main(
                ["run", "tiny_cnn", "--timing-only", "--set-workload", f"batch={batch}", "--out", str(tmp_path / "big")]
            )
            == 0
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    capsys.readouterr()
    assert peak < tensor_bytes / 50, (peak, tensor_bytes)
