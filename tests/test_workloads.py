"""The shipped workloads have their networks' true shapes: MACs match the published figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.config import load_workload
from accelsim.config.loader import SHIPPED

WORKLOADS = sorted(SHIPPED["workload"].glob("*.yaml"))

# Published MACs per image (multiply-accumulates; papers call them "FLOPs"/"mult-adds"):
# ResNet-18 1.8 G and ResNet-50 4.1 G (He et al. 2016, Table 1: 1.8e9 and 3.8e9 "FLOPs" for v1; torchvision
# lists 1.81 and 4.09 GFLOPS for the v1.5 models shipped here), MobileNetV2 300 M (Sandler et al. 2018, Table 4).
PUBLISHED_MACS = {"resnet18": 1.81e9, "resnet50": 4.09e9, "mobilenetv2": 300e6}


def test_every_shipped_workload_validates() -> None:
    assert {p.stem for p in WORKLOADS} >= {"resnet18", "resnet50", "mobilenetv2", "bert_base_layer", "mlp", "tiny_cnn"}
    for path in WORKLOADS:
        assert load_workload(path).macs > 0


@pytest.mark.parametrize("name,macs", sorted(PUBLISHED_MACS.items()))
def test_macs_match_published_figures(name: str, macs: float) -> None:
    workload = load_workload(name)
    assert workload.batch == 1
    assert abs(workload.macs - macs) / macs < 0.02, workload.macs


def test_bert_layer_macs_are_exact() -> None:
    t, d, f, h = 128, 768, 3072, 12
    expected = 4 * t * d * d + 2 * h * t * t * (d // h) + 2 * t * d * f
    assert load_workload("bert_base_layer").macs == expected


def test_classifier_outputs() -> None:
    for name in ("resnet18", "resnet50", "mobilenetv2"):
        assert load_workload(name).shapes[-1].output_shape == (1000,)
    bert = load_workload("bert_base_layer")
    shapes = {s.layer.name: s.output_shape for s in bert.shapes}
    assert bert.shapes[-1].output_shape == (128, 768)
    assert (12, 128, 128) in shapes.values()


def test_depthwise_is_groups_equal_channels() -> None:
    workload = load_workload("mobilenetv2")
    depthwise = [s for s in workload.shapes if getattr(s.layer, "groups", 1) > 1]
    assert len(depthwise) == 17
    assert all(s.layer.groups == s.input_shapes[0][0] == s.output_shape[0] for s in depthwise)


def test_shape_inference_of_a_strided_dilated_grouped_conv() -> None:
    from accelsim.config.validation import validate
    from accelsim.config.workload import Workload

    w = validate(
        Workload,
        {
            "schema_version": 1,
            "name": "t",
            "input_shape": [8, 17, 20],
            "layers": [
                {
                    "name": "c",
                    "type": "conv2d",
                    "out_channels": 4,
                    "kernel": [3, 5],
                    "stride": [2, 3],
                    "padding": [1, 2],
                    "dilation": 2,
                    "groups": 2,
                }
            ],
        },
    )
    (s,) = w.shapes
    # H: (17 + 2 - 2*(3-1) - 1)//2 + 1 = 8 ; W: (20 + 4 - 2*(5-1) - 1)//3 + 1 = 6 (as torch.nn.Conv2d)
    assert s.output_shape == (4, 8, 6)
    assert s.macs == 4 * 8 * 6 * (8 // 2) * 3 * 5
    assert s.params == 4 * 4 * 15 + 4


def test_load_by_shipped_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_workload("tiny_cnn").name == "tiny_cnn"
