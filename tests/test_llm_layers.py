"""The layer types a Llama-style decoder needs (issue 18): rmsnorm, rotary, the silu activation, elementwise
mul (SwiGLU) and grouped-query attention (``kv_heads`` on the attention matmuls).

fp32 values against PyTorch's own ops (``rms_norm``, ``silu``, ``scaled_dot_product_attention`` with
``enable_gqa``, and HuggingFace's Llama ``apply_rotary_pos_emb`` written in torch); a reduced-size decoder
block under every scheme; the lowering's vector-unit prices and GEMM counts; the shape refusals."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from accelsim.config.loader import load_hardware
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.lowering.program import ACTIVATION_OPS, RMSNORM_OPS, ROTARY_OPS, STATIC_REQUANT_OPS, Lowerer, lower
from accelsim.values.runner import calibrate, run_values
from accelsim.values.tensors import materialize

sys.path.insert(0, str(Path(__file__).parent))
import test_values_program
from test_values_program import assert_same_gemms, program_gemms

torch = pytest.importorskip("torch")

HW = load_hardware("hwconfigs/default.yaml")


def decoder_block(tokens: int = 8, hidden: int = 64, heads: int = 4, kv_heads: int = 2, ffn: int = 128) -> dict:
    """One Llama decoder block (pre-norm, rotary, grouped-query attention, SwiGLU MLP, no causal mask) at a
    reduced size, as a workload document."""
    d = hidden // heads
    kv = kv_heads * d
    return {
        "schema_version": 1,
        "name": "decoder_block",
        "input_shape": [tokens, hidden],
        "layers": [
            {"name": "input_layernorm", "type": "rmsnorm", "eps": 1e-5},
            {"name": "q_proj", "type": "linear", "out_features": hidden, "bias": False},
            {"name": "k_proj", "type": "linear", "inputs": ["input_layernorm"], "out_features": kv, "bias": False},
            {"name": "v_proj", "type": "linear", "inputs": ["input_layernorm"], "out_features": kv, "bias": False},
            {"name": "q_rope", "type": "rotary", "inputs": ["q_proj"], "heads": heads},
            {"name": "k_rope", "type": "rotary", "inputs": ["k_proj"], "heads": kv_heads},
            {
                "name": "scores",
                "type": "matmul",
                "inputs": ["q_rope", "k_rope"],
                "transpose_b": True,
                "heads": heads,
                "kv_heads": kv_heads,
                "alpha": 1 / math.sqrt(d),
            },
            {"name": "softmax", "type": "softmax"},
            {
                "name": "context",
                "type": "matmul",
                "inputs": ["softmax", "v_proj"],
                "heads": heads,
                "kv_heads": kv_heads,
                "merge_heads": True,
            },
            {"name": "o_proj", "type": "linear", "out_features": hidden, "bias": False},
            {"name": "attn_add", "type": "add", "inputs": ["o_proj", "input"]},
            {"name": "post_attention_layernorm", "type": "rmsnorm", "eps": 1e-5},
            {"name": "gate_proj", "type": "linear", "out_features": ffn, "bias": False, "activation": "silu"},
            {
                "name": "up_proj",
                "type": "linear",
                "inputs": ["post_attention_layernorm"],
                "out_features": ffn,
                "bias": False,
            },
            {"name": "swiglu", "type": "elementwise", "op": "mul", "inputs": ["gate_proj", "up_proj"]},
            {"name": "down_proj", "type": "linear", "out_features": hidden, "bias": False},
            {"name": "mlp_add", "type": "add", "inputs": ["down_proj", "attn_add"]},
        ],
    }


def _torch_rotate(x: torch.Tensor, heads: int, base: float, position: int) -> torch.Tensor:
    """HuggingFace LlamaRotaryEmbedding + apply_rotary_pos_emb on ``[B, T, heads*d]``, in torch."""
    b, t, features = x.shape
    d = features // heads
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    positions = torch.arange(position, position + t, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    q = x.reshape(b, t, heads, d).transpose(1, 2)
    rotate_half = torch.cat((-q[..., d // 2 :], q[..., : d // 2]), dim=-1)
    return (q * cos + rotate_half * sin).transpose(1, 2).reshape(b, t, features)


def _layers(workload: Workload, tensors=None):
    return run_values(workload, HW, "fp32", tensors=tensors or materialize(workload)).layers


@pytest.fixture(scope="module")
def block() -> Workload:
    return Workload.model_validate(decoder_block())


@pytest.fixture(scope="module")
def block_values(block: Workload):
    tensors = materialize(block)
    return tensors, _layers(block, tensors)


def test_rmsnorm_is_torch_rms_norm(block: Workload, block_values) -> None:
    tensors, layers = block_values
    x = torch.from_numpy(tensors.inputs["input"])
    weight = torch.from_numpy(tensors.params["input_layernorm"].weight)
    want = torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps=1e-5).numpy()
    np.testing.assert_allclose(layers["input_layernorm"].output, want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize(("heads", "base", "position"), [(4, 10000.0, 0), (2, 500000.0, 4093), (1, 10000.0, 7)])
def test_rotary_is_llamas(heads: int, base: float, position: int) -> None:
    """The float32 table and rotation equal HuggingFace's torch code (at a decode step's position too; Llama-3's
    base 500000); the angle's cos / sin may differ in the last bit between numpy and torch: rtol 1e-5."""
    doc = {
        "schema_version": 1,
        "name": "r",
        "input_shape": [6, 32],
        "layers": [{"name": "rope", "type": "rotary", "heads": heads, "base": base, "position": position}],
    }
    workload = Workload.model_validate(doc)
    tensors = materialize(workload)
    got = _layers(workload, tensors)["rope"].output
    want = _torch_rotate(torch.from_numpy(tensors.inputs["input"]), heads, base, position).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
    assert not np.allclose(got, tensors.inputs["input"])  # it rotated something


