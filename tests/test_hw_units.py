"""Requant/vector unit, DRAM channel and roofline timing."""

from fractions import Fraction

import pytest

from accelsim.hw import DramChannel, RequantUnit, VectorUnit, roofline_bound


@pytest.mark.parametrize("unit", [RequantUnit, VectorUnit])
def test_lane_pipeline_cycles(unit: type) -> None:
    """16 lanes, 3-cycle pipeline: 100 elements enter over ceil(100/16) = 7 cycles, the last leaves
    3 cycles later -> 10; exactly 16 elements -> 1 + 3 = 4; nothing issued -> 0."""
    u = unit(lanes=16, latency_cycles=3)
    assert u.cycles(100) == 10
    assert u.cycles(16) == 4
    assert u.cycles(0) == 0


@pytest.mark.parametrize(("lanes", "latency"), [(0, 1), (4, -1)])
def test_lane_pipeline_rejects_bad_parameters(lanes: int, latency: int) -> None:
    with pytest.raises(ValueError):
        RequantUnit(lanes, latency)


def test_dram_transfer_is_latency_plus_bytes_over_bandwidth() -> None:
    """64 B/cycle, 100-cycle latency: 1000 bytes take 100 + ceil(1000/64) = 100 + 16 = 116."""
    dram = DramChannel(bandwidth_bytes_per_cycle=64, latency_cycles=100)
    assert dram.transfer_cycles(1000) == 116
    assert dram.transfer_cycles(0) == 0


def test_dram_fractional_bandwidth_is_exact() -> None:
    """12.8 B/cycle (e.g. 12.8 GB/s at 1 GHz): 128 bytes are exactly 10 cycles; a float division
    (128 / 12.8 = 10.000000000000002) would round up to 11."""
    dram = DramChannel(bandwidth_bytes_per_cycle=12.8, latency_cycles=0)
    assert dram.transfer_cycles(128) == 10
    assert dram.transfer_cycles(129) == 11


def test_dram_channels_multiply_peak_not_one_transfer() -> None:
    dram = DramChannel(bandwidth_bytes_per_cycle=16, latency_cycles=10, channels=4)
    assert dram.peak_bandwidth_bytes_per_cycle == Fraction(64)
    assert dram.transfer_cycles(64) == 14  # one transfer holds one 16 B/cycle channel


@pytest.mark.parametrize(("bandwidth", "latency", "channels"), [(0, 1, 1), (8, -1, 1), (8, 1, 0)])
def test_dram_rejects_bad_parameters(bandwidth: float, latency: int, channels: int) -> None:
    with pytest.raises(ValueError):
        DramChannel(bandwidth, latency, channels)


def test_roofline_takes_the_larger_of_compute_and_streaming() -> None:
    """32 KiB over 2 x 16 B/cycle stream in 1024 cycles (latency ignored): memory bound against
    1000 compute cycles, compute bound against 5000."""
    dram = DramChannel(bandwidth_bytes_per_cycle=16, latency_cycles=200, channels=2)
    bound = roofline_bound(compute_cycles=1000, dram_bytes=32768, dram=dram)
    assert (bound.memory_cycles, bound.bound_cycles, bound.bound_by) == (1024, 1024, "memory")
    bound = roofline_bound(compute_cycles=5000, dram_bytes=32768, dram=dram)
    assert (bound.bound_cycles, bound.bound_by) == (5000, "compute")
