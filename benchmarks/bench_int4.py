"""int4 group-wise products (issue 18) against ONNX Runtime's MatMulNBits on the same layer, in one run.

Run: ``python benchmarks/bench_int4.py [--repeats N]``. A 4096 x 4096 weight (a Llama-2-7B projection)
quantized by ``MatMulNBitsQuantizer`` (group 128, zero points); activations of 1 row (decode) and 64 rows
(a prefill chunk). Each figure is the best of N after a warm-up: accelsim's ``matmul_w4a8`` (bit-exact
integer parts) and ``matmul_weight_only``, and the peer, ORT's MatMulNBits at ``accuracy_level`` 4 and 0
(1 thread, the CPU provider). The ratio is accelsim's time over ORT's: what computing the same product as a
golden model costs against running it. Weights are quantized once, as a deployed model holds them. Run with
``OPENBLAS_NUM_THREADS=1`` to compare one thread with one thread: on a loaded machine OpenBLAS's own threads
made the batched block GEMM 10-100x slower from run to run.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from best_of import best_of
from test_int4_ort import _matmulnbits, _run

from accelsim.quant import int4

K = N = 4096
GROUP = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    rng = np.random.default_rng(0)
    w = rng.standard_normal((K, N)).astype(np.float32)
    gw = int4.quantize_groups(w, GROUP, symmetric=False)
    sessions = {level: _matmulnbits(w, GROUP, False, level)[0] for level in (4, 0)}
    print(f"{K}x{N} weight, group {GROUP} with zero points; best of {repeats} (ms); shared machine: read the ratios")
    print(f"{'rows':>5} {'path':<12} {'accelsim':>9} {'ORT':>8} {'ratio':>6}")
    for m in (1, 64):
        x = rng.standard_normal((m, K)).astype(np.float32)
        for path, ours, session in (
            ("W4A8 (4)", partial(int4.matmul_w4a8, x, gw), sessions[4]),
            ("weight-only", partial(int4.matmul_weight_only, x, gw), sessions[0]),
        ):
            mine = best_of(ours, repeats)
            peer = best_of(partial(_run, session, x), repeats)
            print(f"{m:>5} {path:<12} {mine * 1e3:>9.2f} {peer * 1e3:>8.2f} {mine / peer:>6.1f}")


if __name__ == "__main__":
    main()
