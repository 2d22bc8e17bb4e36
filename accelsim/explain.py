"""``accelsim explain``: one layer's datapath, step by step, with the simulator's own numbers.

It answers "what exactly does the hardware compute?" for a layer under a scheme: which unit does
what, the dtype and bit width at every step, where quantize and dequantize happen, the accumulator
range the layer actually used, the requant unit's M0, shift and int64 product, and saturations.
Every number comes from the values run (``run_values(..., keep_results=[layer])``) and the lowered
program, never from a template.
"""

from __future__ import annotations

from math import ceil

import numpy as np

from accelsim.config.hardware import HardwareConfig
from accelsim.config.workload import GEMM_LAYERS, Workload
from accelsim.dynamic_flavours import FlavourName
from accelsim.errors import AccelsimError
from accelsim.kernels.quantize import scale_accumulator
from accelsim.kernels.requant import rounding_divide_by_pot, saturating_rounding_doubling_high_mul
from accelsim.lowering.program import ROW_PARAMETER_BYTES, LoweredLayer, lower, lowering_options
from accelsim.quant import LayerResult, QParams, dequantize_tensor, input_row_sums, zero_point_correction
from accelsim.quant.layer import IMAGE_KINDS
from accelsim.requant_modes import get_mode
from accelsim.schemes import WeightFormat, WeightFormatName, get_scheme, get_weight_format
from accelsim.values.runner import run_values
from accelsim.values.tensors import WorkloadTensors


def _fmt(values: np.ndarray, n: int = 4) -> str:
    flat = np.asarray(values).reshape(-1)[:n]
    if flat.dtype.kind == "f":
        return "[" + ", ".join(f"{v:.4g}" for v in flat) + (", ...]" if np.asarray(values).size > n else "]")
    return "[" + ", ".join(str(int(v)) for v in flat) + (", ...]" if np.asarray(values).size > n else "]")


def _qp(qp: QParams | None) -> str:
    if qp is None:
        return "float32"
    if qp.axis is None:
        return f"{qp.dtype}, per tensor, scale {float(qp.scale[0]):.6g}, zero point {int(qp.zero_point[0])}"
    return (
        f"{qp.dtype}, per {'channel' if qp.zero_point.size else 'row'} ({qp.scale.size} scales, "
        f"{float(qp.scale.min()):.4g}..{float(qp.scale.max()):.4g}), zero points {_fmt(qp.zero_point, 3)}"
    )


def _bits(lo: int, hi: int) -> int:
    """Two's-complement bits needed to hold every value in [lo, hi]."""
    return max(int(lo).bit_length() if lo >= 0 else (-int(lo) - 1).bit_length(), int(hi).bit_length()) + 1


def fixed_point_steps(acc: int, m0: int, shift: int) -> tuple[int, int]:
    """The requant unit's two gemmlowp steps on one accumulator, with the kernels' own arithmetic (so
    what explain prints is what the values computed): ``SaturatingRoundingDoublingHighMul(acc << left,
    M0)`` (the shifted value wraps to int32, as TFLite's int32 multiply does), then
    ``RoundingDivideByPOT(., right)``."""
    left, right = max(shift, 0), max(-shift, 0)
    shifted = int(np.int64(acc << left).astype(np.int32))
    high = int(saturating_rounding_doubling_high_mul(shifted, m0))
    return high, int(rounding_divide_by_pot(high, right))


