"""Top-1 accuracy of a classifier workload on labelled data, per scheme, through the bit-exact kernels.

The test set streams through :func:`accelsim.values.runner.run_values` one workload batch at a time (a
last, smaller batch gets a program lowered for its size), so memory stays that of one batch whatever the
data's size, and every image is computed exactly as ``accelsim run`` computes its batch. A static
variant is calibrated once, on the calibration set, batch after batch with its observer; each batch of
the test set then runs with those parameters, as a deployed model does. Predictions are the argmax of
the network output (the first of equal scores, numpy's rule); the fp32 predictions are always computed,
since every row reports its agreement with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from accelsim.config.hardware import HardwareConfig
from accelsim.config.workload import INPUT, Workload
from accelsim.dynamic_flavours import DYNAMIC_FLAVOURS
from accelsim.lowering.program import Program, lower, lowering_options
from accelsim.quant import OBSERVERS, QParams
from accelsim.quant.options import WEIGHT_GRANULARITIES, WeightGranularity
from accelsim.requant_modes import get_mode
from accelsim.schemes import SCHEMES, SchemeName, WeightFormatName
from accelsim.values.labelled_data import LabelledData
from accelsim.values.runner import Calibration, run_values
from accelsim.values.tensors import LayerParams, WorkloadTensors

#: told after each batch of each variant (for a progress bar)
BatchDone = Callable[[], object]


@dataclass(frozen=True)
class Variant:
    """One way to run the model: a scheme and the choices it reads (the dynamic flavour; the static
    observer, ``model`` for a quantized model's own parameters; the quantized weights' granularity)."""

    scheme: str
    flavour: str | None = None
    observer: str | None = None
    granularity: WeightGranularity | None = None

    @property
    def label(self) -> str:
        """e.g. ``static percentile per_tensor``."""
        return " ".join(str(p) for p in (self.scheme, self.flavour, self.observer, self.granularity) if p)


def variant(
    scheme: str, flavour: str = "onnx", observer: str = "minmax", granularity: WeightGranularity = "per_channel"
) -> Variant:
    """The variant of ``scheme`` with only the choices it reads set."""
    plan = SCHEMES[SchemeName(scheme)]
    return Variant(
        scheme,
        flavour if plan.runtime_activations else None,
        observer if plan.calibrated else None,
        granularity if plan.weights.quantized else None,
    )


def sweep_variants(schemes: Sequence[str]) -> list[Variant]:
    """Every flavour of dynamic, every observer of static, each quantized scheme at both weight granularities."""
    out: list[Variant] = []
    for scheme in schemes:
        plan = SCHEMES[SchemeName(scheme)]
        flavours = list(DYNAMIC_FLAVOURS) if plan.runtime_activations else ["onnx"]
        observers = list(OBSERVERS) if plan.calibrated else ["minmax"]
        granularities: list[WeightGranularity] = (
            list(WEIGHT_GRANULARITIES) if plan.weights.quantized else ["per_channel"]
        )
        for granularity in granularities:
            for flavour in flavours:
                for observer in observers:
                    out.append(variant(scheme, flavour, observer, granularity))
    return out


@dataclass(frozen=True)
class AccuracyRow:
    """One variant's result on the test set."""

    variant: Variant
    correct: int
    images: int
    agree: int  # predictions equal to fp32's
    seconds: float  # wall-clock time of the variant's bit-exact run (calibration included); not saved
    predicted: np.ndarray = field(repr=False, compare=False)  # the class predicted for each test image

    @property
    def top1(self) -> float:
        return self.correct / self.images

    @property
    def agreement(self) -> float:
        return self.agree / self.images

    def record(self) -> dict[str, object]:
        """The row as results.json keeps it (deterministic: no time)."""
        v = self.variant
        return {
            "scheme": v.scheme,
            "flavour": v.flavour,
            "observer": v.observer,
            "granularity": v.granularity,
            "correct": self.correct,
            "images": self.images,
            "agree": self.agree,
            "top1": self.top1,
            "agreement": self.agreement,
        }


