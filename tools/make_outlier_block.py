"""Write workloads/llama_outlier_block.npz: the two RMSNorm scales of the reduced Llama block with outlier channels.

Real LLMs have a handful of hidden dimensions whose activations are 20-100x the rest in every token (LLM.int8(),
Dettmers et al. 2022; SmoothQuant, Xiao et al. 2023); they enter the linear layers through the normalization's
output, and the norm's learned scale is where they show up per channel (Kovaleva et al. 2021, "BERT busters").
So the block's random model is: the residual input and every linear weight drawn from the workload's seed, and
both RMSNorm scales ``gamma ~ N(1, 0.1^2)`` except OUTLIERS channels (the same ones in both norms, as the
residual stream's outlier dimensions are shared by the layers) whose scale is 20, 27, 37, 50, 73 and 100.
Deterministic: two runs write the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HIDDEN = 256
OUTLIERS = 6
SEED = 18


def scales() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    channels = np.sort(rng.choice(HIDDEN, OUTLIERS, replace=False))
    magnitudes = np.round(np.geomspace(20.0, 100.0, OUTLIERS))
    out = {}
    for name in ("input_layernorm", "post_attention_layernorm"):
        gamma = (1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
        gamma[channels] = rng.permutation(magnitudes)
        out[f"{name}.weight"] = gamma
    return out


def main() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **scales())  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    (REPO / "workloads" / "llama_outlier_block.npz").write_bytes(buffer.getvalue())
    print(f"outlier channels: {np.flatnonzero(scales()['input_layernorm.weight'] > 10).tolist()}")


if __name__ == "__main__":
    main()