def _requant_example(result: LayerResult, channel_axis: int) -> list[str]:
    """The requant unit on one accumulator, register by register."""
    acc = result.tensors["acc"].values
    out = result.tensors["output_q"].values
    rq = result.requant
    index = np.unravel_index(int(np.argmax(np.abs(acc))), acc.shape)
    per_channel = rq.multiplier if rq.multiplier is not None else rq.scale
    c = index[channel_axis % acc.ndim] if per_channel.size > 1 else 0
    a = int(acc[index])
    lines = [f"   example output {tuple(int(i) for i in index)} (the largest |accumulator|), channel {c}: acc = {a}"]
    zp = int(rq.output.zero_point[0])
    if rq.multiplier is not None:
        m0, shift = int(rq.multiplier.reshape(-1)[c]), int(rq.shift.reshape(-1)[c])
        lines.append(
            f"   M0 = {m0} (int32, M0 / 2^31 = {m0 / 2**31:.9f}), shift = {shift} "
            f"(real multiplier M0 * 2^(shift-31) = {m0 * 2.0 ** (shift - 31):.6g})"
        )
        lines.append(f"   int64 product acc * M0 = {a * m0}")
        if not get_mode(rq.mode).single_rounding:  # the mode's own table, not its name
            left, right = max(shift, 0), max(-shift, 0)
            high, scaled = fixed_point_steps(a, m0, shift)
            lines.append(
                f"   SaturatingRoundingDoublingHighMul(acc << {left}, M0) = {high}; "
                f"RoundingDivideByPOT(., {right}) = {scaled} (ties away from zero)"
            )
        else:
            lines.append(f"   single rounding: (acc * M0 + 2^({30 - shift})) >> {31 - shift}")
    elif get_mode(rq.mode).arithmetic == "float64":
        scale = float(rq.scale.reshape(-1)[c])
        lines.append(
            f"   float64 scale s_x*s_w/s_y = {scale:.17g}: acc * scale = {a * scale:.17g}, "
            "std::round (ties away from zero)"
        )
    else:
        scale = float(rq.scale.reshape(-1)[c])
        lines.append(
            f"   float32 scale {scale:.7g}: acc * scale = {np.float32(a) * np.float32(scale):.6g}, rounded half to even"
        )
    lines.append(f"   + output zero point {zp}, clamp to [{rq.act_min}, {rq.act_max}] -> code {int(out[index])}")
    return lines


def explain(
    workload: Workload,
    hw: HardwareConfig,
    layer_name: str,
    scheme: str,
    flavour: str = FlavourName.ONNX,
    weights: str = WeightFormatName.SYMMETRIC,
    tensors: WorkloadTensors | None = None,
    qparams: dict[str, QParams] | None = None,
) -> str:
    """A step-by-step account of ``layer_name`` under ``scheme`` on ``hw`` with weights in format ``weights``,
    on ``tensors`` (a model's own weights, the user's inputs; the workload's seeded draw when None) and, under
    static, a quantized model's own activation parameters ``qparams`` (calibrated when None)."""
    shapes = {s.layer.name: s for s in workload.shapes}
    if layer_name not in shapes:
        raise AccelsimError(
            f"no layer {layer_name!r} in workload {workload.name}",
            path="--layer",
            allowed=", ".join(list(shapes)[:15]) + (", ..." if len(shapes) > 15 else ""),
        )
    s = shapes[layer_name]
    program = lower(workload, hw, scheme, **lowering_options(flavour, weights))
    lowered = next(l for l in program.layers if l.name == layer_name)
    values = run_values(
        workload,
        hw,
        scheme,
        flavour=flavour,
        keep_results=[layer_name],
        weights=weights,
        tensors=tensors,
        qparams=qparams,
    )
    lv = values.layers[layer_name]
    act = getattr(s.layer, "activation", "none")
    head = (
        f"layer {layer_name} ({s.layer.type}, input {list(s.input_shapes[0])} -> output {list(s.output_shape)}, "
        f"activation {act}) under {scheme}"
        + (f" ({flavour} flavour)" if get_scheme(scheme).runtime_activations else "")
        + f" on {hw.name}"
    )
    floats = tensors.float_layers if tensors is not None else frozenset()
    if get_scheme(scheme).calibrated and (layer_name in floats or lv.qparams is None):
        return "\n".join([head, _float_group(lv)])
    fmt = get_weight_format(weights)
    if get_scheme(scheme).weight_group(weights) is not None and s.layer.type == "linear":
        return "\n".join([head, _units(lowered, hw), *_int4(lowered, hw, scheme, fmt, lv.output)])
    if not isinstance(s.layer, GEMM_LAYERS) or not lv.results:
        return "\n".join([head, _vector_layer(lowered, scheme, lv.output)])
    result = lv.results[0]
    lines = [head, _units(lowered, hw)]
    plan = get_scheme(scheme)
    steps = _static if plan.calibrated else _dynamic if plan.runtime_activations else _float_gemm
    lines += steps(result, lv, hw, act, s.layer.type)
    return "\n".join(lines)


