"""Compare accelsim's energy with ZigZag's on the same GEMM layers, per-access energies and an equivalent architecture.

ZigZag (pip ``zigzag-dse``, KU Leuven's analytical DSE framework) runs in its own virtual environment under
``~/.cache/accelsim`` (created on first use, like benchmarks/validate_scalesim.py does for SCALE-Sim). Both
tools get accelsim's default hardware: a 32x32 array (ZigZag's ``D1`` = 32 output channels ``K``, ``D2`` = 32
reduction ``C``, as accelsim's weight-stationary columns and rows), three 256 KiB buffers (ifmap, filter,
ofmap: ZigZag memories holding I, W, O), DRAM for all three, and the default ``energy:`` table: one MAC =
``int8_mac_pj + accumulate_pj``, every memory port 8 bits wide so that ZigZag's word access is one byte and
its ``r_cost`` / ``w_cost`` are accelsim's pJ per byte. Each PE holds one weight byte in a register priced at 0
(accelsim does not price operand forwarding); partial sums have no PE register (they go to the ofmap
buffer, as in accelsim). ZigZag chooses its temporal mapping (LOMA, minimum energy); accelsim runs the
layer as a ``linear`` layer of batch M under the static scheme, timing only.

Printed per layer: MAC energy (must be equal: the same MAC count times the same energy), then per
operand and level the bytes each tool moves and their energy, with the ratio accelsim / ZigZag, and what
only accelsim prices (requant parameters, the requant unit, static power). docs/energy.md explains every
difference class. Not run in CI.

Usage: ``python benchmarks/validate_zigzag.py [--lpf-limit N]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import venv
from pathlib import Path

from accelsim.config import load_hardware
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.results.energy import mac_pj
from accelsim.simulation import RunOptions, simulate

VENV = Path.home() / ".cache" / "accelsim" / "zigzag-venv"
ZIGZAG = "zigzag-dse==3.9.1"
# zigzag-dse 3.9.1 imports six without declaring it
EXTRA = ("six",)

#: (name, M, K, N): GEMMs of ResNet-50 (1x1 convolutions over their pixels, the classifier) and BERT-base
LAYERS = (
    ("resnet50.fc", 1, 2048, 1000),
    ("resnet50.layer1.conv3 (1x1)", 56 * 56, 64, 256),
    ("resnet50.layer3.conv1 (1x1)", 14 * 14, 1024, 256),
    ("resnet50.layer4.conv3 (1x1)", 7 * 7, 512, 2048),
    ("bert.projection", 128, 768, 768),
    ("bert.ffn_up", 128, 768, 3072),
)

#: runs inside ZigZag's venv: reads the request (JSON) on stdin, writes per-layer results (JSON) on stdout
ZIGZAG_SIDE = r"""
import json, logging, os, sys, tempfile
import yaml
logging.disable(logging.CRITICAL)
from zigzag.api import get_hardware_performance_zigzag

req = json.load(sys.stdin)
e = req["energy"]


def port(name, kind, allocation):
    return {"name": name, "type": kind, "bandwidth_min": 8, "bandwidth_max": 8, "allocation": allocation}


def memory(size_bytes, r_cost, w_cost, operands, reads, writes, served):
    return {
        "size": size_bytes * 8, "r_cost": r_cost, "w_cost": w_cost, "area": 0, "latency": 1, "operands": operands,
        "ports": [port("r_port_1", "read", reads), port("w_port_1", "write", writes)], "served_dimensions": served,
    }


def buffer(name, op, reads, writes):
    return memory(req["sram_bytes"][name], e["sram_r"][name], e["sram_w"][name], [op], reads, writes, ["D1", "D2"])


