"""conv_transpose2d, resize and slice (issue 16: the PP-OCR detector's and recognizer's ops).

fp32 against ONNX Runtime on small models built in code (odd sizes, strides, output_padding, pads, groups,
dilation, output_shape, auto_pad; nearest / linear resizing under every coordinate transformation the layer
has, scales and sizes; SVTR's batch-moving q / k / v split; strided slices) and the kernel against PyTorch;
static int8 conv_transpose2d against PyTorch's quantized ConvTranspose2d (fbgemm) with ties and saturation;
nearest resize and slice move static codes exactly, linear resize is dequantize -> float -> quantize; the
lowering's GEMM, col2im and vector prices; the export loop; the workload fields' refusals."""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.config.loader import load_hardware
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.kernels.col2im import ConvTransposeGeometry, float_conv_transpose2d, int_conv_transpose2d
from accelsim.lowering.program import COL2IM_OPS, MOVE_OPS, RESIZE_LINEAR_OPS, STATIC_REQUANT_OPS, Lowerer, lower
from accelsim.lowering.tiling import halo_bytes, smallest_halves
from accelsim.onnx import import_onnx
from accelsim.onnx.export import codes_name, export
from accelsim.quant import Prepared, QParams, Quantization, QuantizedWeight, quantize_tensor, run_layer
from accelsim.requant_modes import get_mode
from accelsim.values.runner import calibrate, resize, run_values
from accelsim.values.tensors import materialize

sys.path.insert(0, str(Path(__file__).parent))
import onnx_models as om
import test_values_program
from test_values_program import assert_same_gemms, program_gemms

ort_reference = pytest.importorskip("ort_reference")  # imports onnxruntime
torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-5, 1e-6
#: the layer types each builder imports as
TYPES = {
    "conv_transpose_k2_s2_bn": ["conv_transpose2d"],  # bias Add, BatchNormalization and Relu folded
    "conv_transpose_pads_output_padding": ["conv_transpose2d"],
    "conv_transpose_groups_dilation": ["conv_transpose2d"],
    "conv_transpose_depthwise_same_upper": ["conv_transpose2d"],
    "conv_transpose_output_shape": ["conv_transpose2d"],
    **{name: ["conv2d", "resize"] for name in om.UPSAMPLING if name.startswith("resize_")},
    "qkv_split_attention": ["linear", "reshape"]
    + ["slice", "reshape", "transpose"] * 3
    + ["transpose", "matmul", "softmax", "matmul", "transpose", "reshape", "linear"],
    "slice_channels_steps": ["conv2d", "slice", "slice", "activation"],
}


def _import(built: om.Built, tmp_path: Path):
    path = tmp_path / f"{built.name}.onnx"
    onnx.save(built.model, path)
    return import_onnx(path)


def _output(imported, feeds: dict[str, np.ndarray], scheme: str) -> np.ndarray:
    values = run_values(imported.workload, load_hardware(), scheme, tensors=imported.tensors(feeds))
    return values.layers[next(iter(imported.outputs.values()))].output


def test_every_builder_has_its_expected_layers() -> None:
    assert set(TYPES) == set(om.UPSAMPLING)


@pytest.mark.parametrize("name", sorted(om.UPSAMPLING))
def test_builder_imports_and_equals_onnxruntime(name: str, tmp_path: Path) -> None:
    built = om.UPSAMPLING[name]()
    imported = _import(built, tmp_path)
    assert [layer.type for layer in imported.workload.layers] == TYPES[name]
    assert not imported.one_sample  # the qkv split keeps its batch
    (want,) = ort_reference.run(built.model, built.inputs, "disabled")
    np.testing.assert_allclose(_output(imported, built.inputs, "fp32").reshape(want.shape), want, rtol=RTOL, atol=ATOL)
    for scheme in ("woq", "dynamic", "static"):
        assert np.all(np.isfinite(_output(imported, built.inputs, scheme)))