def _units(lowered: LoweredLayer, hw: HardwareConfig) -> str:
    view, plan, unit = lowered.view, lowered.plan, lowered.unit
    assert view is not None and plan is not None, "only a layer the program runs as a GEMM gets here"
    where = (
        f"the {hw.array.rows}x{hw.array.cols} {hw.array.dataflow.upper()} array"
        if unit == "array"
        else "the vector unit"
    )
    tiles = sum(not t.range_pass for t in lowered.tiles)
    return (
        f"GEMM: {view.count} x ({view.m} x {view.k}) . ({view.k} x {view.n}) on {where}, "
        f"{tiles} tile{'s' if tiles > 1 else ''} of {plan.mt}x{plan.kt}x{plan.nt} ({plan.order} order)"
    )


def _accumulator(lv, hw: HardwareConfig) -> str:
    acc = hw.array.accumulator
    lo, hi = lv.accumulator_min, lv.accumulator_max
    return (
        f"int32 accumulator ({acc.bits}-bit register, {acc.overflow} on overflow): values used "
        f"[{lo}, {hi}] = {_bits(lo, hi)} of {acc.bits} bits; {lv.accumulator_overflows} overflows"
    )


def _static(result: LayerResult, lv, hw: HardwareConfig, act: str, kind: str) -> list[str]:
    t = result.tensors
    xq, w_q = t["input_q"], t["weight_q"]
    axis = 1 if kind in IMAGE_KINDS else -1
    real = dequantize_tensor(xq.values, xq.qparams)
    if kind == "matmul":
        operand = (
            f"2. DRAM -> filter SRAM: the second operand is an activation too, {_qp(w_q.qparams)}, codes "
            f"{_fmt(w_q.values)}; its zero point is the array's weight zero point (row-sum correction); "
            f"alpha {result.settings.get('alpha', 1.0):g} is folded into the requant multiplier"
        )
    else:
        operand = f"2. DRAM -> filter SRAM: weights {_qp(w_q.qparams)}, codes {_fmt(w_q.values)}" + (
            f"; bias int32 = round(b / (s_x * s_w[c])) = {_fmt(t['bias_q'].values)}"
            if "bias_q" in t
            else "; bias stays float32 and is added in the requant unit (fbgemm)"
        )
    after = (
        f"; then {act} on the vector unit (dequantize, {act} in float32, quantize): {_fmt(lv.output)}"
        if act not in ("none", "relu", "relu6")
        else ""
    )
    lines = [
        (
            f"1. DRAM -> ifmap SRAM: input activations are stored as {_qp(xq.qparams)} "
            f"(codes {_fmt(xq.values)} = real {_fmt(real)}); they are never float in memory"
        ),
        operand,
        (
            f"3. array: 8-bit x 8-bit products (16-bit), summed{' with the bias' if 'bias_q' in t else ''} in the "
            f"{_accumulator(lv, hw)}; "
            f"accumulators {_fmt(t['acc'].values)}"
        ),
        *_zero_point_lines(result, axis),
        f"4. requant unit ({hw.requant.rounding}): int32 -> {result.requant.output.dtype}, "
        f"output {_qp(result.requant.output)}"
        + (
            f"; {act} is fused as the clamp [{result.requant.act_min}, {result.requant.act_max}]"
            if act in ("relu", "relu6")
            else ""
        ),
        *_requant_example(result, axis),
        f"   {lv.requant_saturations} outputs saturated at the int8 range",
        (
            f"5. DRAM: outputs stored as {result.requant.output.dtype} codes {_fmt(t['output_q'].values)} "
            f"(real {_fmt(result.output)}){after}"
        ),
        f"Answer: activations are int8 in memory; {_static_answer(act)}",
    ]
    return lines


