"""Which depthwise mapping the hardware model favours: G small GEMMs or packed block-diagonal GEMMs.

A depthwise 3x3 convolution is G independent GEMMs of N = 1 (one output channel each): on an array
whose columns hold N, all but one column idle. Packing g groups into one GEMM with a block-diagonal
weight matrix (K = 9g, N = g) fills the columns at the price of computing zeros. This prints the
array compute cycles of MobileNetV2's 17 depthwise layers both ways, per dataflow and array size, and
the packing the lowering chooses (it takes the fewer cycles, layer by layer).

    python benchmarks/depthwise_mapping.py
"""

from __future__ import annotations

from accelsim.config import load_hardware, load_workload
from accelsim.lowering.gemm_view import gemm_view
from accelsim.lowering.program import Lowerer
from accelsim.report.table import format_table


def main() -> None:
    workload = load_workload("mobilenetv2")
    depthwise = [s for s in workload.shapes if getattr(s.layer, "groups", 1) > 1]
    rows = []
    for dataflow in ("os", "ws", "is"):
        for size in (16, 32, 128):
            hw = load_hardware(None, [f"array.dataflow={dataflow}", f"array.rows={size}", f"array.cols={size}"])
            lowerer = Lowerer(hw, "static")
            plain = packed = 0
            packings = set()
            for shapes in depthwise:
                view = gemm_view(shapes, workload.batch)
                plain += view.count * lowerer.tile_cycles(view.m, view.k, view.n)
                best = lowerer.choose_view(shapes, workload.batch)
                packed += best.count * lowerer.tile_cycles(best.m, best.k, best.n)
                packings.add(best.packed)
            rows.append(
                [
                    dataflow,
                    f"{size}x{size}",
                    f"{plain:,}",
                    f"{packed:,}",
                    f"{plain / packed:.1f}x",
                    ",".join(map(str, sorted(packings))),
                ]
            )
    print(
        format_table(
            ["dataflow", "array", "G GEMMs cycles", "packed cycles", "packed speedup", "groups per GEMM"], rows
        )
    )


if __name__ == "__main__":
    main()
