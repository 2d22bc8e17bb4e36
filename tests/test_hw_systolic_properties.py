"""Properties of the systolic-array timing model that must hold for every shape (hypothesis).

"More PEs never increase compute cycles" is false as stated: a bigger array has a longer fill and
drain skew, so a tiny GEMM runs slower on it (``test_bigger_array_can_be_slower_on_a_tiny_gemm``).
What holds, and is tested: folds and streamed cycles never increase for any growth; compute cycles
never increase when every added PE does useful work (the mapped dimensions are multiples of the new
array's) and, for ``pipelined``, the streamed dimension is at least the new array's larger side, so
the longer skew is amortized.
"""

from hypothesis import assume, given
from hypothesis import strategies as st

from accelsim.hw import ARRAY_MODELS, DATAFLOWS, GemmMapping, SystolicArray

dataflows = st.sampled_from(DATAFLOWS)
models = st.sampled_from(ARRAY_MODELS)
sides = st.integers(1, 64)
dims = st.integers(1, 3000)


def gemm_with(dataflow: str, row_dim: int, col_dim: int, streamed: int) -> tuple[int, int, int]:
    """(M, K, N) whose row, column and streamed dimensions are the given ones (inverse mapping)."""
    if dataflow == "os":
        return row_dim, streamed, col_dim
    if dataflow == "ws":
        return streamed, row_dim, col_dim
    return col_dim, row_dim, streamed


def array(rows: int, cols: int, dataflow: str, model: str) -> SystolicArray:
    assume(not (model == "scalesim" and dataflow == "os" and rows == cols == 1))
    return SystolicArray(rows, cols, dataflow, model)


@given(sides, sides, dataflows, models, dims, dims, dims)
def test_utilization_in_unit_interval(rows, cols, dataflow, model, m, k, n) -> None:
    t = array(rows, cols, dataflow, model).gemm(m, k, n)
    assert 0 < t.utilization <= 1


@given(sides, sides, st.integers(0, 64), st.integers(0, 64), dataflows, models, dims, dims, dims)
def test_more_pes_never_increase_folds_or_streamed_cycles(
    rows, cols, extra_rows, extra_cols, dataflow, model, m, k, n
) -> None:
    small = array(rows, cols, dataflow, model).gemm(m, k, n)
    big = array(rows + extra_rows, cols + extra_cols, dataflow, model).gemm(m, k, n)
    assert big.folds <= small.folds
    assert big.folds * big.stream_cycles <= small.folds * small.stream_cycles


@given(
    st.integers(1, 32),
    st.integers(1, 32),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 3000),
    dataflows,
    models,
)
def test_more_pes_never_increase_compute_cycles_when_all_are_used(
    rows, cols, row_factor, col_factor, row_folds, col_folds, streamed, dataflow, model
) -> None:
    """Grow the array by integer factors; the mapped dims are multiples of the grown array's."""
    big_rows, big_cols = rows * row_factor, cols * col_factor
    if model == "pipelined":
        assume(streamed >= max(big_rows, big_cols))
    gemm = gemm_with(dataflow, row_folds * big_rows, col_folds * big_cols, streamed)
    small = array(rows, cols, dataflow, model).gemm(*gemm)
    big = array(big_rows, big_cols, dataflow, model).gemm(*gemm)
    assert big.compute_cycles <= small.compute_cycles


def test_bigger_array_can_be_slower_on_a_tiny_gemm() -> None:
    """1x1x1 GEMM: one fold either way, and the skew grows with the array (WS 2R + C - 1 - 1)."""
    for model in ARRAY_MODELS:
        assert (
            SystolicArray(8, 8, "ws", model).gemm(1, 1, 1).compute_cycles
            > SystolicArray(4, 4, "ws", model).gemm(1, 1, 1).compute_cycles
        )


@given(sides, sides, dataflows, dims, dims, dims, st.integers(0, 500))
def test_scalesim_is_affine_in_streamed_dim(rows, cols, dataflow, row_dim, col_dim, streamed, extra) -> None:
    """scalesim: folds do not depend on the streamed dim S, each fold streams it once, so
    cycles(S + d) - cycles(S) = folds * d exactly, for every S >= 1."""
    arr = array(rows, cols, dataflow, "scalesim")
    base = arr.gemm(*gemm_with(dataflow, row_dim, col_dim, streamed))
    longer = arr.gemm(*gemm_with(dataflow, row_dim, col_dim, streamed + extra))
    assert longer.compute_cycles - base.compute_cycles == base.folds * extra


@given(sides, sides, dataflows, dims, dims, st.integers(1, 3000), st.integers(0, 500))
def test_pipelined_is_affine_in_streamed_dim_once_it_covers_the_rows(
    rows, cols, dataflow, row_dim, col_dim, streamed, extra
) -> None:
    """pipelined: folds start max(S, rows) apart, so for S >= rows, cycles(S + d) - cycles(S) =
    folds * d exactly; below that the interval is pinned at rows and only the last fold grows."""
    arr = array(rows, cols, dataflow, "pipelined")
    base = arr.gemm(*gemm_with(dataflow, row_dim, col_dim, streamed))
    longer = arr.gemm(*gemm_with(dataflow, row_dim, col_dim, streamed + extra))
    if streamed >= rows:
        assert longer.compute_cycles - base.compute_cycles == base.folds * extra
    else:
        assert longer.compute_cycles >= base.compute_cycles


@given(sides, sides, dataflows, dims, dims, dims)
def test_pipelined_never_slower_than_scalesim_but_for_its_conventions(rows, cols, dataflow, m, k, n) -> None:
    """pipelined <= scalesim + 1 (SCALE-Sim's zero-based count) + rows for OS (the last fold's
    result read-out, which SCALE-Sim does not charge); equal to that on a single fold."""
    scalesim = array(rows, cols, dataflow, "scalesim").gemm(m, k, n)
    pipelined = array(rows, cols, dataflow, "pipelined").gemm(m, k, n)
    slack = 1 + (rows if dataflow == "os" else 0)
    assert pipelined.compute_cycles <= scalesim.compute_cycles + slack
    if scalesim.folds == 1:
        assert pipelined.compute_cycles == scalesim.compute_cycles + slack


@given(sides, sides, dataflows, models, dims, dims, dims)
def test_folds_cover_the_gemm(rows, cols, dataflow, model, m, k, n) -> None:
    """The folds tile the mapped dimensions with no empty fold, and each streams the third."""
    t = array(rows, cols, dataflow, model).gemm(m, k, n)
    mapping = GemmMapping.of(dataflow, m, k, n)
    assert (t.row_folds - 1) * rows < mapping.row_dim <= t.row_folds * rows
    assert (t.col_folds - 1) * cols < mapping.col_dim <= t.col_folds * cols
    assert t.stream_cycles == mapping.streamed_dim
    assert t.mac_ops == mapping.row_dim * mapping.col_dim * mapping.streamed_dim


@given(sides, sides, dataflows, models, dims, dims, dims)
def test_a_tile_takes_the_full_length_of_its_folds(rows, cols, dataflow, model, m, k, n) -> None:
    """``tile_cycles`` (the tiling search's price) is the model's compute cycles, except that a tile
    takes SCALE-Sim's whole fold length, not the index of its last cycle."""
    arr = array(rows, cols, dataflow, model)
    t = arr.gemm(m, k, n)
    assert arr.tile_cycles(m, k, n) == (t.folds * t.fold_cycles if model == "scalesim" else t.compute_cycles)
    if model == "scalesim":
        assert arr.tile_cycles(m, k, n) == t.compute_cycles + 1