@pytest.mark.parametrize(
    ("c", "o", "groups", "kernel", "stride", "pads", "output_padding", "dilation", "hw"),
    [
        (3, 5, 1, (2, 2), (2, 2), (0, 0, 0, 0), (0, 0), (1, 1), (1, 1)),
        (4, 6, 2, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1), (5, 7)),
        (6, 6, 6, (3, 1), (1, 3), (0, 0, 2, 0), (0, 2), (1, 1), (4, 3)),
        (4, 8, 4, (3, 3), (3, 2), (2, 1, 0, 3), (2, 1), (2, 2), (3, 5)),
        (2, 3, 1, (5, 4), (1, 1), (4, 3, 4, 3), (0, 0), (1, 1), (6, 6)),
    ],
)
def test_col2im_kernel_equals_torch(c, o, groups, kernel, stride, pads, output_padding, dilation, hw) -> None:
    """float conv_transpose2d == torch's (its padding cropped from the full output and output_padding added
    by hand, as torch pads symmetrically only); the integer kernel == the float one on codes (exact)."""
    rng = np.random.default_rng(sum(kernel) + c)
    x = rng.standard_normal((2, c, *hw), dtype=np.float32)
    w_torch = rng.standard_normal((c, o // groups, *kernel), dtype=np.float32)
    full = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w_torch), stride=stride, groups=groups, dilation=dilation
    ).numpy()
    full = np.pad(full, ((0, 0), (0, 0), (0, output_padding[0]), (0, output_padding[1])))
    top, left, bottom, right = pads
    want = full[:, :, top : full.shape[2] - bottom, left : full.shape[3] - right]
    c_per, o_per = c // groups, o // groups
    w = np.concatenate([w_torch[g * c_per : (g + 1) * c_per].transpose(1, 0, 2, 3) for g in range(groups)])
    geometry = ConvTransposeGeometry(stride, pads, output_padding, dilation, groups)
    np.testing.assert_allclose(float_conv_transpose2d(x, w, geometry), want, rtol=1e-5, atol=1e-5)
    xq = rng.integers(0, 256, x.shape).astype(np.uint8)
    wq = rng.integers(-128, 128, w.shape).astype(np.int8)
    acc = int_conv_transpose2d(xq, wq, geometry, x_zero_point=131, w_zero_point=np.arange(o) - 3, bias=np.arange(o))
    centred = float_conv_transpose2d(
        xq.astype(np.float64) - 131, wq.astype(np.float64) - (np.arange(o) - 3).reshape(-1, 1, 1, 1), geometry
    )
    np.testing.assert_array_equal(acc.values, centred.astype(np.int64) + np.arange(o).reshape(1, -1, 1, 1))
    assert acc.overflows == 0 and o_per * groups == o


def test_int_accumulator_range_applies_to_each_output_total() -> None:
    """A narrow accumulator wraps (two's complement, any order) or saturates each output's total."""
    xq = np.full((1, 1, 2, 2), 100, np.int8)
    wq = np.full((1, 1, 2, 2), 100, np.int8)
    geometry = ConvTransposeGeometry(padding=(0, 0, 0, 0))  # stride 1: the centre output sums 4 products
    exact = int_conv_transpose2d(xq, wq, geometry, acc_bits=64).values
    assert exact[0, 0, 1, 1] == 40_000
    wrapped = int_conv_transpose2d(xq, wq, geometry, acc_bits=16)
    assert wrapped.values[0, 0, 1, 1] == 40_000 - 65_536 and wrapped.overflows >= 1
    saturated = int_conv_transpose2d(xq, wq, geometry, acc_bits=16, overflow="saturate")
    assert saturated.values[0, 0, 1, 1] == 32_767