def test_silu_and_swiglu_are_torchs(block_values) -> None:
    """gate_proj's fused silu is torch's silu of its pre-activation; swiglu multiplies gate and up."""
    tensors, layers = block_values
    x = torch.from_numpy(layers["post_attention_layernorm"].output)
    w = torch.from_numpy(tensors.params["gate_proj"].weight)
    gate = torch.nn.functional.silu(x @ w.T)
    np.testing.assert_allclose(layers["gate_proj"].output, gate.numpy(), rtol=1e-5, atol=1e-6)
    up = torch.from_numpy(layers["up_proj"].output)
    np.testing.assert_allclose(layers["swiglu"].output, (torch.from_numpy(layers["gate_proj"].output) * up).numpy())


def test_grouped_query_attention_is_torch_sdpa(block_values) -> None:
    """scores -> softmax -> context with kv_heads = heads / 2 equals torch's scaled_dot_product_attention with
    enable_gqa (each kv head serves consecutive query heads, as torch's repeat_interleave)."""
    _, layers = block_values
    heads, kv_heads, d = 4, 2, 16

    def split(name: str, h: int) -> torch.Tensor:
        y = torch.from_numpy(layers[name].output)
        return y.reshape(y.shape[0], y.shape[1], h, d).transpose(1, 2)

    q, k, v = split("q_rope", heads), split("k_rope", kv_heads), split("v_proj", kv_heads)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(d), enable_gqa=True)
    got = layers["context"].output.reshape(1, 8, heads, d).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scheme", ["woq", "dynamic", "static"])
def test_block_under_every_scheme_tracks_fp32(block: Workload, block_values, scheme: str) -> None:
    """Every layer type runs under every scheme; the quantized block's output stays near fp32 (random weights
    without outliers: > 20 dB)."""
    tensors, fp32 = block_values
    values = run_values(block, HW, scheme, tensors=tensors)
    assert set(values.layers) == set(fp32)
    reference = fp32["mlp_add"].output
    error = values.layers["mlp_add"].output - reference
    sqnr = 10 * np.log10(np.sum(reference**2) / np.sum(error**2))
    assert sqnr > 20, sqnr