hardware = {
    "name": "accelsim_default_equivalent",
    "memories": {
        "pe_weight_register": memory(1, 0, 0, ["I2"], ["I2, tl"], ["I2, fh"], []),
        "column_accumulator": memory(4, 0, 0, ["O"], ["O, tl", "O, th"], ["O, fh", "O, fl"], ["D2"]),
        "sram_ifmap": buffer("ifmap", "I1", ["I1, tl"], ["I1, fh"]),
        "sram_filter": buffer("filter", "I2", ["I2, tl"], ["I2, fh"]),
        "sram_ofmap": buffer("ofmap", "O", ["O, tl", "O, th"], ["O, fh", "O, fl"]),
        "dram": {
            "size": 10**10, "r_cost": e["dram_r"], "w_cost": e["dram_w"], "area": 0, "latency": 1,
            "operands": ["I1", "I2", "O"],
            "ports": [port("rw_port_1", "read_write", ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"])],
            "served_dimensions": ["D1", "D2"],
        },
    },
    "operational_array": {
        "unit_energy": e["mac"], "unit_area": 1, "dimensions": ["D1", "D2"], "sizes": [req["cols"], req["rows"]],
    },
}
mapping = [{
    "name": "default",
    "spatial_mapping": {"D1": [f"K, {req['cols']}"], "D2": [f"C, {req['rows']}"]},
    "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
}]
out = {}
tmp = tempfile.mkdtemp()
for layer in req["layers"]:
    workload = [{
        "id": 0, "name": "gemm", "operator_type": "Gemm", "equation": "O[d][k]+=I[d][c]*W[c][k]",
        "loop_dims": ["D", "C", "K"], "loop_sizes": [layer["m"], layer["k"], layer["n"]],
        "operand_precision": {"I": 8, "W": 8, "O": 32, "O_final": 8}, "operand_source": {"I": 0, "W": 0},
    }]
    paths = {}
    for key, doc in (("hardware", hardware), ("mapping", mapping), ("workload", workload)):
        paths[key] = os.path.join(tmp, key + ".yaml")
        with open(paths[key], "w") as handle:
            yaml.safe_dump(doc, handle, sort_keys=False)
    _, _, cmes = get_hardware_performance_zigzag(
        paths["workload"], paths["hardware"], paths["mapping"], opt="energy", dump_folder=os.path.join(tmp, "out"),
        loma_show_progress_bar=False, lpf_limit=req["lpf_limit"],
    )
    cme = cmes[0][1][0][0]
    levels = {}
    for op, accesses in cme.memory_word_access.items():
        mem_op = cme.memory_operand_links.layer_to_mem_op(op)
        for access, level, energy in zip(
            accesses, cme.accelerator.memory_hierarchy.get_memory_levels(mem_op=mem_op), cme.mem_energy_breakdown[op]
        ):
            levels[f"{op}@{level.name}"] = {
                "reads": access.get_total_read_outflow() if hasattr(access, "get_total_read_outflow") else None,
                "directions": {d.name: v for d, v in access.data.items()},
                "energy_pj": energy,
            }
    out[layer["name"]] = {
        "macs": cme.layer.total_mac_count, "mac_energy_pj": cme.mac_energy, "levels": levels,
        "temporal_mapping": str(cme.temporal_mapping),
    }
json.dump(out, sys.stdout)
"""


def zigzag_python() -> Path:
    """ZigZag's interpreter, its venv created and filled on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", ZIGZAG, *EXTRA], check=True)
    return python


def accelsim_rows(hw, layers):
    """Each GEMM as a ``linear`` layer of batch M, static int8, timing only: its row of records."""
    rows = {}
    for name, m, k, n in layers:
        workload = validate(
            Workload,
            {
                "schema_version": 1,
                "name": "gemm",
                "batch": m,
                "input_shape": [k],
                "layers": [{"name": "gemm", "type": "linear", "out_features": n}],
            },
        )
        run = simulate(workload, hw, "static", options=RunOptions(timing_only=True))
        rows[name] = next(r for r in run.rows if r.layer == "gemm")
    return rows


def _ratio(a: float, b: float) -> str:
    return f"{a / b:7.3f}" if b else ("    -  " if not a else "    inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lpf-limit", type=int, default=6, help="ZigZag LOMA's loop prime factor limit")
    args = parser.parse_args()
    hw = load_hardware(None)
    table = hw.energy
    assert table is not None, "the default hardware has an energy table"
    kib = 1024
    request = {
        "rows": hw.array.rows,
        "cols": hw.array.cols,
        "sram_bytes": {b: int(getattr(hw.sram, f"{b}_kib") * kib) for b in ("ifmap", "filter", "ofmap")},
        "energy": {
            "mac": mac_pj(table, float_gemm=False),
            "sram_r": table.sram_read_pj_per_byte.model_dump(),
            "sram_w": table.sram_write_pj_per_byte.model_dump(),
            "dram_r": table.dram_read_pj_per_byte,
            "dram_w": table.dram_write_pj_per_byte,
        },
        "layers": [{"name": name, "m": m, "k": k, "n": n} for name, m, k, n in LAYERS],
        "lpf_limit": args.lpf_limit,
    }
    done = subprocess.run(
        [str(zigzag_python()), "-c", ZIGZAG_SIDE],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(f"ZigZag failed:\n{done.stderr[-3000:]}")
    zigzag = json.loads(done.stdout)
    ours = accelsim_rows(hw, LAYERS)
    print(f"accelsim default hardware vs {ZIGZAG}: bytes and pJ per operand and level; ratio = accelsim / ZigZag")
    for name, m, k, n in LAYERS:
        row, zz = ours[name], zigzag[name]
        lv = zz["levels"]
        d = {key: level["directions"] for key, level in lv.items()}
        print(f"\n{name}: M={m} K={k} N={n}, {row.macs:,} MACs (ZigZag {zz['macs']:,})")
        print(f"  ZigZag temporal mapping: {zz['temporal_mapping']}")
        lines = [
            ("MAC energy (pJ)", row.energy_pj_array, zz["mac_energy_pj"]),
            ("DRAM ifmap read (B)", row.dram_read_bytes_ifmap, d["I@dram"]["RD_OUT_TO_LOW"]),
            ("DRAM weights read (B)", row.dram_read_bytes_weights, d["W@dram"]["RD_OUT_TO_LOW"]),
            ("DRAM ofmap write (B)", row.dram_write_bytes_ofmap, d["O@dram"]["WR_IN_BY_LOW"]),
            ("DRAM psum read back (B)", 0, d["O@dram"]["RD_OUT_TO_LOW"]),
            ("SRAM ifmap read (B)", row.sram_read_bytes_ifmap, d["I@sram_ifmap"]["RD_OUT_TO_LOW"]),
            ("SRAM ifmap write (B)", row.sram_write_bytes_ifmap, d["I@sram_ifmap"]["WR_IN_BY_HIGH"]),
            ("SRAM filter read (B)", row.sram_read_bytes_filter, d["W@sram_filter"]["RD_OUT_TO_LOW"]),
            (
                "SRAM filter write, weights (B)",
                row.sram_write_bytes_filter - row.dram_read_bytes_weight_scales - row.dram_read_bytes_bias,
                d["W@sram_filter"]["WR_IN_BY_HIGH"],
            ),
            (
                "SRAM ofmap read (B)",
                row.sram_read_bytes_ofmap,
                d["O@sram_ofmap"]["RD_OUT_TO_LOW"] + d["O@sram_ofmap"]["RD_OUT_TO_HIGH"],
            ),
            (
                "SRAM ofmap write (B)",
                row.sram_write_bytes_ofmap,
                d["O@sram_ofmap"]["WR_IN_BY_LOW"] + d["O@sram_ofmap"]["WR_IN_BY_HIGH"],
            ),
            ("energy SRAM ifmap (pJ)", row.energy_pj_sram_ifmap, lv["I@sram_ifmap"]["energy_pj"]),
            (
                "energy SRAM filter, weights (pJ)",
                row.energy_pj_sram_filter
                - (row.dram_read_bytes_weight_scales + row.dram_read_bytes_bias) * table.sram_write_pj_per_byte.filter,
                lv["W@sram_filter"]["energy_pj"],
            ),
            ("energy SRAM ofmap (pJ)", row.energy_pj_sram_ofmap, lv["O@sram_ofmap"]["energy_pj"]),
            ("energy DRAM ifmap (pJ)", row.energy_pj_dram_ifmap, lv["I@dram"]["energy_pj"]),
            ("energy DRAM weights (pJ)", row.energy_pj_dram_weights, lv["W@dram"]["energy_pj"]),
            ("energy DRAM ofmap (pJ)", row.energy_pj_dram_ofmap, lv["O@dram"]["energy_pj"]),
        ]
        print(f"  {'':34s} {'accelsim':>14s} {'ZigZag':>14s}  ratio")
        for label, a, b in lines:
            print(f"  {label:34s} {a:14,.0f} {b:14,.0f}  {_ratio(a, b)}")
        params = row.energy_pj_dram_weight_scales + row.energy_pj_dram_bias
        print(
            f"  accelsim only (pJ): requant parameters in DRAM {params:,.0f}, requant unit "
            f"{row.energy_pj_requant:,.0f}, static {row.energy_pj_static:,.0f}"
        )


if __name__ == "__main__":
    main()