def _torch_static_conv_transpose(x, codes, w_scale, bias, in_qp, out_qp, stride, padding, output_padding, groups):
    """torch's quantized ConvTranspose2d (fbgemm) on the same codes and parameters, and accelsim's layer."""
    torch.backends.quantized.engine = "fbgemm"
    geometry = ConvTransposeGeometry((stride,) * 2, (padding,) * 4, (output_padding,) * 2, (1, 1), groups)
    w_qp = QParams(np.float32(w_scale), 0, "int8")
    res = run_layer(
        "conv_transpose2d",
        x,
        codes.astype(np.float32) * np.float32(w_scale),
        bias,
        quantization=Quantization(scheme="static", requant_mode="fbgemm"),
        geometry=geometry,
        prepared=Prepared(weight=QuantizedWeight(codes, w_qp), input_qparams=in_qp, output_qparams=out_qp),
    )
    c, o = x.shape[1], codes.shape[0]
    o_per, c_per = o // groups, c // groups
    torch_codes = np.concatenate([codes[g * o_per : (g + 1) * o_per].transpose(1, 0, 2, 3) for g in range(groups)])
    with warnings.catch_warnings():  # torch's quantized tensors are deprecated (they still compute)
        warnings.simplefilter("ignore")
        layer = torch.ao.nn.quantized.ConvTranspose2d(
            c, o, codes.shape[2:], stride=stride, padding=padding, output_padding=output_padding, groups=groups
        )
        weight = torch._make_per_tensor_quantized_tensor(
            torch.from_numpy(np.ascontiguousarray(torch_codes)), w_scale, 0
        )
        layer.set_weight_bias(weight, torch.from_numpy(bias))
        layer.scale, layer.zero_point = float(out_qp.scale[0]), int(out_qp.zero_point[0])
        xt = torch.quantize_per_tensor(
            torch.from_numpy(x), float(in_qp.scale[0]), int(in_qp.zero_point[0]), torch.quint8
        )
        want = layer(xt).int_repr().numpy()
    np.testing.assert_array_equal(xt.int_repr().numpy(), res.tensors["input_q"].values)
    assert c_per * groups == c
    return res, want