def test_grouped_query_matmul_shapes_and_gemms(block: Workload) -> None:
    """kv_heads: MACs count every query head; the heads sharing a kv head stack into one GEMM's rows, so the
    array runs one GEMM per kv head and reads each kv head's keys once."""
    shapes = {s.layer.name: s for s in block.shapes}
    assert shapes["scores"].output_shape == (4, 8, 8)
    assert shapes["scores"].macs == 4 * 8 * 16 * 8
    assert shapes["context"].output_shape == (8, 64)
    program = lower(block, HW, "static")
    scores = next(layer for layer in program.layers if layer.name == "scores")
    assert scores.view is not None and scores.view.gemms == 2
    assert scores.view.gemm_shape == (2 * 8, 16, 8)
    assert scores.macs == shapes["scores"].macs


def test_vector_prices(block: Workload) -> None:
    """rmsnorm and rotary are per-element vector jobs (plus the requant steps under static); rotary reads its
    cos / sin table, rmsnorm its scale; silu is priced as an activation."""
    lowerer = Lowerer(HW, "static")
    shapes = {s.layer.name: s for s in block.shapes}
    elements = 8 * 64
    norm = lowerer.vector_layer(shapes["input_layernorm"], 1)
    rope = lowerer.vector_layer(shapes["q_rope"], 1)
    assert sum(t.compute_cycles for t in norm.tiles) == lowerer.vector.cycles(
        elements * (RMSNORM_OPS + STATIC_REQUANT_OPS)
    )
    assert sum(t.compute_cycles for t in rope.tiles) == lowerer.vector.cycles(
        elements * (ROTARY_OPS + STATIC_REQUANT_OPS)
    )
    assert sum(t.weight_bytes for t in norm.tiles) == 4 * 64
    assert sum(t.weight_bytes for t in rope.tiles) == 2 * 4 * 8 * 16
    assert ACTIVATION_OPS["silu"] == ACTIVATION_OPS["sigmoid"] + 1


def test_existing_matmul_dump_has_no_kv_heads() -> None:
    """kv_heads is left out of a dump while unset, so stored results and sweep ids of attention workloads stay
    valid; set, it is kept."""
    from accelsim.config.loader import load_workload

    bert = load_workload("workloads/bert_base_layer.yaml")
    dumped = bert.model_dump(mode="json")
    assert all("kv_heads" not in layer for layer in dumped["layers"])
    block_dump = Workload.model_validate(decoder_block()).model_dump(mode="json")
    assert {layer.get("kv_heads") for layer in block_dump["layers"] if layer["type"] == "matmul"} == {2}
    assert Workload.model_validate(block_dump).model_dump(mode="json") == block_dump


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["layers"][6].update(kv_heads=3), r"kv_heads.*3 does not divide heads 4"),
        (lambda d: d["layers"][5].update(heads=3), r"heads.*32 features do not split into 3 heads"),
        (
            lambda d: d["layers"][6].update(kv_heads=4),
            r"layers\[6\]\.inputs: layer 'scores': cannot multiply \[4, 8, 16\] by \[4, 8, 8\]",
        ),
        (lambda d: d["layers"][0].update(eps=0.0), r"eps"),
        (lambda d: d["layers"][4].update(inputs=["input"], heads=4) or d.update(input_shape=[2, 8, 64]), "rotary"),
    ],
)
def test_refusals(edit, match: str) -> None:
    """One line naming the field and what is wrong."""
    doc = decoder_block()
    edit(doc)
    with pytest.raises(AccelsimError, match=match) as caught:
        validate(Workload, doc, "w.yaml")
    assert "\n" not in str(caught.value)


