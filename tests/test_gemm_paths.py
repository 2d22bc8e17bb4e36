"""Every GEMM path on every host: the kernel tests again with the VNNI path, and with the AMX tiles, forced off.

On a host with AVX512-VNNI the suite's kernels take the ``vpdpbusd`` path, so the float32-BLAS
fallback (what every other host runs) would never run end to end here. ``ACCELSIM_VNNI=0`` turns
the VNNI path off (``accelsim.kernels.vnni.AVAILABLE``, and the AMX tiles with it); this test reruns
the kernel twins and the ONNX Runtime GEMM tests in a subprocess with it set. On an AMX host the
tiles take every GEMM with K >= 128, so ``ACCELSIM_AMX=0`` reruns the same tests on the VNNI kernel
alone. On a host without VNNI (or AMX) the runs take the fallback, and the test still checks the switch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accelsim.kernels import amx, vnni

TESTS = Path(__file__).resolve().parent
GEMM_TESTS = "not onnxruntime or matmul_integer or conv_integer or qlinear or threaded or fused_gemm"


def _forced_off(variable: str = vnni.ENV_VAR) -> dict[str, str]:
    return {**os.environ, variable: "0"}


def test_the_switch_turns_vnni_off() -> None:
    probe = "from accelsim.kernels import vnni; print(vnni.AVAILABLE)"
    out = subprocess.run([sys.executable, "-c", probe], env=_forced_off(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("variable", [vnni.ENV_VAR, amx.ENV_VAR])
def test_kernels_without(variable: str) -> None:
    """The kernel twins and the ORT GEMM tests pass on the fallback path, and on the VNNI kernel without the
    AMX tiles (about 40 s each)."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        str(TESTS / "test_kernels_twins.py"),
        str(TESTS / "test_numerics_onnxruntime.py"),
        "-k",
        GEMM_TESTS,
    ]
    run = subprocess.run(
        cmd, env=_forced_off(variable), capture_output=True, text=True, cwd=TESTS.parent, timeout=600, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
