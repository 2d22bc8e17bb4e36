"""Validate accelsim's ``scalesim`` array model against SCALE-Sim 3.0 itself.

Runs SCALE-Sim (pip ``scalesim``, in its own virtual environment under ``~/.cache/accelsim``, created
on first use) and accelsim on the same layers, for arrays 8x8, 32x32, 16x64, 128x128 and dataflows
os, ws, is, and prints both "Total Cycles" (ideal memory: CALC bandwidth mode, SRAMs large enough
that SCALE-Sim reports zero stalls), their difference and accelsim's ``pipelined`` figure beside them.
It also compares the DRAM traffic of the same topology row (SCALE-Sim's "DRAM IFMAP Reads", "DRAM
Filter Reads" and "DRAM OFMAP Writes" against the bytes of accelsim's lowered program under the int8
``static`` scheme, one byte per element, with SRAMs as large as SCALE-Sim's): ifmap and filter reads
must be equal, the OFMAP writes equal for ``os`` and ``row_folds`` times accelsim's for ``ws``/``is``
(SCALE-Sim writes every K fold's partial sums; docs/timing.md lists the difference classes).
Not run in CI.

Layers:

* ``tiny``: 4x4 input, 3x3 filter, 1 channel, 6 filters (the hand-derived layer of the unit tests);
* ResNet-18: each distinct row of SCALE-Sim's ``Resnet18.csv``, with the real "same" padding given
  as the extent the conv reads (SCALE-Sim has no padding field);
* MobileNet pointwise: each distinct 1x1 row of ``mobilenet.csv``;
* BERT-base GEMMs at sequence length 128 in SCALE-Sim's ``M, N, K`` format: attention scores and
  context of one head, the Q/K/V/output projection, FFN up and down.

SCALE-Sim builds per-cycle demand matrices and walks them in Python (about 55 us + 0.76 us per array
row/column touched, per cycle), so a big layer on a small array takes it many minutes. To keep the
run under 15 minutes on 2 cores (about 12 CPU-minutes of SCALE-Sim), a layer is run on an array
only if SCALE-Sim's estimated time for it is at most ``--max-row-seconds`` (15 s) in all three
dataflows; the skipped (layer, array) pairs are listed: ResNet-18 ``Conv1`` and the BERT FFNs on
every array, most 3x3 ResNet-18 convs below 128x128, and on 8x8 everything but the tiny layer, the
1x1 shortcuts, FC and the attention GEMMs. ``--max-row-seconds 20`` adds 18 rows (ResNet-18
Conv2_1a on 128x128, the BERT projection on 32x32, ...) for about 3 more CPU-minutes;
``--max-row-seconds 60`` also adds Conv1 and the FFNs on 128x128.
accelsim itself takes microseconds for any of them.

Usage: ``python benchmarks/validate_scalesim.py [--jobs N] [--max-row-seconds S]``
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from accelsim.config import load_hardware
from accelsim.config.scalesim_topology import import_topology
from accelsim.hw import SystolicArray, scalesim_conv_gemm
from accelsim.lowering.program import lower

TOPOLOGIES = Path("/work/shared/scalesim-topologies")
VENV = Path.home() / ".cache" / "accelsim" / "scalesim-venv"
ARRAYS = ((8, 8), (32, 32), (16, 64), (128, 128))
DATAFLOWS = ("os", "ws", "is")
BERT_SEQ, BERT_HIDDEN, BERT_HEAD, BERT_FFN = 128, 768, 64, 3072

# Every section SCALE-Sim's config reader asks for, even those a CALC-mode dense run ignores.
CONFIG = """\
[general]
run_name = run

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 8192
FilterSramSzkB: 8192
OfmapSramSzkB: 8192
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {dataflow}
MemoryBanks: 1
ReadRequestBuffer: 512
WriteRequestBuffer: 512

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

RUNNER = """\
import sys
from scalesim.scale_sim import scalesim
config, topology, layout, out, gemm = sys.argv[1:6]
sim = scalesim(save_disk_space=True, verbose=False, config=config, topology=topology,
               layout=layout, input_type_gemm=gemm == "gemm")
sim.run_scale(top_path=out)
"""


@dataclass(frozen=True)
class Layer:
    """One SCALE-Sim topology row and the GEMM accelsim runs for it."""

    group: str
    name: str
    kind: str  # "conv" or "gemm": which SCALE-Sim topology format the row is written in
    row: tuple[int, ...]  # conv: H, W, R, S, C, K, stride (extent as fed); gemm: M, N, K
    m: int
    k: int
    n: int


def conv_layer(
    group: str, name: str, h: int, w: int, r: int, s: int, c: int, filters: int, stride: int, pad: int
) -> Layer:
    """A padded conv as SCALE-Sim must see it: it has no padding field and computes
    ``ceil((H - R) / stride) + 1`` output rows, so it is fed the extent the conv actually reads,
    ``(Ho - 1) * stride + R``, which gives the real ``Ho = (H + 2*pad - R) // stride + 1``."""
    ho = (h + 2 * pad - r) // stride + 1
    wo = (w + 2 * pad - s) // stride + 1
    row = ((ho - 1) * stride + r, (wo - 1) * stride + s, r, s, c, filters, stride)
    m, k, n = scalesim_conv_gemm(*row)
    if (m, k, n) != (ho * wo, r * s * c, filters):
        raise RuntimeError(f"{name}: SCALE-Sim would simulate GEMM {m}x{k}x{n}, not the conv's")
    return Layer(group, name, "conv", row, m, k, n)


