"""Both GEMM paths on every host: the kernel tests again with the VNNI path forced off.

On a host with AVX512-VNNI the suite's kernels take the ``vpdpbusd`` path, so the float32-BLAS
fallback (what every other host runs) would never run end to end here. ``ACCELSIM_VNNI=0`` turns
the VNNI path off (``accelsim.kernels.vnni.AVAILABLE``); this test reruns the kernel twins and the
ONNX Runtime GEMM tests in a subprocess with it set. On a host without VNNI both runs take the
fallback, and the test still checks the switch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from accelsim.kernels import vnni

TESTS = Path(__file__).resolve().parent
GEMM_TESTS = "not onnxruntime or matmul_integer or conv_integer or qlinear or threaded or fused_gemm"


def _forced_off() -> dict[str, str]:
    return {**os.environ, vnni.ENV_VAR: "0"}


def test_the_switch_turns_vnni_off() -> None:
    probe = "from accelsim.kernels import vnni; print(vnni.AVAILABLE)"
    out = subprocess.run([sys.executable, "-c", probe], env=_forced_off(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_kernels_without_vnni() -> None:
    """The kernel twins and the ORT GEMM tests pass on the fallback path (about 40 s)."""
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
        cmd, env=_forced_off(), capture_output=True, text=True, cwd=TESTS.parent, timeout=600, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