@pytest.mark.parametrize(("stride", "padding", "output_padding", "groups"), [(2, 0, 0, 1), (2, 1, 1, 2), (3, 1, 2, 1)])
def test_static_conv_transpose_equals_torch_quantized(stride, padding, output_padding, groups) -> None:
    rng = np.random.default_rng(stride + padding)
    x = rng.normal(size=(2, 4, 5, 6)).astype(np.float32)
    codes = rng.integers(-60, 61, (6, 4 // groups, 3, 3)).astype(np.int8)
    bias = rng.normal(size=6).astype(np.float32)
    in_qp, out_qp = QParams(np.float32(0.03), 128, "uint8"), QParams(np.float32(0.2), 120, "uint8")
    res, want = _torch_static_conv_transpose(
        x, codes, 0.01, bias, in_qp, out_qp, stride, padding, output_padding, groups
    )
    np.testing.assert_array_equal(res.tensors["output_q"].values, want)


def test_static_conv_transpose_ties_and_saturation_follow_torch() -> None:
    """Power-of-two scales: input codes on exact half steps, weight scale 2**-5, output scale 2**-7, so the
    requant multiplier is 2**-3 * 2**-5 / 2**-7 = 0.5 and every odd accumulator is an exact tie; inputs far
    outside the range saturate the input and the outputs at both ends. Rounding the ties half away from zero
    (the other common rule) would change over a tenth of the outputs: the test fails if the mode is swapped."""
    rng = np.random.default_rng(7)
    x = ((rng.integers(-3, 2, (2, 4, 5, 6)) + 0.5) * 0.125).astype(np.float32)
    x.flat[rng.choice(x.size, 12, replace=False)] = np.float32([-100.0, 100.0] * 6)
    codes = rng.integers(-3, 4, (6, 4, 3, 3)).astype(np.int8)
    codes[:, 0, 1, 1] = 127
    bias = (rng.integers(-60, 60, 6) * 2.0**-8).astype(np.float32)
    in_qp, out_qp = QParams(np.float32(0.125), 77, "uint8"), QParams(np.float32(2.0**-7), 127, "uint8")
    res, want = _torch_static_conv_transpose(x, codes, 2.0**-5, bias, in_qp, out_qp, 2, 1, 1, 1)
    out = res.tensors["output_q"].values
    np.testing.assert_array_equal(out, want)
    inputs = res.tensors["input_q"].values
    assert np.count_nonzero(inputs == 0) and np.count_nonzero(inputs == 255)
    assert np.count_nonzero(out == 0) and np.count_nonzero(out == 255)
    v = res.tensors["acc"].values.astype(np.float64) * 0.5  # the int32 bias is in the accumulator
    ties = np.count_nonzero(np.abs(v - np.floor(v)) == 0.5)
    away = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + 127, 0, 255)
    assert ties > v.size // 4 and np.count_nonzero(away != out) > v.size // 10


def _workload(layers: list[dict], input_shape: list[int], batch: int = 2) -> Workload:
    doc = {"schema_version": 1, "name": "w", "batch": batch, "input_shape": input_shape, "layers": layers}
    return validate(Workload, doc, "w.yaml")


def test_static_nearest_resize_and_slice_move_codes_linear_resize_requantizes() -> None:
    """Nearest resize and slice pick input codes, keeping their parameters (exact); linear resize dequantizes,
    interpolates in float32 and quantizes to its own calibrated parameters."""
    workload = _workload(
        [
            {"name": "c", "type": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
            {"name": "n", "type": "resize", "scale": [2, 3], "coordinate_transformation": "asymmetric"},
            {"name": "s", "type": "slice", "axis": 1, "start": 1, "end": 9, "step": 3},
            {"name": "l", "type": "resize", "mode": "linear", "size": [7, 4]},
        ],
        [3, 5, 6],
    )
    tensors = materialize(workload, seed=3)
    values = run_values(workload, load_hardware(), "static", tensors=tensors)
    conv, near, cut, linear = (values.layers[n] for n in "cnsl")
    near_layer, linear_layer = workload.layers[1], workload.layers[3]
    np.testing.assert_array_equal(near.codes, resize(near_layer, conv.codes))  # type: ignore[arg-type]
    assert near.qparams == conv.qparams and cut.qparams == conv.qparams
    np.testing.assert_array_equal(cut.codes, near.codes[:, :, 1:9:3])  # type: ignore[index]
    qp = values.qparams["l"]
    assert values.variant is not None
    want, _ = quantize_tensor(resize(linear_layer, cut.output), qp, get_mode(values.variant).input_rule)  # type: ignore[arg-type]
    assert linear.qparams == qp
    np.testing.assert_array_equal(linear.codes, want)  # type: ignore[arg-type]


def test_lowering_prices_the_gemm_col2im_and_vector_layers() -> None:
    """conv_transpose2d: one GEMM per group, M = batch x H x W input pixels, K = C/groups, N = O/groups x kh x
    kw columns, MACs = the GEMM's; each column is added once (col2im) and each output finished once. Resize:
    one move per output (nearest), seven ops (+2 under static) for linear; slice: one move per kept element,
    only those fetched."""
    workload = _workload(
        [
            {
                "name": "t",
                "type": "conv_transpose2d",
                "out_channels": 6,
                "kernel": 3,
                "stride": 2,
                "padding": 1,
                "output_padding": 1,
                "groups": 2,
            },
            {"name": "n", "type": "resize", "scale": [2, 2], "nearest_mode": "floor"},
            {"name": "l", "type": "resize", "mode": "linear", "scale": [0.5, 0.5]},
            {"name": "s", "type": "slice", "axis": 0, "end": 3},
        ],
        [4, 5, 7],
    )
    t = workload.shapes[0]
    assert t.output_shape == (6, 10, 14) and t.macs == 5 * 7 * 4 * 3 * 9 and t.params == 6 * 2 * 9 + 6
    hw = load_hardware()
    for scheme, static in (("fp32", 0), ("static", 1)):
        program = lower(workload, hw, scheme)
        layers = {layer.name: layer for layer in program.workload_layers}
        view = layers["t"].view
        assert view is not None and (view.gemms, *view.gemm_shape) == (2, 2 * 5 * 7, 2, 3 * 9)
        assert layers["t"].macs == 2 * t.macs
        vector = Lowerer(hw, scheme).vector
        ops = {name: sum(x.compute_cycles for x in layers[name].tiles) for name in "nls"}
        assert ops["n"] == vector.cycles(2 * 6 * 20 * 28 * MOVE_OPS)
        assert ops["l"] == vector.cycles(2 * 6 * 10 * 14 * (RESIZE_LINEAR_OPS + static * STATIC_REQUANT_OPS))
        assert ops["s"] == vector.cycles(2 * 3 * 10 * 14 * MOVE_OPS)
        fmt = program.operand_format
        assert fmt is not None
        assert sum(x.ifmap_bytes for x in layers["s"].tiles) == 2 * 3 * 10 * 14 * fmt.ofmap_dram
        drained = [x for x in layers["t"].tiles if x.post_unit is not None]
        columns = 2 * (2 * 5 * 7) * 27  # each column value scatter-added once
        assert sum(x.post_cycles for x in drained) >= vector.cycles(columns * COL2IM_OPS)
        written = sum(x.ofmap_bytes for x in layers["t"].tiles)
        assert abs(written - 2 * 6 * 10 * 14 * fmt.ofmap_dram) <= len(drained) * fmt.ofmap_dram


def _transposed(kernel: int, stride: int, dilation: int = 1) -> Workload:
    layer = {"name": "t", "type": "conv_transpose2d", "out_channels": 64, "kernel": kernel, "stride": stride}
    return _workload([{**layer, "dilation": dilation}], [64, 32, 32], batch=1)


@pytest.mark.parametrize(
    ("kernel", "stride", "dilation", "halo"),
    [(2, 2, 1, 0), (3, 2, 1, 65 + 3), (4, 2, 1, 2 * 66 + 4 * 2), (3, 1, 1, 2 * 34 + 3 * 2), (2, 1, 2, 2 * 34 + 3 * 2)],
)
def test_overlapping_conv_transpose_keeps_its_halo_in_the_ofmap_buffer(
    kernel: int, stride: int, dilation: int, halo: int
) -> None:
    """A kernel that spans more than its stride makes neighbouring input pixels add into the same outputs, so an
    M block's partial sums of the outputs it shares with the pixels after it (the halo: ``(span - s)`` output
    rows of the whole width and ``span x (span - s)`` within a row; 0 for DB's 2x2 stride 2) wait in the ofmap
    buffer for the next block. Every plan with more than one M block leaves room for them beside its block's
    accumulators; without the reservation the tiling overfills the buffer (16 and 64 KiB ofmap buffers), and a
    buffer smaller than one accumulator and one channel's halo is refused naming the size that works."""
    workload = _transposed(kernel, stride, dilation)
    for kib in (16, 64, 256):
        hw = load_hardware(overrides=[f"sram.ofmap_kib={kib}"])
        lowerer = Lowerer(hw, "static")
        view = lowerer.choose_view(workload.shapes[0], workload.batch)
        assert view.col2im is not None and view.col2im.halo == halo
        plan = lowerer._plan(view)
        fmt, half = lowerer.fmt, lowerer.halves.ofmap
        reserved = halo_bytes(view, fmt, plan.nt) if plan.mt < view.m else 0
        assert plan.mt * plan.nt * fmt.accumulator + reserved <= half
        if halo and kib < 256:  # the old tiling, blind to the halo, fills the half with accumulators alone
            blind = Lowerer(hw, "static")._plan(replace(view, col2im=view.col2im._replace(halo=0)))
            assert blind.mt < view.m
            assert blind.mt * blind.nt * fmt.accumulator + halo_bytes(view, fmt, blind.nt) > half
    if halo:
        need = smallest_halves(view, lowerer.fmt).ofmap
        assert need == lowerer.fmt.accumulator * (1 + halo)
        small = load_hardware(overrides=["sram.ofmap_kib=1"])  # 512-byte halves
        if need > 512:
            with pytest.raises(AccelsimError, match=rf"layer 't' needs {need:,} bytes .* ofmap buffer .*{2 * need:,}"):
                lower(workload, small, "static")
        else:
            lower(workload, small, "static")


@pytest.mark.parametrize(
    "name",
    [
        "conv_transpose_pads_output_padding",
        "conv_transpose_groups_dilation",
        "resize_linear_align_corners_sizes",
        "resize_nearest_sizes_round_prefer_ceil",
        "qkv_split_attention",
        "slice_channels_steps",
    ],
)
def test_export_loop_equals_accelsim_fp32(name: str, tmp_path: Path) -> None:
    """The fp32 export of an imported model, run by ORT, equals accelsim's fp32 output."""
    built = om.UPSAMPLING[name]()
    imported = _import(built, tmp_path)
    tensors = imported.tensors(built.inputs)
    exported = export(imported.workload, load_hardware(), "fp32", tensors=tensors)
    (got,) = ort_reference.run(exported.model, {"input": built.inputs["x"]}, "disabled")
    want = _output(imported, built.inputs, "fp32")
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    ("layer", "input_shape", "message"),
    [
        (
            {"type": "conv_transpose2d", "out_channels": 4, "kernel": 3, "output_padding": 2, "stride": 2},
            [2, 4, 4],
            "not below the stride",
        ),
        ({"type": "conv_transpose2d", "out_channels": 4, "kernel": 1, "padding": 3}, [2, 4, 4], "crops the whole"),
        ({"type": "conv_transpose2d", "out_channels": 3, "kernel": 2, "groups": 2}, [2, 4, 4], "does not divide"),
        ({"type": "conv_transpose2d", "out_channels": 2, "kernel": 2}, [4, 4], "needs a [C, H, W] input"),
        ({"type": "conv_transpose2d", "out_channels": 2, "kernel": 2, "output_padding": -1}, [2, 4, 4], "plausible"),
        ({"type": "resize", "scale": [2, 2], "size": [4, 4]}, [2, 4, 4], "one of them"),
        ({"type": "resize"}, [2, 4, 4], "one of them"),
        ({"type": "resize", "scale": [0, 2]}, [2, 4, 4], "plausible"),
        ({"type": "resize", "scale": [0.1, 2]}, [2, 4, 4], "makes [4, 4] into [0, 8]"),
        ({"type": "resize", "scale": [2, 2], "mode": "cubic"}, [2, 4, 4], "mode"),
        ({"type": "resize", "scale": [2, 2], "mode": "linear", "nearest_mode": "floor"}, [2, 4, 4], "nearest_mode"),
        (
            {"type": "resize", "size": [4, 4], "coordinate_transformation": "tf_crop_and_resize"},
            [2, 4, 4],
            "half_pixel",
        ),
        ({"type": "resize", "size": [4, 4]}, [2, 4], "needs a [C, H, W] input"),
        ({"type": "slice", "end": 5}, [2, 4], "past the 2 elements"),
        ({"type": "slice", "start": 3, "end": 3, "axis": 1}, [2, 4], "not below end"),
        ({"type": "slice", "end": 2, "axis": 2}, [2, 4], "is not an axis"),
        ({"type": "slice", "end": 2, "step": 0}, [2, 4], "plausible"),
    ],
)
def test_fields_are_checked(layer: dict, input_shape: list[int], message: str) -> None:
    with pytest.raises(AccelsimError, match="layers") as info:
        _workload([{"name": "l", **layer}], input_shape)
    assert message in str(info.value) and "\n" not in str(info.value)


#: every GEMM the kernels run while a test holds it (test_values_program's fixture, registered here)
recorded_gemms = test_values_program.kernel_gemms
#: every new layer type in one YAML-style workload (seeded weights), grouped and activated transposed convs
UP = [
    {"name": "c", "type": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "activation": "relu"},
    {
        "name": "t",
        "type": "conv_transpose2d",
        "out_channels": 6,
        "kernel": 3,
        "stride": 2,
        "padding": 1,
        "output_padding": 1,
    },
    {
        "name": "t2",
        "type": "conv_transpose2d",
        "out_channels": 4,
        "kernel": 2,
        "stride": 2,
        "groups": 2,
        "activation": "relu",
    },
    {
        "name": "n",
        "type": "resize",
        "scale": [2, 2],
        "coordinate_transformation": "asymmetric",
        "nearest_mode": "floor",
    },
    {"name": "s", "type": "slice", "axis": 0, "start": 1, "end": 4, "step": 2},
    {"name": "l", "type": "resize", "mode": "linear", "scale": [0.5, 0.5]},
]


@pytest.mark.parametrize("scheme", ["fp32", "woq", "dynamic", "static"])
@pytest.mark.parametrize("hw_name", [None, "edge-npu"])
def test_kernels_run_the_programs_gemms(recorded_gemms: list, hw_name: str | None, scheme: str) -> None:
    """The values compute the GEMMs the program lowers conv_transpose2d to (one per group, packed groups too)."""
    workload, hw = _workload(UP, [3, 6, 7]), load_hardware(hw_name)
    program = lower(workload, hw, scheme)
    tensors = materialize(workload)
    qparams = None
    if scheme == "static":
        qparams = calibrate(workload, tensors, program, dtype=get_mode(hw.requant.rounding).activation_dtype)
        recorded_gemms.clear()
    run_values(workload, hw, scheme, tensors=tensors, qparams=qparams, program=program)
    assert_same_gemms(recorded_gemms, program_gemms(program))


def test_static_export_runs_in_onnxruntime_with_accelsims_codes() -> None:
    """The QDQ export of the workload above, run by ORT (ORT_ENABLE_EXTENDED), stores accelsim's static codes
    in every layer. ORT on this CPU has no fused integer kernel for ConvTranspose or Resize: it leaves them as
    float groups between DequantizeLinear and QuantizeLinear (measured equal here, not a bit-exactness proof
    of the integer path, which the torch tests above are). A grouped conv_transpose2d with per-channel weights
    has no QDQ form (ONNX's per-axis weight parameters name a group's channels only): one error."""
    ungrouped = [{k: v for k, v in layer.items() if k != "groups"} for layer in UP]  # per-channel QDQ: groups 1
    workload = _workload(ungrouped, [3, 6, 7])
    tensors = materialize(workload)
    hw = load_hardware(None, ["requant.rounding=float_half_even"])
    graph = ort_reference.fused(export(workload, hw, "static", tensors).model)
    assert {group.op_type for group in ort_reference.unfused_qdq_groups(graph)} == {"ConvTranspose", "Resize"}
    ort = ort_reference.node_outputs(graph, tensors.inputs)
    values = run_values(workload, hw, "static", tensors=tensors)
    for layer, lv in values.layers.items():
        np.testing.assert_array_equal(ort[codes_name(layer)], lv.codes, err_msg=layer)  # type: ignore[arg-type]
    with pytest.raises(AccelsimError, match="per-channel weights of a grouped conv_transpose2d"):
        export(_workload(UP, [3, 6, 7]), hw, "static", materialize(_workload(UP, [3, 6, 7])))
