"""The values compute the lowered program the engine plays (docs/values.md, "One program").

Every GEMM the kernels execute is recorded at the kernels' GEMM entry points (``int_gemm``,
``float_gemm`` and the VNNI requant product, wherever a module binds them) and must be, in order,
the program's: for each array layer, ``view.gemms`` GEMMs of ``view.gemm_shape`` with operands of the
program's operand format (float32 on the float datapath, one byte otherwise).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import cache
from typing import NamedTuple

import numpy as np
import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.config.loader import SHIPPED
from accelsim.errors import AccelsimError
from accelsim.kernels import gemm, vnni
from accelsim.lowering.program import Program, lower
from accelsim.quant import REQUANT_MODES
from accelsim.values.runner import calibrate, run_values
from accelsim.values.tensors import WorkloadTensors, materialize

#: the shipped LLM blocks at their published shapes need gigabytes for values under four schemes: their layer
#: types are checked here at a reduced hidden size instead (tests/test_llm_layers.py)
LLM_SHAPED = ("_prefill", "_decode")
WORKLOADS = sorted(p.stem for p in SHIPPED["workload"].glob("*.yaml") if not p.stem.endswith(LLM_SHAPED))
SCHEMES = ("fp32", "woq", "dynamic", "static")


class Gemm(NamedTuple):
    """One GEMM as the kernels ran it: its shape and its operands' kind and bytes per element."""

    m: int
    k: int
    n: int
    a: tuple[str, int]
    b: tuple[str, int]


def _operand(x: np.ndarray) -> tuple[str, int]:
    return ("float" if x.dtype.kind == "f" else "int", x.dtype.itemsize)


def _record_int_gemm(log: list[Gemm], original: Callable) -> Callable:
    def recorded(a: np.ndarray, b: object, **kwargs: object) -> object:
        matrix = b.matrix if isinstance(b, gemm.PackedWeights) else np.asarray(b)
        log.append(Gemm(a.shape[0], a.shape[1], matrix.shape[1], _operand(a), _operand(matrix)))
        return original(a, b, **kwargs)

    return recorded


def _record_float_gemm(log: list[Gemm], original: Callable) -> Callable:
    def recorded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        log.append(Gemm(a.shape[0], a.shape[1], b.shape[1], _operand(a), _operand(b)))
        return original(a, b)

    return recorded


def _record_requant_product(log: list[Gemm], original: Callable) -> Callable:
    def recorded(
        a_words: np.ndarray, m_dim: int, b_packed: np.ndarray, offset32: np.ndarray, n_dim: int, *args: object
    ) -> object:
        # A arrives as 4-byte words of 1-byte codes: K is known to its padding (vnni.words_per_row)
        log.append(Gemm(m_dim, 4 * a_words.shape[1], n_dim, ("int", 1), ("int", 1)))
        return original(a_words, m_dim, b_packed, offset32, n_dim, *args)

    return recorded


@pytest.fixture
def kernel_gemms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Gemm]]:
    """Every GEMM the kernels execute while the fixture is live, in call order."""
    log: list[Gemm] = []
    entries = {
        "int_gemm": (gemm.int_gemm, _record_int_gemm),
        "float_gemm": (gemm.float_gemm, _record_float_gemm),
        "requant_product": (vnni.requant_product, _record_requant_product),
    }
    for module in [m for name, m in sys.modules.items() if name.startswith("accelsim")]:
        for attr, (original, record) in entries.items():
            if getattr(module, attr, None) is original:
                monkeypatch.setattr(module, attr, record(log, original))
    yield log


def program_gemms(program: Program) -> list[Gemm]:
    """The GEMMs the program says its array layers are, in order, with its operand format's bytes."""
    fmt = program.operand_format
    assert fmt is not None
    kind = "float" if fmt.float_gemm else "int"
    out = []
    for layer in program.workload_layers:
        if layer.view is not None:
            m, k, n = layer.view.gemm_shape
            out += [Gemm(m, k, n, (kind, fmt.ifmap_sram), (kind, fmt.weights_sram))] * layer.view.gemms
    return out


def _padded(g: Gemm) -> Gemm:
    return g._replace(k=4 * vnni.words_per_row(g.k))


def assert_same_gemms(ran: list[Gemm], said: list[Gemm]) -> None:
    """Equal in order; a GEMM the VNNI requant product ran is known only to K rounded up to whole words
    (to whole 64-byte tiles where the AMX tiles run: :func:`~accelsim.kernels.vnni.words_per_row`)."""
    assert len(ran) == len(said), f"the kernels ran {len(ran)} GEMMs, the program has {len(said)}"
    for i, (r, s) in enumerate(zip(ran, said)):
        assert r == s or (r.k % 4 == 0 and r == _padded(s)), f"GEMM {i}: the kernels ran {r}, the program says {s}"


@cache
def _tensors(workload: str) -> WorkloadTensors:
    return materialize(load_workload(workload))


CASES = [(w, None) for w in WORKLOADS] + [("tiny_cnn", "edge-npu")]  # edge-npu packs tiny_cnn's depthwise groups


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(("name", "hw_name"), CASES)
def test_kernels_run_the_programs_gemms(kernel_gemms: list[Gemm], name: str, hw_name: str | None, scheme: str) -> None:
    workload, hw = load_workload(name), load_hardware(hw_name)
    program = lower(workload, hw, scheme)
    tensors = _tensors(name)
    qparams = None
    if scheme == "static":  # calibrated beforehand: the recorded GEMMs are the static run's only
        qparams = calibrate(workload, tensors, program, dtype=REQUANT_MODES[hw.requant.rounding].activation_dtype)
        kernel_gemms.clear()
    values = run_values(workload, hw, scheme, tensors=tensors, qparams=qparams, program=program)
    assert_same_gemms(kernel_gemms, program_gemms(program))
    assert list(values.layers) == [layer.name for layer in program.workload_layers]


def test_packed_depthwise_is_covered() -> None:
    """The cases above include a program whose depthwise groups the array packs block-diagonally."""
    program = lower(load_workload("tiny_cnn"), load_hardware("edge-npu"), "static")
    assert any(layer.view is not None and layer.view.packed > 1 for layer in program.layers)


def test_a_layer_the_program_lacks_is_not_computed() -> None:
    workload, hw = load_workload("tiny_cnn"), load_hardware(None)
    program = lower(workload, hw, "fp32")
    with pytest.raises(AccelsimError, match="does not have the layers"):
        run_values(workload, hw, "fp32", program=replace(program, layers=program.layers[:-1]))


def test_an_array_layer_without_its_gemm_view_is_not_computed() -> None:
    workload, hw = load_workload("tiny_cnn"), load_hardware(None)
    program = lower(workload, hw, "fp32")
    layers = tuple(replace(layer, view=None) for layer in program.layers)
    with pytest.raises(AccelsimError, match="without a GEMM view"):
        run_values(workload, hw, "fp32", program=replace(program, layers=layers))


def test_another_workloads_or_schemes_program_is_refused() -> None:
    hw = load_hardware(None)
    with pytest.raises(AccelsimError, match="does not have the layers"):
        run_values(load_workload("tiny_cnn"), hw, "fp32", program=lower(load_workload("mlp"), hw, "fp32"))
    with pytest.raises(AccelsimError, match="lowered for the static scheme"):
        run_values(load_workload("mlp"), hw, "fp32", program=lower(load_workload("mlp"), hw, "static"))
