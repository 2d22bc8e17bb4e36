"""One GEMM's compute timing on the array, field by field (folds, fill, stream, drain, PE utilization).

:meth:`accelsim.hw.SystolicArray.gemm` builds it (tests, comparisons with SCALE-Sim); the lowering prices
tiles with ``SystolicArray.tile_cycles`` and never does, so a run does not create this class (a dataclass
costs the compilation of its methods when its module is imported).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArrayTiming:
    """Compute timing of one GEMM on the array. Per-fold fields describe one fold run on its own.

    ``compute_cycles`` is the model's total; for ``scalesim`` it is SCALE-Sim's "Total Cycles" (one
    less than ``folds * fold_cycles``), for ``pipelined`` it is
    ``load_cycles + (folds - 1) * fold_interval_cycles + fill_cycles + stream_cycles + drain_cycles``.
    """

    dataflow: str
    model: str
    rows: int
    cols: int
    m: int
    k: int
    n: int
    row_folds: int
    col_folds: int
    load_cycles: int  # per fold: shift the stationary operand into the PEs (0 for os)
    fill_cycles: int  # per fold: skew until the farthest PE has its first operands
    stream_cycles: int  # per fold: length of the streamed dimension
    drain_cycles: int  # per fold: skew until the last result has left the array
    fold_interval_cycles: int  # cycles between the starts of consecutive folds
    compute_cycles: int
    ofmap_writes: int  # int32 values the array writes to the output buffer, partial sums included

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    @property
    def fold_cycles(self) -> int:
        """Cycles of one fold run on its own, load to drain."""
        return self.load_cycles + self.fill_cycles + self.stream_cycles + self.drain_cycles

    @property
    def mac_ops(self) -> int:
        return self.m * self.k * self.n

    @property
    def utilization(self) -> float:
        """Useful MACs / (rows * cols * compute_cycles): the fraction of PE-cycles doing GEMM work.

        For ``scalesim`` this equals SCALE-Sim's "Overall Util %" / 100.
        """
        return self.mac_ops / (self.rows * self.cols * self.compute_cycles)
