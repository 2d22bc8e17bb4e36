"""The nine light models the onnx package ships (onnx/backend/test/data/light, opset 9, converted up), one
table: each imports (under 2 s, issue 16), holds the MACs onnx's own shape inference gives its Conv and Gemm
nodes, equals the output onnx ships within onnx's backend-test tolerance, and lowers and times under fp32
and static on every shipped hardware config."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.config.loader import load_hardware
from accelsim.onnx import OnnxImport, import_onnx
from accelsim.schemes import SchemeName
from accelsim.simulation import RunOptions, simulate
from accelsim.values.runner import run_values

sys.path.insert(0, str(Path(__file__).parent))
import onnx_models as om

#: onnx's backend tests compare model outputs at these tolerances (onnx/backend/test/loader)
RTOL, ATOL = 1e-3, 1e-7
HWCONFIGS = sorted((Path(__file__).parents[1] / "hwconfigs").glob("*.yaml"))
#: model -> layer types its workload must hold (what makes it more than a conv chain)
LIGHT = {
    "resnet50": {"conv2d", "add", "maxpool", "avgpool", "linear"},
    "vgg19": {"conv2d", "maxpool", "linear"},
    "densenet121": {"scale_shift", "concat", "avgpool"},  # pre-activation BatchNorms without a conv before
    "inception_v2": {"concat", "avgpool", "maxpool"},
    "squeezenet": {"concat", "reshape"},
    "bvlc_alexnet": {"lrn"},
    "zfnet512": {"lrn"},
    "inception_v1": {"lrn", "concat"},
    "shufflenet": {"reshape", "transpose", "concat"},  # the channel shuffle: [g, C/g, H, W] per sample
}


def independent_macs(model: onnx.ModelProto) -> int:
    """Conv and Gemm MACs from onnx's own shape inference on the model as shipped (not the importer's)."""
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)
    }
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            macs += int(np.prod(shapes[node.output[0]][1:])) * int(np.prod(shapes[node.input[1]][1:]))
        elif node.op_type == "Gemm":
            macs += int(np.prod(shapes[node.input[1]]))
    return macs


def _fp32(imported: OnnxImport, x: np.ndarray) -> np.ndarray:
    tensors = imported.tensors({next(iter(imported.inputs)): x})
    values = run_values(imported.workload, load_hardware(), SchemeName.FP32, tensors=tensors)
    return values.layers[next(iter(imported.outputs.values()))].stored


def test_the_table_is_every_light_model() -> None:
    assert {p.name[len("light_") : -len(".onnx")] for p in om.LIGHT_DIR.glob("light_*.onnx")} == set(LIGHT)


@pytest.mark.parametrize("name", sorted(LIGHT))
def test_light_model_imports_counts_matches_and_times_everywhere(name: str) -> None:
    start = time.perf_counter()
    imported = import_onnx(om.LIGHT_DIR / f"light_{name}.onnx")
    assert time.perf_counter() - start < 2.0  # issue 16: import under 2 s
    workload = imported.workload
    assert LIGHT[name] <= {layer.type for layer in workload.layers}
    assert workload.macs == independent_macs(om.light_model(name).model)
    shape = (1, *workload.input_shape)  # onnx's backend runner batch (generate_dummy_data, random=False)
    x = (np.arange(np.prod(shape)).reshape(shape) / np.prod(shape)).astype(np.float32)
    np.testing.assert_allclose(_fp32(imported, x), om.light_reference_output(name), rtol=RTOL, atol=ATOL)
    for path in HWCONFIGS:
        for scheme in (SchemeName.FP32, SchemeName.STATIC):
            run = simulate(workload, load_hardware(path), scheme, options=RunOptions(timing_only=True))
            assert run.total.macs == workload.macs and run.total.total_cycles >= run.total.compute_cycles > 0
