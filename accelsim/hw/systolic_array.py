"""Compute-cycle model of a rows x cols systolic array running one GEMM ``Y[M,N] = X[M,K] W[K,N]``.

Each dataflow keeps one operand stationary in the PEs, maps two GEMM dimensions onto the array and
streams the third through it in time (DESIGN section 5):

=========  ==========  ==========  ========  ==========================
dataflow   array rows  array cols  streamed  stationary operand
=========  ==========  ==========  ========  ==========================
``os``     M           N           K         outputs (accumulate in PE)
``ws``     K           N           M         weights
``is``     K           M           N         inputs
=========  ==========  ==========  ========  ==========================

A GEMM larger than the array is cut into folds, ``ceil(row_dim/rows) * ceil(col_dim/cols)``; every
fold streams the whole streamed dimension. Two models price the folds (``docs/timing.md`` derives them):

``scalesim``
    SCALE-Sim 3.0's count, reproduced exactly: each fold runs alone (load the stationary operand,
    skew it in, stream, drain) and the total is the zero-based index of the last cycle, i.e. one less
    than the number of cycles.
``pipelined``
    Double-buffered stationary registers let the next fold's operand load (or, for ``os``, the
    previous fold's outputs shift out) while the current fold streams, so folds start
    ``max(stream, rows)`` cycles apart and the fill/drain skew is paid once; partial sums over K folds
    stay in an on-chip accumulator instead of being written out per fold.

Everything is closed-form integer arithmetic: the cost does not depend on the layer size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from accelsim.hw.array_timing import ArrayTiming

Dataflow = Literal["os", "ws", "is"]
ArrayModel = Literal["scalesim", "pipelined"]

DATAFLOWS: tuple[str, ...] = get_args(Dataflow)
ARRAY_MODELS: tuple[str, ...] = get_args(ArrayModel)


@dataclass(frozen=True)
class GemmMapping:
    """How a GEMM's dimensions land on the array for one dataflow (the table in the module docstring)."""

    row_dim: int
    col_dim: int
    streamed_dim: int
    k_on_rows: bool  # K is spatial, so K folds produce partial sums that must be reduced across folds

    @classmethod
    def of(cls, dataflow: str, m: int, k: int, n: int) -> GemmMapping:
        return cls(*_mapped(dataflow, m, k, n))


def _mapped(dataflow: str, m: int, k: int, n: int) -> tuple[int, int, int, bool]:
    """:class:`GemmMapping`'s fields as a tuple (a tiling search maps hundreds of tiles)."""
    if dataflow == "os":
        return m, n, k, False
    if dataflow == "ws":
        return k, n, m, True
    if dataflow == "is":
        return k, m, n, True
    raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")


@dataclass(frozen=True)
class SystolicArray:
    """A rows x cols array of int8 MAC PEs (one MAC per PE per cycle) with a fixed dataflow."""

    rows: int
    cols: int
    dataflow: Dataflow
    model: ArrayModel = "pipelined"

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"array must have at least one row and column, got {self.rows}x{self.cols}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {self.dataflow!r}")
        if self.model not in ARRAY_MODELS:
            raise ValueError(f"model must be one of {ARRAY_MODELS}, got {self.model!r}")
        if self.model == "scalesim" and self.dataflow == "os" and self.rows == self.cols == 1:
            # SCALE-Sim counts K*folds - 1 cycles for K*folds MACs here: utilization above 1.
            raise ValueError("the scalesim model of a 1x1 output-stationary array is degenerate")

    def gemm(self, m: int, k: int, n: int) -> ArrayTiming:
        """Timing of ``Y[m,n] = X[m,k] W[k,n]`` (a conv lowered by im2col: m = output pixels,
        k = kh*kw*Cin/groups, n = output channels)."""
        from accelsim.hw.array_timing import ArrayTiming  # the SCALE-Sim report: the lowering prices tiles only

        row_folds, col_folds, load, fill, stream, drain, interval, compute, k_folds = self._folds(m, k, n)
        return ArrayTiming(
            dataflow=self.dataflow,
            model=self.model,
            rows=self.rows,
            cols=self.cols,
            m=m,
            k=k,
            n=n,
            row_folds=row_folds,
            col_folds=col_folds,
            load_cycles=load,
            fill_cycles=fill,
            stream_cycles=stream,
            drain_cycles=drain,
            fold_interval_cycles=interval,
            compute_cycles=compute,
            ofmap_writes=m * n * (k_folds if self.model == "scalesim" else 1),
        )

    def tile_cycles(self, m: int, k: int, n: int) -> int:
        """Cycles one GEMM tile occupies the array. SCALE-Sim's ``compute_cycles`` is the index of a
        layer's last cycle (one less than its length); a tile takes its full length, so splitting a
        layer into tiles cannot look cheaper. (A tiling search prices thousands of tiles: no
        :class:`ArrayTiming` is built.)"""
        row_folds, col_folds, *_, interval, compute, _ = self._folds(m, k, n)
        return row_folds * col_folds * interval if self.model == "scalesim" else compute

    def _folds(self, m: int, k: int, n: int) -> tuple[int, int, int, int, int, int, int, int, int]:
        """(row folds, col folds, load, fill, stream, drain, fold interval, compute cycles, K folds)."""
        if min(m, k, n) < 1:
            raise ValueError(f"GEMM dimensions must be positive, got M={m} K={k} N={n}")
        row_dim, col_dim, stream, k_on_rows = _mapped(self.dataflow, m, k, n)
        row_folds = -(-row_dim // self.rows)  # integer ceil: exact for any size
        col_folds = -(-col_dim // self.cols)
        folds = row_folds * col_folds
        if self.dataflow == "os":
            # Both operands enter skewed; in SCALE-Sim the fold ends with the far corner PE's last MAC,
            # the pipelined model also shifts the last fold's results out of the columns (rows cycles).
            load, fill = 0, self.rows + self.cols - 2
            drain = self.rows if self.model == "pipelined" else 0
        else:
            # Stationary operand shifts in one row per cycle, the streamed operand skews down the rows,
            # results leave after crossing the columns.
            load, fill, drain = self.rows, self.rows - 1, self.cols - 1
        k_folds = row_folds if k_on_rows else 1
        if self.model == "scalesim":
            interval = load + fill + stream + drain
            compute = folds * interval - 1
        else:
            # The next fold's stationary operand loads (os: this fold's outputs shift out) in `rows`
            # cycles behind the current stream; partial sums stay in the on-chip accumulator.
            interval = max(stream, self.rows)
            compute = load + (folds - 1) * interval + fill + stream + drain
        return row_folds, col_folds, load, fill, stream, drain, interval, compute, k_folds
