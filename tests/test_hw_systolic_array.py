"""Hand-derived and SCALE-Sim-pinned cycle counts of the systolic-array timing model."""

import pytest

from accelsim.hw import SystolicArray, scalesim_conv_gemm

# The tiny layer: 4x4 input, 3x3 filter, 1 channel, 6 filters, stride 1, no padding.
# im2col: M = 2*2 = 4 output pixels, K = 3*3*1 = 9, N = 6 filters; MACs = 4*9*6 = 216.
TINY = (4, 9, 6)


def test_tiny_layer_lowers_to_4x9x6_gemm() -> None:
    assert scalesim_conv_gemm(4, 4, 3, 3, 1, 6, 1) == TINY


def test_os_scalesim_tiny() -> None:
    """OS on 4x4: rows <- M=4 (1 fold), cols <- N=6 (ceil(6/4) = 2 folds), K=9 streamed.
    One fold: both operands skew in, fill = R + C - 2 = 6, stream K = 9, no load, no drain -> 15.
    SCALE-Sim: folds * 15 - 1 = 29 (it reports the zero-based index of the last cycle)."""
    t = SystolicArray(4, 4, "os", "scalesim").gemm(*TINY)
    assert (t.row_folds, t.col_folds, t.folds) == (1, 2, 2)
    assert (t.load_cycles, t.fill_cycles, t.stream_cycles, t.drain_cycles) == (0, 6, 9, 0)
    assert t.fold_cycles == t.fold_interval_cycles == 15
    assert t.compute_cycles == 29
    assert t.mac_ops == 216
    assert t.utilization == pytest.approx(216 / (16 * 29))
    assert t.ofmap_writes == 24  # K is streamed: every output leaves once


def test_os_pipelined_tiny() -> None:
    """OS pipelined on 4x4: the skew fill R + C - 2 = 6 is paid once; the second fold starts
    max(K, R) = max(9, 4) = 9 cycles after the first (its outputs shift out behind it in R = 4
    cycles, which fits); the last fold streams K = 9 and its outputs shift out in R = 4.
    Total 6 + 9 + 9 + 4 = 28."""
    t = SystolicArray(4, 4, "os", "pipelined").gemm(*TINY)
    assert (t.load_cycles, t.fill_cycles, t.stream_cycles, t.drain_cycles) == (0, 6, 9, 4)
    assert t.fold_interval_cycles == 9
    assert t.compute_cycles == 28


def test_ws_scalesim_tiny() -> None:
    """WS on 4x4: rows <- K=9 (3 folds), cols <- N=6 (2 folds) -> 6 folds, M=4 streamed.
    One fold: load weights R = 4, skew inputs down the rows R - 1 = 3, stream M = 4, results cross
    the columns C - 1 = 3 -> 14 = 2R + C + M - 2. SCALE-Sim: 6 * 14 - 1 = 83."""
    t = SystolicArray(4, 4, "ws", "scalesim").gemm(*TINY)
    assert (t.row_folds, t.col_folds) == (3, 2)
    assert (t.load_cycles, t.fill_cycles, t.stream_cycles, t.drain_cycles) == (4, 3, 4, 3)
    assert t.compute_cycles == 83
    assert t.ofmap_writes == 24 * 3  # partial sums leave the array after each of the 3 K folds


def test_ws_pipelined_tiny() -> None:
    """WS pipelined: first load 4, then folds start max(M, R) = max(4, 4) = 4 apart (the next
    weights load during the current stream), the last fold fills 3, streams 4, drains 3:
    4 + 5*4 + 3 + 4 + 3 = 34. Partial sums stay in the accumulator: 24 outputs written."""
    t = SystolicArray(4, 4, "ws", "pipelined").gemm(*TINY)
    assert t.fold_interval_cycles == 4
    assert t.compute_cycles == 34
    assert t.ofmap_writes == 24


def test_is_scalesim_tiny() -> None:
    """IS on 4x4: rows <- K=9 (3 folds), cols <- M=4 (1 fold), N=6 streamed.
    One fold: 2R + C + N - 2 = 8 + 4 + 6 - 2 = 16 (load 4, fill 3, stream 6, drain 3).
    SCALE-Sim: 3 * 16 - 1 = 47."""
    t = SystolicArray(4, 4, "is", "scalesim").gemm(*TINY)
    assert (t.row_folds, t.col_folds) == (3, 1)
    assert (t.load_cycles, t.fill_cycles, t.stream_cycles, t.drain_cycles) == (4, 3, 6, 3)
    assert t.compute_cycles == 47
    assert t.ofmap_writes == 72