def _zero_point_lines(result: LayerResult, channel_axis: int) -> list[str]:
    """The weight zero point's row-sum correction on one output, with its numbers (none for symmetric weights)."""
    correction = zero_point_correction(result)
    if correction is None:
        return []
    acc = result.tensors["acc"].values
    index = np.unravel_index(int(np.argmax(np.abs(acc))), acc.shape)
    c = index[channel_axis % acc.ndim]
    zw = result.tensors["weight_q"].qparams.zero_point
    z = int(zw[c] if zw.size > 1 else zw[0])
    sums = input_row_sums(result)
    row = tuple(int(i) for i in index)
    rowsum = int(
        sums[row[0], c // (acc.shape[1] // sums.shape[1]), row[2], row[3]]
        if result.kind in IMAGE_KINDS
        else sums[row[:-1] + (0,)]
    )
    fix = int(correction[index])
    bias = "bias + " if "bias_q" in result.tensors else ""
    return [
        (
            f"   weight zero point: acc = {bias}sum (x_q - z_x) * w_q - z_w[c] * rowsum(x_q - z_x); the array sums the "
            "codes and starts each output from the correction (one row sum of the input per output row, times the "
            "channel's zero point)"
        ),
        (
            f"   example output {row}, channel {c}: rowsum(x_q - z_x) = {rowsum}, z_w[{c}] = {z}, correction "
            f"-({z}) * ({rowsum}) = {fix}; {bias}sum (x_q - z_x) * w_q = {int(acc[index]) - fix}; acc = {int(acc[index])}"
        ),
    ]


def _static_answer(act: str) -> str:
    if act in ("relu", "relu6"):
        return (
            f"the output before {act} is the int32 accumulator, never a float: the requant unit scales it to "
            f"int8 and applies {act} as its clamp"
        )
    if act == "none":
        return "the output is the int32 accumulator, scaled straight to int8 by the requant unit, never a float"
    return (
        f"the layer output is requantized to int8; {act}, which a clamp cannot express, runs on the vector unit "
        "in float32 between a dequantize and a quantize"
    )


def _dynamic(result: LayerResult, lv, hw: HardwareConfig, act: str, kind: str) -> list[str]:
    t = result.tensors
    x, xq, w_q, acc = t["input"], t["input_q"], t["weight_q"], t["acc"]
    axis = 1 if kind in IMAGE_KINDS else acc.values.ndim - 1
    x_scale = xq.qparams.scale if xq.qparams.axis is not None else xq.qparams.scale[0]
    bias = t["bias"].values if "bias" in t else None
    pre = scale_accumulator(acc.values, x_scale, w_q.qparams.scale, bias, axis=axis)
    rows = xq.qparams.scale.size if xq.qparams.axis is not None else 0
    parameters = (
        f"{xq.qparams.dtype}, per row: one scale and zero point per token ({rows} rows, scales "
        f"{float(xq.qparams.scale.min()):.4g}..{float(xq.qparams.scale.max()):.4g}, zero points "
        f"{_fmt(xq.qparams.zero_point, 3)}), float32 and int32 beside the codes in SRAM ({rows * ROW_PARAMETER_BYTES:,} "
        "bytes), never in DRAM"
        if rows
        else _qp(xq.qparams)
    )
    return [
        f"1. DRAM: input activations are stored as float32 ({_fmt(x.values)}), {x.values.nbytes:,} bytes",
        (
            f"2. vector unit: range of {'each row' if rows else 'the input'} (input min {float(x.values.min()):.5g}, "
            f"max {float(x.values.max()):.5g}) -> {parameters}"
        ),
        f"3. vector unit: quantize float32 -> {xq.qparams.dtype} on the way into SRAM: codes {_fmt(xq.values)}",
        f"4. DRAM -> filter SRAM: weights {_qp(w_q.qparams)}; bias stays float32",
        (
            f"5. array: {xq.qparams.dtype} (minus zero point) x {w_q.qparams.dtype} into the {_accumulator(lv, hw)}; "
            f"accumulators {_fmt(acc.values)}"
        ),
        *_zero_point_lines(result, axis),
        f"6. vector unit: dequantize float32(acc) * (s_x{'[row]' if rows else ''} * s_w[c]) + bias -> float32 {_fmt(pre)}"
        + (f"; then {act} in float32 -> {_fmt(lv.output)}" if act != "none" else ""),
        f"7. DRAM: outputs stored as float32, {t['output'].values.nbytes:,} bytes",
        (
            f"Answer: yes, activations are stored in float32 under dynamic range quantization (int8 only between "
            f"the vector unit and the array), and the output before {act if act != 'none' else 'storing'} is float32, "
            "dequantized from the int32 accumulator by the vector unit."
        ),
    ]


def _dequantized_where(hw: HardwareConfig) -> str:
    """Where a weight-only layer's weights are dequantized (docs/timing.md, weight-only GEMMs)."""
    if hw.array.dequant_lanes:
        return (
            f"by the array's dequantization unit ({hw.array.dequant_lanes} weights per cycle) between the filter "
            "buffer and the PEs (the buffer holds the codes)"
        )
    return "by the vector unit on the way into SRAM"


def _float_gemm(result: LayerResult, lv, hw: HardwareConfig, act: str, kind: str) -> list[str]:
    t = result.tensors
    where = (
        f"the array's float datapath at {hw.array.float_rate:g}x the int8 rate"
        if hw.array.float_rate
        else f"the vector unit ({hw.vector.lanes} fp32 MACs per cycle: this array has no float datapath)"
    )
    weights = (
        f"{_qp(t['weight_q'].qparams)} in DRAM, dequantized {_dequantized_where(hw)} "
        f"({_fmt(t['weight_dequantized'].values)})"
        if "weight_q" in t
        else "float32"
    )
    return [
        f"1. DRAM: input activations float32 ({_fmt(t['input'].values)})",
        f"2. weights: {weights}",
        f"3. GEMM in float32 on {where}",
        f"4. vector unit: bias and {act} in float32; outputs stored as float32 {_fmt(lv.output)}",
    ]


def _float_group(lv) -> str:
    """A layer a quantized model's runtime computes in float32 between dequantize and quantize."""
    stored = (
        f"quantized to {_qp(lv.qparams)}: codes {_fmt(lv.stored)}"
        if lv.qparams is not None
        else f"kept float32 for the next float layer (the model quantizes it nowhere): {_fmt(lv.stored)}"
    )
    return (
        "the model's runtime computes this layer in float32 between DequantizeLinear and QuantizeLinear (ONNX "
        "Runtime leaves the group unfused), and so do these values: the inputs and the model's weights "
        f"dequantized, the float32 op, then {stored}; the timing is the accelerator's int8 layer"
    )


def _int4(lowered: LoweredLayer, hw: HardwareConfig, scheme: str, fmt: WeightFormat, output: np.ndarray) -> list[str]:
    """The dtypes along an int4 group-wise layer's path: weight-only (woq) or W4A8 (dynamic)."""
    view = lowered.view
    g, tiles = fmt.group, lowered.tiles
    assert view is not None and g is not None
    zero_points = "zero point 8 (not stored)" if fmt.symmetric else "a 4-bit zero point (two per byte)"
    lines = [
        (
            f"1. DRAM -> filter SRAM: weights uint4 codes, two per byte ({sum(t.weight_bytes for t in tiles):,} bytes), "
            f"in groups of {g} along K ({ceil(view.k / g)} per output channel), each with a float32 scale and "
            f"{zero_points}: {sum(t.weight_scale_bytes for t in tiles):,} bytes of group parameters"
        )
    ]
    if get_scheme(scheme).float_gemm:
        where = f"the array's float datapath ({hw.array.float_rate:g}x)" if hw.array.float_rate else "the vector unit"
        lines += [
            f"2. (code - zero point) * scale -> float32 weights, {_dequantized_where(hw)}",
            f"3. {where}: float32 x float32 -> float32 (ORT MatMulNBits accuracy_level 0-3)",
        ]
    else:
        rescale = sum(t.rescale_cycles for t in tiles)
        lines += [
            (
                f"2. vector unit: float32 activations -> int8 per row and group of {g}: scale max|a| / 127, "
                "codes rint(a * 127 / max|a|) (ties to even)"
            ),
            "3. array: int8 x uint4 (unpacked to 8 bits) -> int32, one partial sum per group",
            (
                f"4. requant unit ({hw.requant.lanes} lanes) as the rescale stage: int32 -> float32, "
                f"acc += (a_scale * w_scale) * sum + (a_scale * sum(a)) * (-w_scale * zp) per group: "
                f"{rescale:,} cycles beside the array's {sum(t.compute_cycles for t in tiles):,} (ORT accuracy_level 4)"
            ),
        ]
    lines.append(f"{len(lines) + 1}. vector unit: + float32 bias, activation -> float32 output {_fmt(output)}")
    return lines


def _vector_layer(lowered: LoweredLayer, scheme: str, output: np.ndarray) -> str:
    dtype = (
        "int8 codes (dequantized to float32, computed, quantized back; maxpool compares codes directly)"
        if get_scheme(scheme).calibrated
        else "float32"
    )
    return f"runs on the vector unit in {len(lowered.tiles)} chunks; data in memory is {dtype}; output {_fmt(output)}"