def gemm_layer(group: str, name: str, m: int, k: int, n: int) -> Layer:
    return Layer(group, name, "gemm", (m, n, k), m, k, n)


def distinct_conv_rows(path: Path) -> dict[str, tuple[int, ...]]:
    """The first row of each distinct shape in a SCALE-Sim conv topology: repeats add no coverage."""
    with path.open() as f:
        rows = [[c.strip() for c in row] for row in csv.reader(f)][1:]
    out: dict[str, tuple[int, ...]] = {}
    for row in rows:
        if row and row[0]:
            shape = tuple(int(v) for v in row[1:8])
            if shape not in out.values():
                out[row[0]] = shape
    return out


def layers() -> list[Layer]:
    out = [conv_layer("tiny", "tiny", 4, 4, 3, 3, 1, 6, 1, 0)]
    for name, (h, w, r, s, c, k, stride) in distinct_conv_rows(TOPOLOGIES / "Resnet18.csv").items():
        out.append(conv_layer("resnet18", name, h, w, r, s, c, k, stride, pad=r // 2))
    for name, (h, w, r, s, c, k, stride) in distinct_conv_rows(TOPOLOGIES / "mobilenet.csv").items():
        if r == s == 1:
            out.append(conv_layer("mobilenet_pw", name, h, w, r, s, c, k, stride, pad=0))
    out += [
        gemm_layer("bert", "attn_scores", BERT_SEQ, BERT_HEAD, BERT_SEQ),
        gemm_layer("bert", "attn_context", BERT_SEQ, BERT_SEQ, BERT_HEAD),
        gemm_layer("bert", "qkvo_proj", BERT_SEQ, BERT_HIDDEN, BERT_HIDDEN),
        gemm_layer("bert", "ffn_up", BERT_SEQ, BERT_HIDDEN, BERT_FFN),
        gemm_layer("bert", "ffn_down", BERT_SEQ, BERT_FFN, BERT_HIDDEN),
    ]
    return out


def scalesim_python() -> Path:
    """The venv's interpreter, creating the venv on first use (SCALE-Sim 3.0 crashes on numpy 2.4)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "scalesim", "numpy<2.4"], check=True)
    return python


def scalesim_seconds(layer: Layer, rows: int, cols: int, dataflow: str) -> float:
    """SCALE-Sim's run time, from its demand-matrix length (calibrated on this machine's CPU)."""
    timing = SystolicArray(rows, cols, dataflow, "scalesim").gemm(layer.m, layer.k, layer.n)
    return timing.folds * timing.fold_cycles * (55e-6 + 0.76e-6 * (rows + 2 * cols))


def topology_csv(layer: Layer) -> str:
    """The layer as a one-row SCALE-Sim topology file: both tools read this same text."""
    header = (
        "Layer, M, N, K,"
        if layer.kind == "gemm"
        else "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"
    )
    # The trailing comma matters: SCALE-Sim drops the last field of every row.
    return f"{header}\n{', '.join([layer.name, *map(str, layer.row)])},\n"


@dataclass(frozen=True)
class Measured:
    """One run's figures: cycles, and DRAM traffic in elements (words for SCALE-Sim, int8 bytes for accelsim)."""

    cycles: int
    stalls: int
    ifmap_reads: int
    filter_reads: int
    ofmap_writes: int


def run_scalesim(python: Path, rows: int, cols: int, dataflow: str, layer: Layer) -> Measured:
    """SCALE-Sim's cycles, stalls and DRAM accesses for one layer on one array and dataflow."""
    with tempfile.TemporaryDirectory(prefix="scalesim-") as tmp:
        config = Path(tmp, "scale.cfg")
        config.write_text(CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
        topology = Path(tmp, "topology.csv")
        topology.write_text(topology_csv(layer))
        out = Path(tmp, "out")
        subprocess.run(
            [
                str(python),
                "-c",
                RUNNER,
                str(config),
                str(topology),
                str(TOPOLOGIES / "layout_dummy.csv"),
                str(out),
                layer.kind,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with (out / "run" / "COMPUTE_REPORT.csv").open() as f:
            report = [[c.strip() for c in row] for row in csv.reader(f)]
        with (out / "run" / "DETAILED_ACCESS_REPORT.csv").open() as f:
            access = [[c.strip() for c in row] for row in csv.reader(f)]
    dram = dict(zip(access[0], access[1]))
    return Measured(
        int(report[1][2]),
        int(report[1][3]),
        int(dram["DRAM IFMAP Reads"]),
        int(dram["DRAM Filter Reads"]),
        int(dram["DRAM OFMAP Writes"]),
    )


def accelsim_traffic(layer: Layer, rows: int, cols: int, dataflow: str) -> tuple[int, int, int]:
    """accelsim's DRAM (ifmap reads, filter reads, ofmap writes) for the same topology row, imported as
    ``accelsim import scalesim`` does, lowered under ``static`` (int8: bytes = elements) on an array
    of the same shape with SRAMs that hold every operand, as SCALE-Sim's 8 MiB ones do."""
    with tempfile.TemporaryDirectory(prefix="accelsim-") as tmp:
        topology = Path(tmp, f"{layer.name}.csv")
        topology.write_text(topology_csv(layer))
        workload = import_topology(topology)
    hw = load_hardware(
        None,
        [
            f"array.rows={rows}",
            f"array.cols={cols}",
            f"array.dataflow={dataflow}",
            "sram.ifmap_kib=16384",
            "sram.filter_kib=16384",
            "sram.ofmap_kib=16384",
        ],
    )
    tiles = [t for lowered in lower(workload, hw, "static").layers if lowered.view is not None for t in lowered.tiles]
    return (sum(t.ifmap_bytes for t in tiles), sum(t.weight_bytes for t in tiles), sum(t.ofmap_bytes for t in tiles))


@dataclass(frozen=True)
class Row:
    layer: Layer
    rows: int
    cols: int
    dataflow: str


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel SCALE-Sim runs")
    parser.add_argument(
        "--max-row-seconds",
        type=float,
        default=15.0,
        help="skip a (layer, array) whose estimated SCALE-Sim time exceeds this in any dataflow",
    )
    args = parser.parse_args()
    python = scalesim_python()
    table, skipped = [], []
    for layer in layers():
        for rows, cols in ARRAYS:
            if max(scalesim_seconds(layer, rows, cols, df) for df in DATAFLOWS) > args.max_row_seconds:
                skipped.append(f"{layer.name}@{rows}x{cols}")
            else:
                table += [Row(layer, rows, cols, df) for df in DATAFLOWS]
    # Longest first, so the slow runs do not end up alone at the tail.
    order = sorted(table, key=lambda r: -scalesim_seconds(r.layer, r.rows, r.cols, r.dataflow))
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = pool.map(lambda r: run_scalesim(python, r.rows, r.cols, r.dataflow, r.layer), order)
        measured = dict(zip(order, runs))
    elapsed = time.monotonic() - start

    header = (
        f"{'layer':<22} {'array':>7} {'df':>2} {'M':>6} {'K':>5} {'N':>5} "
        f"{'scalesim':>10} {'accelsim':>10} {'diff':>5} {'pipelined':>10} {'stalls':>6} "
        f"{'ifmap ss/as':>17} {'filter ss/as':>17} {'ofmap ss/as':>19} {'dram':>5}"
    )
    print(header)
    print("-" * len(header))
    zero = dram_agree = 0
    for row in table:
        ss = measured[row]
        layer = row.layer
        ours = SystolicArray(row.rows, row.cols, row.dataflow, "scalesim").gemm(layer.m, layer.k, layer.n)
        piped = SystolicArray(row.rows, row.cols, row.dataflow, "pipelined").gemm(layer.m, layer.k, layer.n)
        zero += ours.compute_cycles == ss.cycles and ss.stalls == 0
        ifmap, filters, ofmap = accelsim_traffic(layer, row.rows, row.cols, row.dataflow)
        # SCALE-Sim writes each K fold's partial sums to DRAM (ws, is: K is spatial); accelsim the outputs once
        k_folds = 1 if row.dataflow == "os" else -(-layer.k // row.rows)
        agree = (ss.ifmap_reads, ss.filter_reads, ss.ofmap_writes) == (ifmap, filters, ofmap * k_folds)
        dram_agree += agree
        print(
            f"{layer.group + '/' + layer.name:<22} {f'{row.rows}x{row.cols}':>7} {row.dataflow:>2} "
            f"{layer.m:>6} {layer.k:>5} {layer.n:>5} {ss.cycles:>10} {ours.compute_cycles:>10} "
            f"{ours.compute_cycles - ss.cycles:>5} {piped.compute_cycles:>10} {ss.stalls:>6} "
            f"{f'{ss.ifmap_reads}/{ifmap}':>17} {f'{ss.filter_reads}/{filters}':>17} "
            f"{f'{ss.ofmap_writes}/{ofmap}':>19} {'ok' if agree else 'DIFF':>5}"
        )
    print(f"\nskipped (estimated SCALE-Sim time > {args.max_row_seconds:g} s): {', '.join(skipped)}")
    print(
        f"{zero}/{len(table)} rows with zero cycle difference and zero SCALE-Sim stalls; "
        f"SCALE-Sim wall time {elapsed:.0f} s on {args.jobs} workers"
    )
    print(
        f"{dram_agree}/{len(table)} rows with equal DRAM ifmap and filter reads and OFMAP writes equal "
        f"(os) or K folds times accelsim's (ws, is)"
    )
    return 0 if zero == dram_agree == len(table) else 1


if __name__ == "__main__":
    sys.exit(main())