def test_is_pipelined_tiny() -> None:
    """IS pipelined: 4 + 2 * max(N=6, R=4) + 3 + 6 + 3 = 28."""
    t = SystolicArray(4, 4, "is", "pipelined").gemm(*TINY)
    assert t.fold_interval_cycles == 6
    assert t.compute_cycles == 28


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_single_fold_models_differ_only_by_scalesim_conventions(dataflow: str) -> None:
    """One fold, nothing to overlap: 1x1x1 GEMM on 8x8. scalesim: OS R+C-2+K = 15, WS/IS
    2R+C+1-2 = 23, each minus SCALE-Sim's 1. pipelined: the same count, plus for OS the R = 8
    cycles to shift the results out, which SCALE-Sim does not charge."""
    scalesim = SystolicArray(8, 8, dataflow, "scalesim").gemm(1, 1, 1).compute_cycles
    pipelined = SystolicArray(8, 8, dataflow, "pipelined").gemm(1, 1, 1).compute_cycles
    assert scalesim == {"os": 14, "ws": 22, "is": 22}[dataflow]
    assert pipelined == scalesim + 1 + (8 if dataflow == "os" else 0)


def test_non_square_array_maps_rows_and_cols_separately() -> None:
    """WS, 3x5 array, GEMM M=15 K=12 N=5: rows <- K (ceil(12/3) = 4 folds), cols <- N (1 fold).
    Per fold 2*3 + 5 + 15 - 2 = 24; 4 * 24 - 1 = 95 (SCALE-Sim measured 95)."""
    t = SystolicArray(3, 5, "ws", "scalesim").gemm(15, 12, 5)
    assert (t.row_folds, t.col_folds, t.compute_cycles) == (4, 1, 95)


# SCALE-Sim 3.0.0 "Total Cycles" measured with benchmarks/validate_scalesim.py's config (CALC mode,
# zero stalls). Conv rows are given as SCALE-Sim topology rows (H, W, R, S, C, filters, stride).
SCALESIM_CONV = [
    ((4, 4, 3, 3, 1, 6, 1), 4, 4, {"os": 29, "ws": 83, "is": 47}),
    ((58, 58, 3, 3, 1, 1, 2), 4, 4, {"os": 3164, "ws": 2552, "is": 6962}),  # 29x29 outputs (ceil)
    ((7, 9, 3, 2, 2, 5, 2), 3, 5, {"os": 89, "ws": 95, "is": 167}),
]
SCALESIM_GEMM = [
    ((1, 1, 1), 8, 8, {"os": 14, "ws": 22, "is": 22}),
    ((13, 17, 11), 2, 7, {"os": 335, "ws": 395, "is": 359}),
    # From the validate_scalesim run: ResNet-18 Conv3_1a (57x57 fed, 3x3, 64 -> 128, stride 2),
    # Conv3_s (1x1, stride 2), Conv1 (229x229 fed, 7x7, 3 -> 64, stride 2), BERT-base FFN up.
    ((784, 576, 128), 32, 32, {"os": 63799, "ws": 63215, "is": 99899}),
    ((784, 64, 128), 8, 8, {"os": 122303, "ws": 103167, "is": 117599}),
    ((12544, 147, 64), 128, 128, {"os": 39297, "ws": 25851, "is": 87415}),
    ((128, 768, 3072), 128, 128, {"os": 24527, "ws": 73439, "is": 20723}),
]


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize(("row", "rows", "cols", "expected"), SCALESIM_CONV)
def test_matches_measured_scalesim_conv(
    row: tuple[int, ...], rows: int, cols: int, expected: dict[str, int], dataflow: str
) -> None:
    gemm = scalesim_conv_gemm(*row)
    assert SystolicArray(rows, cols, dataflow, "scalesim").gemm(*gemm).compute_cycles == expected[dataflow]


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize(("mkn", "rows", "cols", "expected"), SCALESIM_GEMM)
def test_matches_measured_scalesim_gemm(
    mkn: tuple[int, int, int], rows: int, cols: int, expected: dict[str, int], dataflow: str
) -> None:
    assert SystolicArray(rows, cols, dataflow, "scalesim").gemm(*mkn).compute_cycles == expected[dataflow]


def test_scalesim_conv_output_extent_rounds_up() -> None:
    """SCALE-Sim's output side is ceil((H - R) / stride) + 1: 58 wide, 3x3, stride 2 gives 29
    (a floor-based conv gives 28); fed the 57 rows a padded 56x56 conv reads, both give 28."""
    assert scalesim_conv_gemm(58, 58, 3, 3, 1, 1, 2) == (29 * 29, 9, 1)
    assert scalesim_conv_gemm(57, 57, 3, 3, 64, 128, 2) == (28 * 28, 576, 128)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 4, "os"), "at least one row"),
        ((4, 4, "xs"), "dataflow"),
        ((4, 4, "os", "fast"), "model"),
        ((1, 1, "os", "scalesim"), "degenerate"),
    ],
)
def test_rejects_invalid_arrays(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SystolicArray(*args)


def test_rejects_empty_gemm() -> None:
    with pytest.raises(ValueError, match="positive"):
        SystolicArray(4, 4, "ws").gemm(0, 4, 4)


def test_default_model_is_pipelined() -> None:
    assert SystolicArray(4, 4, "ws").model == "pipelined"