def decode_step(context: int = 40, dtype: str = "activation", batch: int = 2) -> dict:
    """The attention half of a decode step: one new token per sequence, ``context`` tokens cached."""
    doc = decoder_block(tokens=1)
    doc["batch"] = batch
    layers = doc["layers"][:11]
    for layer in layers:
        if layer["type"] == "rotary":
            layer["position"] = context
    caches = [
        {"name": "k_cache", "type": "kv_cache", "inputs": ["k_rope"], "heads": 2, "context": context, "dtype": dtype},
        {"name": "v_cache", "type": "kv_cache", "inputs": ["v_proj"], "heads": 2, "context": context, "dtype": dtype},
    ]
    layers[6]["inputs"] = ["q_rope", "k_cache"]
    layers[8]["inputs"] = ["softmax", "v_cache"]
    doc["layers"] = layers[:6] + caches + layers[6:]
    return doc


def _kv_int8_torch(x: torch.Tensor, heads: int) -> torch.Tensor:
    rows = x.reshape(*x.shape[:-1], heads, -1)
    scale = rows.abs().amax(dim=-1, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (torch.clamp(torch.round(rows / scale), -127, 127) * scale).reshape(x.shape)


@pytest.mark.parametrize("dtype", ["activation", "int8"])
def test_kv_cache_values(dtype: str) -> None:
    """The cache is the earlier rows (``<layer>.weight``) then this step's; an int8 cache reads back as torch's
    per-head, per-token absmax round-half-even of the same rows."""
    workload = Workload.model_validate(decode_step(dtype=dtype))
    tensors = materialize(workload)
    layers = _layers(workload, tensors)
    past = tensors.params["k_cache"].weight
    assert past.shape == (40, 32)
    full = np.concatenate([np.broadcast_to(past, (2, 40, 32)), layers["k_rope"].output], axis=1)
    got = layers["k_cache"].output
    want = full if dtype == "activation" else _kv_int8_torch(torch.from_numpy(full), 2).numpy()
    np.testing.assert_array_equal(got, want)
    assert layers["scores"].output.shape == (2, 4, 1, 41)
    for scheme in ("dynamic", "static"):
        assert run_values(workload, HW, scheme, tensors=tensors).layers["context"].output.shape == (2, 1, 64)


@pytest.mark.parametrize(("scheme", "dtype", "per_element"), [("fp32", "activation", 4), ("static", "activation", 1)])
def test_kv_cache_traffic_is_the_whole_cache(scheme: str, dtype: str, per_element: int) -> None:
    """Each decode step's attention reads the whole cache once per kv head (grouped-query heads share it) in
    the kv_cache class; the cache layer writes only the new rows."""
    from accelsim.simulation import RunOptions, simulate

    workload = Workload.model_validate(decode_step(dtype=dtype))
    rows = {r.layer: r for r in simulate(workload, HW, scheme, options=RunOptions(timing_only=True)).rows}
    cache = 2 * 41 * 32  # batch x (context + 1) x kv_heads*d
    assert rows["scores"].dram_read_bytes_kv_cache == cache * per_element
    assert rows["context"].dram_read_bytes_kv_cache == cache * per_element
    assert rows["k_cache"].dram_write_bytes == 2 * 32 * per_element
    assert rows["q_proj"].dram_read_bytes_kv_cache == 0


def test_int8_kv_cache_bytes_carry_scales() -> None:
    """int8: one byte per element and a float32 scale per head per token, read and written; the vector unit
    dequantizes what the matmul reads."""
    from accelsim.simulation import RunOptions, simulate

    workload = Workload.model_validate(decode_step(dtype="int8"))
    rows = {r.layer: r for r in simulate(workload, HW, "fp32", options=RunOptions(timing_only=True)).rows}
    tokens = 2 * 41
    assert rows["scores"].dram_read_bytes_kv_cache == tokens * 32 + tokens * 2 * 4
    assert rows["k_cache"].dram_write_bytes == 2 * 32 + 2 * 2 * 4
    plain = {
        r.layer: r
        for r in simulate(Workload.model_validate(decode_step()), HW, "fp32", options=RunOptions(timing_only=True)).rows
    }
    assert rows["scores"].vector_busy_cycles > plain["scores"].vector_busy_cycles


def _without_own(doc: dict) -> dict:
    """``doc`` with the rotary / kv_cache layers' own position, context and dtype removed."""
    for layer in doc["layers"]:
        for key in ("position", "context", "dtype"):
            if layer["type"] in ("rotary", "kv_cache"):
                layer.pop(key, None)
    return doc


def test_workload_context_and_kv_dtype_are_the_layers_defaults() -> None:
    """``context`` and ``kv_cache_dtype`` at the workload's top level give the layers that set none the same
    values as writing them on each layer; a layer's own value wins; the dump keeps the document's meaning."""
    explicit = Workload.model_validate(decode_step(context=40, dtype="int8"))
    doc = {**_without_own(decode_step()), "context": 40, "kv_cache_dtype": "int8"}
    inherited = Workload.model_validate(doc)
    assert inherited.layers == explicit.layers
    assert "context" not in doc["layers"][6]  # the document is left as written
    assert Workload.model_validate(inherited.model_dump(mode="json")).layers == explicit.layers
    assert "context" not in explicit.model_dump(mode="json")  # left out while unset: old digests stay
    own = decode_step(context=40)
    own["context"] = 7  # every rotary and kv_cache layer sets its own: none takes it
    with pytest.raises(AccelsimError, match=r"context: no layer takes it"):
        validate(Workload, own, "w.yaml")
    own["layers"][4].pop("position")  # now q_rope takes 7, the others keep 40
    layers = {layer.name: layer for layer in validate(Workload, own, "w.yaml").layers}
    assert (layers["q_rope"].position, layers["k_rope"].position, layers["k_cache"].context) == (7, 40, 40)


def test_shipped_decode_steps_take_the_workload_context() -> None:
    """The shipped decode steps state their context once; ``--set-workload context=N`` moves the rotary
    positions and both caches (the KV traffic grows with N + 1 rows)."""
    from accelsim.config.loader import load_workload
    from accelsim.simulation import RunOptions, simulate

    for name in ("tinyllama_1b_decode", "llama2_7b_decode", "llama3_8b_decode"):
        workload = load_workload(name, ["context=2047"])
        moved = [
            (layer.type, getattr(layer, "position", None), getattr(layer, "context", None)) for layer in workload.layers
        ]
        assert [m for m in moved if m[0] == "rotary"] == [("rotary", 2047, None)] * 2
        assert [m for m in moved if m[0] == "kv_cache"] == [("kv_cache", None, 2047)] * 2
    short, long = (
        simulate(
            load_workload("tinyllama_1b_decode", [f"context={n}", "repeat=1"]),
            HW,
            "static",
            options=RunOptions(timing_only=True),
        ).total
        for n in (511, 2047)
    )
    assert long.dram_read_bytes_kv_cache == short.dram_read_bytes_kv_cache * 2048 // 512


#: every GEMM the kernels run while a test holds it (test_values_program's fixture, registered here)
recorded_gemms = test_values_program.kernel_gemms


@pytest.mark.parametrize("scheme", ["fp32", "woq", "dynamic", "static"])
@pytest.mark.parametrize("doc", [decoder_block(), decode_step(dtype="int8")], ids=["prefill", "decode"])
def test_kernels_run_the_programs_gemms(recorded_gemms, doc: dict, scheme: str) -> None:
    """The shipped LLM workloads are too large for test_values_program's values under every scheme: the same
    check on their layer types at a reduced hidden size (grouped-query GEMMs stacked as lowered)."""
    workload = Workload.model_validate(doc)
    program = lower(workload, HW, scheme)
    tensors = materialize(workload)
    qparams = None
    if scheme == "static":
        qparams = calibrate(workload, tensors, program)
        recorded_gemms.clear()
    run_values(workload, HW, scheme, tensors=tensors, qparams=qparams, program=program)
    assert_same_gemms(recorded_gemms, program_gemms(program))


#: published configs (config.json on HuggingFace: TinyLlama/TinyLlama-1.1B-Chat-v1.0, meta-llama/Llama-2-7b-hf,
#: meta-llama/Meta-Llama-3-8B): hidden, FFN, heads, kv heads, layers, vocabulary, and the published parameter
#: count of the whole model (1.1 B, 6.74 B, 8.03 B)
PUBLISHED = {
    "tinyllama_1b": (2048, 5632, 32, 4, 22, 32000, 1.100e9),
    "llama2_7b": (4096, 11008, 32, 32, 32, 32000, 6.738e9),
    "llama3_8b": (4096, 14336, 32, 8, 32, 128256, 8.030e9),
}


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_shipped_llm_shapes(model: str) -> None:
    """The blocks repeat num_hidden_layers times, then the final norm and LM head run once (``final_layers``; on
    the last prompt position in prefill); the parameters + the embedding (vocab x hidden, not run: a lookup) are
    the published parameter count within 1%; MACs are the closed form of each phase."""
    from accelsim.config.loader import load_workload

    hidden, ffn, heads, kv_heads, layers, vocab, params = PUBLISHED[model]
    prefill, decode = (load_workload(f"{model}_{p}") for p in ("prefill", "decode"))
    assert prefill.repeat == decode.repeat == layers
    assert prefill.params == decode.params
    assert [s.layer.name for s in decode.shapes[-2:]] == ["norm", "lm_head"] == [s.name for s in decode.final_layers]
    assert prefill.shapes[-1].output_shape == decode.shapes[-1].output_shape == (1, vocab)
    total = decode.params + vocab * hidden
    assert abs(total - params) / params < 0.01, total
    d, kv = hidden // heads, kv_heads * hidden // heads
    linear = hidden * (2 * hidden + 2 * kv) + 3 * hidden * ffn
    s, context = 1024, 1024
    assert prefill.macs == layers * (s * linear + 2 * heads * s * s * d) + hidden * vocab
    assert decode.macs == layers * (linear + 2 * heads * (context + 1) * d) + hidden * vocab


@pytest.mark.parametrize("final", [False, True])
def test_repeat_counts_the_block_n_times(final: bool) -> None:
    """repeat: the layer rows are one block's (lowered and played once), the total counts the block's rows N
    times and the rest once: the static scheme's input / output conversions and the final layers (a final norm
    and a head, ``final_layers``); utilization is the whole step's; values are refused in one line."""
    from accelsim.results.records import total_record
    from accelsim.simulation import RunOptions, simulate

    head = [{"name": "norm", "type": "rmsnorm"}, {"name": "head", "type": "linear", "out_features": 96}]
    doc = {**decoder_block(), "final_layers": head if final else []}
    one = Workload.model_validate(doc)
    four = Workload.model_validate({**doc, "repeat": 4})
    block_macs = sum(s.macs for s in one.block_shapes)
    assert four.macs == one.macs + 3 * block_macs and (one.shapes[-1].output_shape == (8, 96)) == final
    runs = [simulate(w, HW, "static", options=RunOptions(timing_only=True)) for w in (one, four)]
    assert [r.layer for r in runs[0].rows] == [r.layer for r in runs[1].rows]
    assert [r.total_cycles for r in runs[0].rows] == [r.total_cycles for r in runs[1].rows]
    rows = runs[0].rows
    block_names = {s.layer.name for s in one.block_shapes}
    block = total_record([r for r in rows if r.layer in block_names], HW.pe_count, HW.clock_mhz)
    once = total_record([r for r in rows if r.layer not in block_names], HW.pe_count, HW.clock_mhz)
    once_names = {"input.quantize", "output.dequantize"} | ({"norm", "head"} if final else set())
    assert {r.layer for r in rows} - block_names == once_names
    whole = runs[1].total
    for name in ("macs", "total_cycles", "stall_cycles", "dram_read_bytes", "dram_write_bytes", "vector_busy_cycles"):
        assert getattr(whole, name) == 4 * getattr(block, name) + getattr(once, name), name
    assert whole.macs == four.macs
    assert whole.latency_s == pytest.approx(whole.total_cycles / (HW.clock_mhz * 1e6))
    assert whole.utilization == pytest.approx(whole.macs / (HW.pe_count * whole.total_cycles))
    with pytest.raises(AccelsimError, match=r"repeated 4 times are not computed"):
        run_values(four, HW, "fp32")


def test_repeat_needs_a_block_ending_in_its_input() -> None:
    doc = {**decoder_block(), "repeat": 2}
    doc["layers"] = doc["layers"][:-1]  # ends in down_proj: [8, 64] still, so drop to up_proj's [8, 128]
    doc["layers"] = doc["layers"][:-3]
    with pytest.raises(AccelsimError, match=r"repeat: 2 repeats a block whose output \[8, 128\]"):
        validate(Workload, doc, "w.yaml")


@pytest.mark.parametrize(
    "hw_name, overrides", [("default", ["dram.outstanding_transfers=8"]), ("phone-npu-lpddr5x", [])]
)
def test_decode_step_is_bound_by_its_bytes(hw_name: str, overrides: list[str]) -> None:
    """Llama-2-7B's whole decode step (32 blocks, the final norm and the LM head) under static int8 on the
    default hardware (32 B/cycle) with 8 DMA transfers in flight and the phone NPU (LPDDR5X, 68.3 B/cycle, 8 as
    shipped) runs within 5% of its DRAM bytes / bandwidth: weights, the whole KV cache, scales and parameters
    (measured: 3.8% and 3.2% over; one transfer at a time, ``dram.outstanding_transfers=1``, 9% and 6%: each
    layer's input waited behind the next weight block)."""
    from accelsim.config.loader import load_workload
    from accelsim.simulation import RunOptions, simulate

    hw = load_hardware(f"hwconfigs/{hw_name}.yaml", overrides)
    run = simulate(load_workload("llama2_7b_decode"), hw, "static", options=RunOptions(timing_only=True))
    total = run.total
    assert total.dram_read_bytes_kv_cache == 32 * 2 * (1024 + 1) * 4096
    norms, rotary_tables = 2 * 4096 * 4, 2 * (2 * 4 * 1 * 128)  # float32 scales; cos and sin of one token
    block = 4 * 4096 * 4096 + 3 * 4096 * 11008 + norms + rotary_tables
    assert total.dram_read_bytes_weights == 32 * block + 4096 * 4 + 4096 * 32000
    bound = (total.dram_read_bytes + total.dram_write_bytes) / hw.dram.bandwidth_bytes_per_cycle
    assert bound <= total.total_cycles < 1.05 * bound, total.total_cycles / bound


def test_int8_kv_cache_rounds_ties_to_even_like_torch() -> None:
    """Power-of-two rows whose absmax is 127 * 2^-3 make the scale exactly 2^-3, so every x / scale below is an
    exact tie (n + 1/2) or a whole code (the absmax is 127): half-to-even (torch.round) differs from half-away at each
    tie. (Checked once by swapping np.rint for half-away rounding in kv_int8: this test then fails.)"""
    from accelsim.values.runner import kv_int8

    step = 2.0**-3
    heads = np.array(
        [[127.0, 0.5, 1.5, 2.5, -0.5, -2.5, 3.0, 0.0], [-127.0, 126.5, -125.5, 4.0, 10.0, 0.5, -1.5, 2.5]], np.float32
    )
    x = (np.stack([heads.reshape(-1), heads[::-1].reshape(-1)]) * np.float32(step)).reshape(1, 2, 16)
    got = kv_int8(x, 2)
    want = _kv_int8_torch(torch.from_numpy(x), 2).numpy()
    np.testing.assert_array_equal(got, want)
    codes = got[0, 0] / np.float32(step)
    ties = heads.reshape(-1) % 1 == 0.5
    half_away = np.sign(heads.reshape(-1)) * np.floor(np.abs(heads.reshape(-1)) + 0.5)
    assert ties.sum() == 10 and not np.array_equal(codes[ties], half_away[ties])  # ties tell the roundings apart
    assert np.array_equal(codes, np.rint(heads.reshape(-1)))
