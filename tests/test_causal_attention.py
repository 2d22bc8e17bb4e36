"""A prefill's causal mask (``causal: true`` on the attention softmax, issue 18): fp32 values against PyTorch's
``scaled_dot_product_attention(is_causal=True)``, the mask aligned to the last key after a KV cache, the quantized
schemes, the timing (the array computes every score; the vector unit pays one select per score) and refusals."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from accelsim.config.loader import load_hardware
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.lowering.program import CAUSAL_MASK_OPS, lower
from accelsim.values.runner import run_values, softmax
from accelsim.values.tensors import materialize

sys.path.insert(0, str(Path(__file__).parent))
from test_llm_layers import decoder_block

torch = pytest.importorskip("torch")

HW = load_hardware("hwconfigs/default.yaml")
HEADS, KV_HEADS, D, TOKENS = 4, 2, 16, 8


def _causal_block(causal: bool = True) -> Workload:
    doc = decoder_block(tokens=TOKENS, heads=HEADS, kv_heads=KV_HEADS)
    for layer in doc["layers"]:
        if layer["type"] == "softmax":
            layer["causal"] = causal
    return Workload.model_validate(doc)


@pytest.fixture(scope="module")
def causal_values():
    workload = _causal_block()
    tensors = materialize(workload)
    return workload, tensors, run_values(workload, HW, "fp32", tensors=tensors).layers


def test_causal_prefill_is_torch_sdpa_is_causal(causal_values) -> None:
    """scores -> causal softmax -> context equals torch's SDPA with is_causal and enable_gqa (fp32), and the mask
    changed the result (the unmasked block's context differs)."""
    _, tensors, layers = causal_values

    def split(name: str, h: int) -> torch.Tensor:
        y = torch.from_numpy(layers[name].output)
        return y.reshape(y.shape[0], y.shape[1], h, D).transpose(1, 2)

    q, k, v = split("q_rope", HEADS), split("k_rope", KV_HEADS), split("v_proj", KV_HEADS)
    want = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, scale=1 / math.sqrt(D), is_causal=True, enable_gqa=True
    ).numpy()
    got = layers["context"].output.reshape(1, TOKENS, HEADS, D).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    unmasked = run_values(_causal_block(False), HW, "fp32", tensors=tensors).layers["context"].output
    assert not np.allclose(unmasked, layers["context"].output, atol=1e-3)
    probabilities = layers["softmax"].output[0]
    assert np.all(probabilities[:, np.triu_indices(TOKENS, 1)[0], np.triu_indices(TOKENS, 1)[1]] == 0)


@pytest.mark.parametrize(("queries", "keys"), [(5, 12), (1, 9), (6, 6)])
def test_causal_mask_is_aligned_to_the_last_key(queries: int, keys: int) -> None:
    """After a cache of ``keys - queries`` rows, query ``i`` sees keys ``0 .. i + keys - queries`` (torch's
    lower-right causal bias, as a prefill continuing a cache needs); a decode step (one query) sees every key."""
    rng = np.random.default_rng(queries * keys)
    scores = rng.standard_normal((2, 3, queries, keys)).astype(np.float32)
    mask = torch.ones(queries, keys, dtype=torch.bool).tril(diagonal=keys - queries)
    want = torch.softmax(torch.from_numpy(scores).masked_fill(~mask, float("-inf")), dim=-1).numpy()
    got = softmax(scores, -1, causal=True)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    if queries == 1:
        np.testing.assert_array_equal(got, softmax(scores, -1))


@pytest.mark.parametrize("scheme", ["dynamic", "static"])
def test_causal_mask_under_quantized_schemes(causal_values, scheme: str) -> None:
    """Static applies the mask on the dequantized scores (probability 0 is the output's zero point: exact);
    dynamic on float scores; both stay near fp32."""
    workload, tensors, fp32 = causal_values
    layers = run_values(workload, HW, scheme, tensors=tensors).layers
    probabilities = layers["softmax"].output[0]
    above = np.triu_indices(TOKENS, 1)
    assert np.all(probabilities[:, above[0], above[1]] == 0)
    reference = fp32["mlp_add"].output
    error = layers["mlp_add"].output - reference
    assert 10 * np.log10(np.sum(reference**2) / np.sum(error**2)) > 20


def test_causal_timing_computes_every_score() -> None:
    """The array computes the full score and context GEMMs (same tiles and MACs as without the mask); the vector
    unit pays one more op per score for the mask."""
    masked, plain = (
        {layer.name: layer for layer in lower(_causal_block(c), HW, "static").layers} for c in (True, False)
    )
    for name in ("scores", "context"):
        assert masked[name].tiles == plain[name].tiles
    scores = HEADS * TOKENS * TOKENS
    extra = masked["softmax"].work.vector_cycles - plain["softmax"].work.vector_cycles
    assert extra == pytest.approx(scores * CAUSAL_MASK_OPS / HW.vector.lanes, abs=2)


@pytest.mark.parametrize(("shape", "axis"), [([8, 8], 0), ([8], -1), ([4, 9, 8], -1)])
def test_causal_needs_scores_over_the_last_axis(shape: list[int], axis: int) -> None:
    doc = {
        "schema_version": 1,
        "name": "s",
        "input_shape": shape,
        "layers": [{"name": "p", "type": "softmax", "axis": axis, "causal": True}],
    }
    with pytest.raises((AccelsimError, ValueError), match="causal"):
        Workload.model_validate(doc)