class _Programs:
    """The workload at each batch size the data needs, and its programs, lowered once each."""

    def __init__(self, workload: Workload, hw: HardwareConfig, weights: str) -> None:
        self.workload, self.hw, self.weights = workload, hw, weights
        self._cache: dict[tuple[str, str | None, int], tuple[Workload, Program]] = {}

    def get(self, scheme: str, flavour: str | None, batch: int) -> tuple[Workload, Program]:
        key = (scheme, flavour, batch)
        if key not in self._cache:
            sized = self.workload if batch == self.workload.batch else self.workload.model_copy(update={"batch": batch})
            options = lowering_options(flavour or "onnx", self.weights)
            self._cache[key] = (sized, lower(sized, self.hw, scheme, **options))
        return self._cache[key]

    def batches(self, x: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """``x`` in workload batches, the last one possibly smaller."""
        step = self.workload.batch
        for start in range(0, x.shape[0], step):
            chunk = x[start : start + step]
            yield chunk.shape[0], chunk


def calibrate_on(
    workload: Workload,
    hw: HardwareConfig,
    params: dict[str, LayerParams],
    calibration_x: np.ndarray,
    observer: str,
    *,
    programs: _Programs | None = None,
) -> dict[str, QParams]:
    """Static parameters from ``observer`` fed the fp32 network on ``calibration_x``, batch after batch."""
    programs = programs or _Programs(workload, hw, WeightFormatName.SYMMETRIC)
    calibration = Calibration(params, observer)
    for size, chunk in programs.batches(calibration_x):
        sized, program = programs.get(SchemeName.STATIC, None, size)
        calibration.feed(sized, program, {INPUT: chunk})
    return calibration.qparams(get_mode(hw.requant.rounding).activation_dtype)


def evaluate(
    workload: Workload,
    hw: HardwareConfig,
    params: dict[str, LayerParams],
    data: LabelledData,
    variants: Sequence[Variant],
    *,
    weights: str = WeightFormatName.SYMMETRIC,
    qparams: dict[str, QParams] | None = None,
    done: BatchDone | None = None,
) -> list[AccuracyRow]:
    """Each variant's top-1 on ``data``'s test set and agreement with fp32, in the order given.

    ``params``: the model's weights (``materialize(...).params``); ``weights``: the weight format;
    ``qparams``: a quantized model's own activation parameters (static variants use them, calibrating only
    tensors they lack); ``done`` is called after every batch of every variant (fp32 first)."""
    programs = _Programs(workload, hw, weights)
    tick = done or (lambda: None)
    fp32 = Variant(SchemeName.FP32)
    started = time.perf_counter()
    reference = _predict(programs, params, data, fp32, weights, None, tick)
    fp32_seconds = time.perf_counter() - started
    rows = []
    #: observer -> (its parameters, the calibration's seconds): calibration runs fp32, so the variants that
    #: differ only in weight granularity share it
    calibrated: dict[str, tuple[dict[str, QParams], float]] = {}
    for v in variants:
        if v == fp32:
            predicted, seconds = reference, fp32_seconds
        else:
            given, calibration_seconds = None, 0.0
            if SCHEMES[SchemeName(v.scheme)].calibrated:
                observer = v.observer or "minmax"
                if observer not in calibrated:
                    started = time.perf_counter()
                    found = calibrate_on(workload, hw, params, data.calibration_x, observer, programs=programs)
                    calibrated[observer] = (found, time.perf_counter() - started)
                found, calibration_seconds = calibrated[observer]
                given = found | (qparams or {})
            started = time.perf_counter()
            predicted = _predict(programs, params, data, v, weights, given, tick)
            seconds = time.perf_counter() - started + calibration_seconds  # the calibration's time too
        correct = int(np.sum(predicted == data.test_y))
        rows.append(AccuracyRow(v, correct, len(predicted), int(np.sum(predicted == reference)), seconds, predicted))
    return rows


def _predict(
    programs: _Programs,
    params: dict[str, LayerParams],
    data: LabelledData,
    v: Variant,
    weights: str,
    qparams: dict[str, QParams] | None,
    tick: BatchDone,
) -> np.ndarray:
    """The variant's predicted class of every test image."""
    predicted = []
    for size, chunk in programs.batches(data.test_x):
        sized, program = programs.get(v.scheme, v.flavour, size)
        tensors = WorkloadTensors(params, {INPUT: chunk}, {})
        values = run_values(
            sized,
            programs.hw,
            v.scheme,
            flavour=v.flavour or "onnx",
            tensors=tensors,
            qparams=qparams,
            weights=weights,
            program=program,
            weight_granularity=v.granularity or "per_channel",
        )
        predicted.append(values.output.argmax(axis=1))
        tick()
    return np.concatenate(predicted)
