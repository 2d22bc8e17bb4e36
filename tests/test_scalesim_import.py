"""SCALE-Sim topology CSVs import as the layers SCALE-Sim simulates (docs/workloads.md lists the quirks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.config import load_workload
from accelsim.config.scalesim_topology import import_topology
from accelsim.errors import AccelsimError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "scalesim-topologies"

CONV = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1,224,224,7,7,3,64,2,
Conv2_1a,56,56,3,3,64,64,1,
Conv3_s,56,56,1,1,64,128,2
Conv_DP1, 112, 112, 3, 3, 32, 1, 1,
"""

GEMM = """Layer, M, N, K,
QKV, 128, 2304, 768,
FFN1, 128, 3072, 768,
"""


def test_conv_rows_are_independent_layers_with_scalesim_extents(tmp_path: Path) -> None:
    path = tmp_path / "topo.csv"
    path.write_text(CONV)
    w = import_topology(path)
    shapes = {s.layer.name: s for s in w.shapes}
    assert w.input_shape == [3, 224, 224]
    # SCALE-Sim rounds up: ceil((224 - 7) / 2) + 1 = 110, imported as padding 1: (224 + 2 - 7) // 2 + 1
    assert shapes["Conv1"].output_shape == (64, 110, 110)
    assert shapes["Conv1"].layer.padding == [1, 1]
    assert shapes["Conv2_1a"].input_names == ("Conv2_1a.ifmap",)
    assert shapes["Conv2_1a"].output_shape == (64, 54, 54)
    # a row without the trailing comma keeps its stride: ceil((56 - 1) / 2) + 1 = 29
    assert shapes["Conv3_s"].output_shape == (128, 29, 29)
    dp = shapes["Conv_DP1"]
    assert (dp.layer.groups, dp.output_shape) == (32, (32, 110, 110))
    assert dp.macs == 110 * 110 * 32 * 9


def test_gemm_rows_become_linear_layers(tmp_path: Path) -> None:
    path = tmp_path / "bert.csv"
    path.write_text(GEMM)
    w = import_topology(path)
    qkv = w.shapes[0]
    assert qkv.layer.type == "linear" and qkv.input_shapes == ((128, 768),) and qkv.output_shape == (128, 2304)
    assert w.macs == 128 * 768 * 2304 + 128 * 768 * 3072


def test_cli_writes_a_workload_that_loads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topo = tmp_path / "topo.csv"
    topo.write_text(CONV)
    out = tmp_path / "w.yaml"
    assert main(["import", "scalesim", str(topo), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    again = load_workload(out)
    assert again.macs == import_topology(topo).macs
    assert [l.name for l in again.layers] == ["Conv1", "Conv2_1a", "Conv3_s", "Conv_DP1"]


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("", "file is empty"),
        ("Layer name, IFMAP Height\n", "no layer rows"),
        (
            CONV.replace("Conv1,224,224,7,7,3,64,2,", "Conv1,224,224,7,seven,3,64,2,"),
            "line 2, column filter_w: 'seven' is not a whole number",
        ),
        (CONV.replace("Conv1,224,224,7,7,3,64,2,", "Conv1,224,224,7,"), "line 2: 4 fields, expected 8"),
        (CONV.replace("Conv1,224,224,7,7,3,64,2,", "Conv1,4,4,7,7,3,64,2,"), "line 2: layers[0].kernel"),
        # issue 14 item 13: a zero stride divided by zero; a layout CSV has as many columns as a topology
        (
            CONV.replace("Conv3_s,56,56,1,1,64,128,2", "Conv3_s,56,56,1,1,64,128,0"),
            "line 4, column stride: 0 is outside the plausible range (allowed: a whole number from 1 to 1,024)",
        ),
        (
            CONV.replace("Conv1,224,224,7,7,3,64,2,", "Conv1," + "9" * 5000 + ",224,7,7,3,64,2,"),
            "line 2, column ifmap_h: '999",
        ),
        (
            (
                "Layer name, IFMAP SRAM Bank, IFMAP Row, IFMAP Col, Filter SRAM Bank, Filter Row, Filter Col, OFMAP Bank,\n"
                "Conv1, 1, 1, 1, 1, 1, 1, 1,\n"
            ),
            "line 1: header 'Layer name, IFMAP SRAM Bank",
        ),
        (GEMM.replace("FFN1, 128,", "FFN1, 0,"), "line 3, column m: 0 is outside"),
        (CONV.replace("Conv1,", "Con\x1bv1,"), "line 2: layers[0].name: 'Con\\x1bv1' is not a usable name"),
    ],
)
def test_bad_topology_is_a_user_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(AccelsimError) as info:
        import_topology(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


@pytest.mark.skipif(not SHARED.is_dir(), reason="SCALE-Sim's shipped topologies are not beside this checkout")
@pytest.mark.parametrize("name,layers", [("Resnet18", 21), ("Resnet50_clean", 54), ("mobilenet", 27)])
def test_scalesim_shipped_topologies(name: str, layers: int) -> None:
    w = import_topology(SHARED / f"{name}.csv")
    assert len(w.layers) == layers


def test_default_name_is_a_plain_name(tmp_path: Path) -> None:
    """The CSV's file name becomes the workload name, and so a folder name: other characters become _."""
    path = tmp_path / "my topology (v2).csv"
    path.write_text(CONV)
    assert import_topology(path).name == "my_topology__v2_"
    with pytest.raises(AccelsimError, match="name: '../x' cannot be used as a folder name"):
        import_topology(path, name="../x")
