"""The ``accelsim`` command: parse arguments, call the library, print. User errors exit 2 on one line."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from accelsim.dynamic_flavours import FlavourName

# Only what building the parser needs is imported here; each command imports the rest (pydantic models,
# simulation, reports), so `accelsim --help` stays fast (tests/test_lazy_plumbing.py).
from accelsim.errors import AccelsimError
from accelsim.file_checks import check_name, check_output_file, check_output_folder, os_error
from accelsim.report.table import format_table, si, terminal_width
from accelsim.schemes import SCHEMES as SCHEME_TABLE
from accelsim.schemes import SchemeName, WeightFormatName, get_weight_format

if TYPE_CHECKING:
    from accelsim.config.hardware import HardwareConfig
    from accelsim.config.sweep import Sweep
    from accelsim.config.workload import Workload
    from accelsim.model_file import ModelFile
    from accelsim.quant import QParams
    from accelsim.results.records import MergeCheck
    from accelsim.simulation import RunOptions
    from accelsim.values.labelled_data import LabelledData
    from accelsim.values.tensors import WorkloadTensors

HARDWARE_SECTIONS = ("array", "sram", "dram", "requant", "vector")
MAX_BATCH = 4096  # the workload schema's batch range
EXAMPLES = """examples:
  accelsim compare workloads/resnet18.yaml                 # all schemes on the default hardware
  accelsim report reports/resnet18/default-32x32           # report.md + report.html with plots (or --report)
  accelsim run workloads/resnet50.yaml --hw tpu-v1 --scheme static
  accelsim run resnet50 --hw gemmini --set array.dataflow=os --timing-only
  accelsim lower workloads/tiny_cnn.yaml --hw edge-npu --tiles
  accelsim explain resnet18 --layer conv1 --scheme dynamic
  accelsim golden resnet18 --layer layer1.0.conv1 --scheme static -o conv.npz
  accelsim validate hwconfigs/*.yaml workloads/*.yaml
  accelsim show workloads/resnet50.yaml
  accelsim sweep hwconfigs/sweeps/array_dataflow.yaml --workers 2 --report
  accelsim import scalesim workloads/tiny_topology.csv -o tiny.yaml
  accelsim compare workloads/residual_cnn.onnx              # an ONNX model, with its own weights
  accelsim import onnx workloads/residual_cnn.onnx -o cnn.yaml --name cnn   # a YAML + weights .npz to edit
"""


def overridden(overrides: Sequence[str]) -> str:
    """A config's name is the file's: say when ``--set`` changed it, so a title never claims the shipped one."""
    return f" (overridden: {', '.join(overrides)})" if overrides else ""


OBSERVER_NAMES = ("minmax", "moving_average_minmax", "percentile")  # accelsim.quant.OBSERVERS (a test holds them equal)
GRANULARITY_NAMES = ("per_channel", "per_tensor")  # accelsim.quant.options.WEIGHT_GRANULARITIES (held equal too)
SCHEMES = tuple(map(str, SCHEME_TABLE))  # the scheme table's names, in its order (plain: argparse shows choices' repr)
FLAVOURS = tuple(map(str, FlavourName))  # the flavour table's names (a test holds the enum equal to the table)
WEIGHT_FORMAT_NAMES = tuple(map(str, WeightFormatName))
SCHEME_HELP = (
    "quantization scheme: fp32 (no quantization), woq (int8 weights, float compute), dynamic (int8, "
    "activation ranges measured at run time), static (int8 throughout, calibrated ranges) (default: %(default)s)"
)
# Examples under each command's --help; tests/test_docs.py runs every one of them (in this order).
COMMAND_EXAMPLES = {
    "validate": [
        "accelsim validate hwconfigs/*.yaml workloads/*.yaml   # one summary line per file",
        "accelsim validate gemmini --set array.rows=32          # check an override before running it",
    ],
    "show": [
        "accelsim show workloads/mobilenetv2.yaml   # layers, shapes, MACs, parameters",
        "accelsim show gemmini --set array.rows=32  # a shipped config by name, with an override",
    ],
    "run": [
        "accelsim run resnet18                                     # static int8 on hwconfigs/default.yaml",
        "accelsim run workloads/resnet50.yaml --hw tpu-v1 --scheme dynamic --flavour pytorch",
        "accelsim run resnet50 --set array.dataflow=os --timing-only # cycles only: fast, for exploring",
        "accelsim run resnet18 --set-workload batch=4 --scheme woq --report",
        "accelsim run workloads/residual_cnn.onnx --scheme static   # an ONNX model: its weights, random inputs",
    ],
    "compare": [
        "accelsim compare resnet18                           # fp32, woq, dynamic, static side by side",
        "accelsim compare resnet18 --hw gemmini --schemes fp32 static --report",
        "accelsim compare resnet50 --timing-only --wide      # every column, however wide",
        "accelsim compare digits-cnn --data digits           # top-1 of every scheme on the digits test images",
    ],
    "report": ["accelsim report reports/resnet18/default-32x32   # a folder written by run or compare"],
    "lower": [
        "accelsim lower resnet18 --hw edge-npu                  # GEMM and tile sizes per layer",
        "accelsim lower workloads/tiny_cnn.yaml --tiles          # and every tile record",
    ],
    "explain": ["accelsim explain resnet18 --layer conv1 --scheme dynamic"],
    "golden": ["accelsim golden resnet18 --layer layer1.0.conv1 -o conv.npz   # inputs, weights, qparams, outputs"],
    "sweep": ["accelsim sweep hwconfigs/sweeps/array_dataflow.yaml --workers 2 --report   # rerun to resume"],
    "import scalesim": ["accelsim import scalesim workloads/tiny_topology.csv -o tiny.yaml"],
    "import onnx": [
        "accelsim import onnx workloads/residual_cnn.onnx -o cnn.yaml --name cnn   # cnn.yaml + its weights cnn.npz",
        "accelsim run cnn.yaml --scheme static   # the same bits and cycles as the .onnx (results: reports/cnn)",
    ],
    "export onnx": [
        "accelsim export onnx tiny_cnn -o tiny_cnn.onnx                    # the fp32 graph with its weights",
        "accelsim export onnx tiny_cnn -o tiny_cnn_int8.onnx --scheme static   # QDQ: accelsim's scales and codes",
    ],
}
LOWER_LEGEND = (
    "Each array layer runs as GEMMs (matrix products) Y[M,N] = X[M,K] x W[K,N]: M output positions (pixels x batch), "
    "K products summed into each output (input channels x kernel size), N output channels (a conv_transpose2d: M input "
    "pixels, K their channels, N output channels x kernel taps, scattered into the outputs). A tile is the M x K x N "
    "block held in SRAM at once; loop order nmk walks N blocks outermost, mnk M blocks (docs/lowering.md)."
)


def summary(model: Workload | HardwareConfig | Sweep, overrides: Sequence[str] = ()) -> str:
    """One line that says what a file holds (and the ``--set`` overrides applied to it)."""
    from accelsim.config.workload import Workload

    # a Sweep exists only once its module is loaded: a workload or hardware summary does not import it
    sweep_module = sys.modules.get("accelsim.config.sweep")
    if sweep_module is not None and isinstance(model, sweep_module.Sweep):
        from accelsim.sweep.points import expand

        points, pruned, left_out = expand(model)
        bases = ", ".join(base.file for base in model.bases.values())
        return (
            f"sweep {model.name}: {len(points)} points ({model.spec.combine} over {', '.join(model.spec.axes)}; "
            f"{pruned} configs pruned by constraints{f', {left_out} (scheme, weights) pairs left out' if left_out else ''}) "
            f"on {'base ' if model.spec.base else 'hardware '}{bases}"
        )
    if isinstance(model, Workload):
        return (
            f"workload {model.name}{overridden(overrides)}: {len(model.layers)} layers"
            + (f" x {model.repeat} blocks" if model.repeat > 1 else "")
            + (f" + {len(model.final_layers)} final layers" if model.final_layers else "")
            + f", batch {model.batch}, "
            f"{si(model.macs)}MAC, {si(model.params)} parameters ({si(model.params, 'B')} as int8)"
            + (f", outputs {', '.join(model.outputs)}" if model.outputs else "")
        )
    from accelsim.config.hardware import HardwareConfig

    if not isinstance(model, HardwareConfig):
        raise TypeError(f"no summary of a {type(model).__name__}")
    a = model.array
    return (
        f"hardware {model.name}{overridden(overrides)}: {a.rows}x{a.cols} {a.dataflow.upper()} array ({a.model} model), "
        f"{model.clock_mhz:g} MHz, SRAM {model.sram_total_kib:g} KiB, "
        f"DRAM {model.dram_bytes_per_cycle:.3g} B/cycle"
    )


def workload_table(workload: Workload, width: int | None = None) -> str:
    rows = []
    for s in workload.shapes:
        rows.append(
            [
                s.layer.name,
                s.layer.type,
                ",".join(s.input_names),
                "x".join(map(str, s.output_shape)),
                f"{s.macs * workload.batch:,}",
                f"{s.params:,}",
            ]
        )
    total = (
        "total"
        if workload.repeat == 1
        else f"total ({workload.repeat} blocks{' + final layers' * bool(workload.final_layers)})"
    )
    rows.append([total, "", "", "", f"{workload.macs:,}", f"{workload.params:,}"])
    return format_table(
        ["layer", "type", "inputs", "output (per sample)", "MACs (batch)", "params"],
        rows,
        width=width,
        hide_order=("inputs", "params"),
    )


def hardware_table(hw: HardwareConfig) -> str:
    rows: list[list[object]] = []
    for section in ("array", "sram", "dram", "requant", "vector"):
        for key, value in getattr(hw, section).model_dump().items():
            if value is not None:
                rows.append([f"{section}.{key}", value])
    rows.append(["clock_mhz", f"{hw.clock_mhz:g}"])
    rows.append(["(derived) dram bytes/cycle", f"{hw.dram_bytes_per_cycle:.4g}"])
    rows.append(["(derived) peak int8 GOP/s", f"{2 * hw.pe_count * hw.clock_mhz / 1e3:.4g}"])
    return format_table(["field", "value"], rows)


def _tile_cell(value: object) -> object:
    """A tile field as the tiles table shows it: a blank for no post-processing unit (None)."""
    return "" if value is None else value


def _load_any(path: str, overrides: Sequence[str]) -> Workload | HardwareConfig | Sweep:
    """A hardware, workload or sweep file, or an ONNX model (as the workload it imports to)."""
    from accelsim.model_file import is_onnx, load_model

    if is_onnx(path):
        return load_model(path, overrides).workload
    from accelsim.config import load_any

    return load_any(path, overrides)


def cmd_validate(args: argparse.Namespace) -> int:
    for path in args.files:
        print(f"{path}: ok: {summary(_load_any(path, args.set), args.set)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from accelsim.config import HardwareConfig, Workload

    model = _load_any(args.file, args.set)
    print(summary(model, args.set))
    if isinstance(model, (Workload, HardwareConfig)):
        print(
            workload_table(model, terminal_width(args.wide)) if isinstance(model, Workload) else hardware_table(model)
        )
    return 0


def _check_import_output(out: str | Path, source: str, what: str) -> None:
    """An import's output file: writable, and not the file being imported (which it would replace)."""
    check_output_file(out, field="--output")
    if Path(out).exists() and Path(source).exists() and os.path.samefile(out, source):
        raise AccelsimError(
            f"would overwrite the input {what} {source}: give another output file", file=str(out), path="--output"
        )


def cmd_import_scalesim(args: argparse.Namespace) -> int:
    from accelsim.atomic_file import write_atomic
    from accelsim.config.scalesim_topology import import_topology, workload_yaml

    out = args.output or Path(args.topology).with_suffix(".yaml").name
    _check_import_output(out, args.topology, "topology")
    workload = import_topology(args.topology, name=args.name)
    write_atomic(out, workload_yaml(workload))
    print(f"wrote {out}: {summary(workload)}")
    return 0


def _input_shapes(specs: Sequence[str]) -> dict[str, list[int]]:
    """``--input-shape NAME=1,3,224,224`` options as graph input name -> shape."""
    shapes = {}
    for spec in specs:
        name, _, dims = spec.partition("=")
        try:
            shape = [int(d) for d in dims.split(",")]
        except ValueError:
            shape = []
        if not name or not shape or min(shape) < 1:
            raise AccelsimError(
                f"{spec!r} is not NAME=D0,D1,...", path="--input-shape", allowed="e.g. x=1,3,224,224 (dims >= 1)"
            )
        shapes[name] = shape
    return shapes


def cmd_import_onnx(args: argparse.Namespace) -> int:
    from accelsim.model_file import import_to_files

    out = args.output or Path(args.model).with_suffix(".yaml").name
    for target in (out, Path(out).with_suffix(".npz")):
        _check_import_output(target, args.model, "model")
    if args.batch is not None and not 1 <= args.batch <= MAX_BATCH:
        raise AccelsimError(f"batch {args.batch} out of range", path="--batch", allowed=f"1..{MAX_BATCH}")
    shapes = _input_shapes(args.input_shape)
    workload, weights = import_to_files(args.model, out, name=args.name, batch=args.batch, input_shapes=shapes)
    print(f"wrote {out} and its weights {weights}: {summary(workload)}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from accelsim.atomic_file import write_atomic
    from accelsim.config import load_hardware
    from accelsim.config.loader import resolve
    from accelsim.model_file import is_onnx, load_model
    from accelsim.onnx.export import OPSET, export, serialized
    from accelsim.requant_modes import RequantModeName

    model = load_model(args.workload, args.set_workload)
    source = Path(args.workload) if is_onnx(args.workload) else resolve(Path(args.workload), "workload")
    _check_import_output(args.output, str(source), "model")
    if model.workload.weights_path is not None:
        _check_import_output(args.output, str(model.workload.weights_path), "weights")
    # ONNX Runtime's fused QDQ kernels compute float_half_even: the static run exported is that mode's
    hw = load_hardware(args.hw, [*args.set, f"requant.rounding={RequantModeName.FLOAT_HALF_EVEN}"])
    exported = export(
        model.workload, hw, args.scheme, model.tensors(args.input, args.calibration), weights=args.weights
    )
    write_atomic(args.output, serialized(exported.model, args.output))
    nodes = len(exported.model.graph.node)
    print(f"wrote {args.output}: {args.scheme} ONNX model of {model.workload.name} ({nodes} nodes, opset {OPSET})")
    return 0


def _load_pair(args: argparse.Namespace) -> tuple[ModelFile, HardwareConfig]:
    """The model the command names (a workload or an ONNX file, with its weights) and the hardware."""
    from accelsim.config import load_hardware
    from accelsim.model_file import load_model

    model, hw = load_model(args.workload, args.set_workload), load_hardware(args.hw, args.set)
    if model.quantized is not None:  # ORT's arithmetic and the model's own weight format, whatever was asked
        hw = model.quantized.runtime_hardware(hw)
        args.weights = model.quantized.weights
    args.quantized = model.quantized is not None
    return model, hw


def _tensors(args: argparse.Namespace, model: ModelFile) -> WorkloadTensors | None:
    """The model's weights and the user's --input / --calibration data (None: the seeded draw)."""
    if getattr(args, "timing_only", False):
        return None
    return model.tensors(args.input, args.calibration)


def _labelled(args: argparse.Namespace, model: ModelFile) -> LabelledData | None:
    """The ``--data`` set for the model, checked against its input and classes (None without ``--data``)."""
    if args.data is None:
        for option, given in (("--calibration-size", args.calibration_size), ("--accuracy-sweep", args.accuracy_sweep)):
            if given not in (None, False):
                raise AccelsimError("only applies to an accuracy run", path=option, allowed="with --data")
        return None
    for option, given in (
        ("--input", args.input),
        ("--calibration", args.calibration),
        ("--timing-only", args.timing_only),
    ):
        if given:
            raise AccelsimError(
                f"--data gives the run batch and the calibration images and needs the values: leave out {option}",
                path="--data",
            )
    from accelsim.values.labelled_data import BUILTIN, load_labelled, workload_classes

    w = model.workload
    if w.extra_inputs:
        raise AccelsimError(
            f"workload {w.name} has {len(w.extra_inputs) + 1} inputs; labelled data feeds one", path="--data"
        )
    classes = workload_classes(w.shapes[-1].output_shape, w.name)
    data = load_labelled(args.data, tuple(w.input_shape), classes, calibration_size=args.calibration_size)
    if data.test_x.shape[0] < w.batch:
        raise AccelsimError(
            f"{data.test_x.shape[0]} test images, fewer than the workload's batch {w.batch}",
            file=None if args.data in BUILTIN else args.data,
            path="--data",
            allowed=f"a batch of at most {data.test_x.shape[0]} (--set-workload batch=N)",
        )
    return data


def _data_run(
    args: argparse.Namespace, model: ModelFile, hw: HardwareConfig, data: LabelledData, schemes: Sequence[str]
) -> tuple[WorkloadTensors, dict[str, QParams] | None]:
    """With ``--data``: the tensors of the run batch (the first test images) and, when static runs, its
    parameters from the calibration images (the model's own where it has them)."""
    from accelsim.config.workload import INPUT
    from accelsim.values.accuracy import calibrate_on

    w = model.workload
    tensors = model.with_data({INPUT: data.test_x[: w.batch]}, {INPUT: data.calibration_x})
    if not any(SCHEME_TABLE[SchemeName(s)].calibrated for s in schemes):
        return tensors, model.qparams
    observer = "minmax" if args.quantized else args.observer
    return tensors, calibrate_on(w, hw, tensors.params, data.calibration_x, observer) | (model.qparams or {})


def _blocks(workload: Workload) -> str:
    """What a repeated workload's total counts, for the line after its table."""
    if workload.repeat == 1:
        return ""
    final = f" and the {len(workload.final_layers)} final layers once" if workload.final_layers else ""
    return f" of {workload.repeat} blocks{final} (the block's rows are one block)"


def _measure_accuracy(
    args: argparse.Namespace,
    model: ModelFile,
    hw: HardwareConfig,
    tensors: WorkloadTensors,
    data: LabelledData,
    schemes: Sequence[str],
) -> dict[str, object]:
    """Every scheme's (or with --accuracy-sweep every variant's) top-1 on the test images, with a progress
    bar; prints the table and returns what results.json keeps (``meta.accuracy``)."""
    from dataclasses import replace

    from tqdm import tqdm

    from accelsim.report.accuracy import HEADERS, accuracy_rows
    from accelsim.values.accuracy import evaluate, sweep_variants, variant

    if args.accuracy_sweep:
        variants = sweep_variants(schemes)
    else:
        variants = [variant(s, args.flavour, args.observer, args.granularity) for s in schemes]
    if args.quantized:  # the model's own parameters and weight codes: no observer or granularity to choose
        variants = list(dict.fromkeys(replace(v, observer=None, granularity=None) for v in variants))
    batches = -(-data.test_x.shape[0] // model.workload.batch)
    runs = len([v for v in variants if v.scheme != SchemeName.FP32]) + 1
    bar = tqdm(
        total=runs * batches,
        delay=2,
        unit="batch",
        leave=False,
        file=sys.stderr,
        disable=None,
        desc=f"accuracy on {data.name} ({data.test_x.shape[0]} images)",
    )
    with bar:
        rows = evaluate(
            model.workload,
            hw,
            tensors.params,
            data,
            variants,
            weights=args.weights,
            qparams=model.qparams,
            done=bar.update,
        )
    records = [r.record() for r in rows]
    print(
        f"top-1 on {data.name}: {data.test_x.shape[0]} test images, static calibrated on {data.calibration_x.shape[0]}"
    )
    print(
        format_table(
            [*HEADERS, "ms / 1000 images"],
            accuracy_rows(records, [r.seconds for r in rows]),
            width=terminal_width(args.wide),
            hide_order=("ms / 1000 images", "correct"),
        )
    )
    return {"data": data.describe(), "rows": records}


def _describe_pair(args: argparse.Namespace, workload: Workload, hw: HardwareConfig) -> str:
    return f"{summary(workload, args.set_workload)}\n{summary(hw, args.set)}"


def _results_line(args: argparse.Namespace, folder: Path, workload: Workload, hw: HardwareConfig) -> str:
    """Where the results went; a ``-<hash>`` folder suffix is explained, since --set made it."""
    line = f"results: {folder}/results.csv, results.json"
    for model, overrides, part in ((workload, args.set_workload, folder.parent.name), (hw, args.set, folder.name)):
        if overrides and part.startswith(f"{model.name}-"):
            line += (
                f"\n  ({part.removeprefix(model.name)}: a hash of {model.name} with {', '.join(overrides)}, "
                "so each overridden config gets its own folder)"
            )
    return line


def _progress():
    """A progress line on stderr, shown only when a run takes longer than two seconds (terminals only)."""
    from tqdm import tqdm

    bar = tqdm(
        total=None, delay=2, unit="step", leave=False, file=sys.stderr, disable=None, bar_format="{desc} [{elapsed}]"
    )

    def step(what: str) -> None:
        bar.set_description(f"simulating: {what}")
        bar.update(1)

    return step


def _prepare(
    args: argparse.Namespace, workload: Workload, hw: HardwareConfig, schemes: Sequence[str]
) -> tuple[Path, MergeCheck]:
    """Everything `run` and `compare` check or do before simulating ``schemes``: the results folder
    (:func:`_target`); with values, that they fit in memory and, on a first run on this machine, the
    kernels they need compiled ahead in parallel with a progress line (accelsim.kernels.first_run;
    nothing to do once Numba's cache holds them). Returns the results folder and its check, for the save."""
    folder, checked = _target(args, workload, hw)
    if not args.timing_only:
        from accelsim.kernels.first_run import compile_ahead
        from accelsim.values.footprint import check_values_fit

        check_values_fit(workload, len(schemes))
        compile_ahead(schemes)
    return folder, checked


def _target(args: argparse.Namespace, workload: Workload, hw: HardwareConfig) -> tuple[Path, MergeCheck]:
    """The results folder, checked before simulating: what it holds can be merged with this run (the check
    keeps its parse for the save)."""
    from accelsim.config.loader import weights_digest
    from accelsim.results.records import check_mergeable
    from accelsim.simulation import results_folder

    check_output_folder(args.out, field="--out")
    folder = check_output_folder(
        results_folder(Path(args.out), workload, hw, args.set_workload, args.set), field="--out"
    )
    checked = check_mergeable(
        folder,
        workload.model_dump(mode="json"),
        hw.model_dump(mode="json"),
        args.ideal_memory,
        weights_digest(workload),
    )
    return folder, checked


def _save(
    folder: Path,
    checked: MergeCheck,
    workload: Workload,
    hw: HardwareConfig,
    runs: list,
    accuracy: dict[str, object] | None = None,
) -> None:
    """Merge ``runs`` into the results ``folder`` :func:`_prepare` checked, reusing the parse in ``checked``."""
    from accelsim.results.records import update_results
    from accelsim.simulation import run_meta

    meta = run_meta(workload, hw, runs) | ({"accuracy": accuracy} if accuracy else {})
    update_results(
        folder,
        [row for run in runs for row in run.rows + [run.total]],
        meta,
        {run.scheme: run.engine.log for run in runs},
        checked,
    )


def _run_options(args: argparse.Namespace) -> RunOptions:
    """The run options ``run`` and ``compare`` share; the event log is kept for the results folder."""
    from accelsim.simulation import RunOptions

    return RunOptions(
        flavour=args.flavour,
        weights=args.weights,
        observer=None if args.quantized else args.observer,
        weight_granularity=None if args.quantized else args.granularity,
        ideal_memory=args.ideal_memory,
        timing_only=args.timing_only,
        log=True,
        smoothquant=args.smoothquant,
    )


def _check_smoothquant(args: argparse.Namespace) -> None:
    """--smoothquant's alpha, and the runs it cannot apply to: it migrates a float model's weights before they are
    quantized and calibrated (a timing-only run takes it and is unchanged: the migration is folded offline)."""
    if args.smoothquant is None:
        return
    from accelsim.values.smoothquant import check_alpha

    check_alpha(args.smoothquant)
    for option, given in (("--data", args.data), ("a quantized model", args.quantized)):
        if given:
            raise AccelsimError(
                f"migrates a float model's weights before they are quantized and calibrated; not with {option}",
                path="--smoothquant",
                allowed=f"--smoothquant without {option}",
            )


def cmd_run(args: argparse.Namespace) -> int:
    from accelsim.report.summary import layer_table
    from accelsim.simulation import PreparedModel, simulate

    model, hw = _load_pair(args)
    _check_smoothquant(args)
    workload, data = model.workload, _labelled(args, model)
    folder, checked = _prepare(args, workload, hw, [args.scheme])
    tensors, qparams = (
        _data_run(args, model, hw, data, [args.scheme]) if data else (_tensors(args, model), model.qparams)
    )
    run = simulate(
        workload,
        hw,
        args.scheme,
        options=_run_options(args),
        prepared=PreparedModel(tensors=tensors, qparams=qparams),
        # a timing-only run has one step, told as it starts: a line shown from two seconds on never shows
        progress=None if args.timing_only else _progress(),
    )
    print(f"{_describe_pair(args, workload, hw)}\n{_describe_scheme(args.scheme, args.flavour, args.weights)}")
    width = terminal_width(args.wide)
    print(layer_table(run.rows, run.total, width))
    accuracy = _measure_accuracy(args, model, hw, tensors, data, [args.scheme]) if data and tensors else None
    _save(folder, checked, workload, hw, [run], accuracy)
    t = run.total
    print(
        textwrap.fill(
            f"total{_blocks(workload)}: "
            f"{t.total_cycles:,} cycles = {t.latency_s * 1e3:.3f} ms at {hw.clock_mhz:g} MHz, "
            f"{t.stall_cycles:,} stall cycles, {(t.dram_read_bytes + t.dram_write_bytes) / 1e6:.2f} MB DRAM, "
            f"utilization {100 * t.utilization:.1f}%",
            width or 1000,
            subsequent_indent="  ",
        )
    )
    print(_results_line(args, folder, workload, hw))
    if args.report:
        _write_report(folder)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from accelsim.report.summary import scheme_table
    from accelsim.simulation import compare_schemes

    model, hw = _load_pair(args)
    _check_smoothquant(args)
    workload, data = model.workload, _labelled(args, model)
    folder, checked = _prepare(args, workload, hw, args.schemes)
    tensors, qparams = (
        _data_run(args, model, hw, data, args.schemes) if data else (_tensors(args, model), model.qparams)
    )
    runs = compare_schemes(
        workload,
        hw,
        args.schemes,
        options=_run_options(args),
        tensors=tensors,
        qparams=qparams,
        progress=_progress(),
    )
    print(_describe_pair(args, workload, hw))
    print(scheme_table([r.total for r in runs], width=terminal_width(args.wide)))
    print("* fastest   + least DRAM traffic   speedup and traffic cut are relative to fp32")
    accuracy = _measure_accuracy(args, model, hw, tensors, data, args.schemes) if data and tensors else None
    _save(folder, checked, workload, hw, runs, accuracy)
    print(_results_line(args, folder, workload, hw))
    if args.report:
        _write_report(folder)
    return 0


def _write_report(folder: Path) -> None:
    from accelsim.report.writer import write_report
    from accelsim.results.folder import guarded

    with guarded(folder):  # the report describes one generation; a concurrent save waits for it
        markdown, html = write_report(folder)
    print(f"report: {markdown}, {html}")


def cmd_report(args: argparse.Namespace) -> int:
    _write_report(Path(args.results_dir))
    return 0


def cmd_lower(args: argparse.Namespace) -> int:
    from accelsim.lowering.program import lower, lowering_options

    model, hw = _load_pair(args)
    workload = model.workload
    program = lower(workload, hw, args.scheme, **lowering_options(args.flavour, args.weights))
    print(f"{_describe_pair(args, workload, hw)}\nscheme {args.scheme}")
    rows = []
    for layer in program.layers:
        view, plan = layer.view, layer.plan
        gemm = f"{view.m}x{view.k}x{view.n}" + (f" (packed {view.packed})" if view.packed > 1 else "") if view else "-"
        tiling = [f"{plan.mt}x{plan.kt}x{plan.nt}", plan.order] if plan else ["-", "-"]
        dram = sum(
            t.ifmap_bytes + t.weight_bytes + t.bias_bytes + t.weight_scale_bytes + t.ofmap_bytes for t in layer.tiles
        )
        rows.append(
            [
                layer.name,
                layer.type,
                view.count if view else "-",
                gemm,
                *tiling,
                len(layer.tiles),
                f"{sum(t.compute_cycles for t in layer.tiles):,}",
                f"{dram:,}",
            ]
        )
    width = terminal_width(args.wide)
    print(
        format_table(
            [
                "layer",
                "type",
                "GEMMs",
                "GEMM size M x K x N",
                "tile size M x K x N",
                "loop order",
                "tiles",
                "compute cycles",
                "DRAM bytes",
            ],
            rows,
            width=width,
            hide_order=("loop order", "tiles", "type"),
        )
    )
    print(textwrap.fill(LOWER_LEGEND, width or 120))
    if args.tiles:
        fields = [
            "ifmap_bytes",
            "weight_bytes",
            "bias_bytes",
            "weight_scale_bytes",
            "unit",
            "compute_cycles",
            "pre_vector_cycles",
            "post_unit",
            "post_cycles",
            "ofmap_bytes",
            "macs",
        ]
        for layer in program.layers:
            print(f"\n{layer.name}")
            print(
                format_table(
                    ["#"] + [f.replace("_", " ") for f in fields],
                    [[i] + [_tile_cell(getattr(t, f)) for f in fields] for i, t in enumerate(layer.tiles)],
                    width=width,
                    hide_order=(
                        "pre vector cycles",
                        "post unit",
                        "post cycles",
                        "macs",
                        "bias bytes",
                        "weight scale bytes",
                    ),
                )
            )
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from accelsim.config.sweep import load_sweep
    from accelsim.sweep import DaskCluster, LocalPool, run_sweep

    sweep = load_sweep(args.spec)
    executor = DaskCluster(args.dask, args.workers) if args.dask else LocalPool(args.workers)
    try:
        outcome = run_sweep(sweep, executor, batch_size=args.batch)
    except KeyboardInterrupt:
        print(
            f"accelsim: interrupted; finished points are in {sweep.output}: run the same command to finish",
            file=sys.stderr,
        )
        return 130
    print(outcome.describe())
    if args.report:
        from accelsim.report.sweep_report import write_sweep_report

        markdown, html = write_sweep_report(sweep.output)
        print(f"report: {markdown}, {html}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from accelsim.explain import explain
    from accelsim.values.footprint import check_values_fit

    model, hw = _load_pair(args)
    workload, tensors = model.workload, _tensors(args, model)
    check_values_fit(workload, 1, timing_only_flag=False)
    print(explain(workload, hw, args.layer, args.scheme, args.flavour, args.weights, tensors, model.qparams))
    return 0


def _describe_scheme(scheme: str, flavour: str, weights: str) -> str:
    """The run's scheme line: the dynamic flavour, or what int4 group-wise weights make of the scheme (W4A8
    quantizes activations per row and group, whatever the flavour)."""
    plan = SCHEME_TABLE[SchemeName(scheme)]
    if (group := plan.weight_group(weights)) is not None:
        path = "weight-only int4" if plan.float_gemm else f"W4A8: activations int8 per row and group of {group}"
        return f"scheme {scheme}, weights {weights} ({path})"
    return f"scheme {scheme}" + (f" ({flavour} flavour)" if plan.runtime_activations else "")


def cmd_golden(args: argparse.Namespace) -> int:
    from accelsim.quant.golden import write_golden
    from accelsim.values.footprint import check_values_fit
    from accelsim.values.runner import run_values

    check_output_file(args.output, field="--output")
    if get_weight_format(args.weights).group is not None:
        raise AccelsimError(
            f"golden vectors hold one int8 layer's steps; {args.weights} is an int4 group-wise format",
            path="--weights",
            allowed="symmetric, asymmetric, asymmetric_int8",
        )
    model, hw = _load_pair(args)
    workload, tensors = model.workload, _tensors(args, model)
    names = [s.layer.name for s in workload.shapes]
    if args.layer not in names:
        raise AccelsimError(
            f"no layer {args.layer!r} in workload {workload.name}", path="--layer", allowed=", ".join(names[:15])
        )
    check_values_fit(workload, 1, timing_only_flag=False)
    results = (
        run_values(
            workload,
            hw,
            args.scheme,
            flavour=args.flavour,
            keep_results=[args.layer],
            weights=args.weights,
            tensors=tensors,
            qparams=model.qparams,
        )
        .layers[args.layer]
        .results
    )
    if not results:
        raise AccelsimError(
            f"layer {args.layer!r} does not run on the array; golden vectors are for conv2d, linear and matmul",
            path="--layer",
        )
    if not 0 <= args.index < len(results):
        raise AccelsimError(f"index {args.index} out of range", path="--index", allowed=f"0..{len(results) - 1}")
    path = write_golden(results[args.index], args.output)
    print(
        f"wrote {path}: {args.layer} ({results[args.index].kind}) under {args.scheme}, "
        f"GEMM {args.index + 1} of {len(results)}"
    )
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: a usage mistake is one line naming the option and what is
    allowed, exit 2, like every other user error (argparse would print the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="accelsim",
        description="Cycle-approximate, bit-exact simulator of an int8 systolic-array accelerator.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    overrides = _Parser(add_help=False)
    overrides.add_argument(
        "--set", action="append", default=[], metavar="PATH=VALUE", help="override a field by dotted path (repeatable)"
    )

    wide = _Parser(add_help=False)
    wide.add_argument(
        "--wide",
        action="store_true",
        help="print every table column (default: fit the terminal, hiding the least important columns)",
    )

    p = sub.add_parser("validate", parents=[overrides], help="check hardware and workload files, one summary line each")
    p.add_argument("files", nargs="+", metavar="FILE", help="hardware, workload or sweep files, or shipped names")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "show", parents=[overrides, wide], help="a table of a workload's layers (shapes, MACs) or a hardware config"
    )
    p.add_argument(
        "file", metavar="FILE", help="a hardware or workload file, or a shipped name (e.g. gemmini, resnet18)"
    )
    p.set_defaults(func=cmd_show)

    sim = _Parser(add_help=False, parents=[overrides])
    sim.add_argument(
        "workload", metavar="WORKLOAD", help="a workload file, a shipped workload's name, or an ONNX model (.onnx)"
    )
    sim.add_argument("--hw", help="hardware file or shipped name (default: hwconfigs/default.yaml)")
    sim.add_argument(
        "--set-workload",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a workload field, e.g. batch=8 (repeatable)",
    )
    sim.add_argument(
        "--flavour",
        choices=FLAVOURS,
        default=FlavourName.ONNX,
        help="dynamic quantization flavour (default: onnx): onnx (DynamicQuantizeLinear), pytorch "
        "(fbgemm/x86 engine, reduce_range: codes 0..127), pytorch_qnnpack (qnnpack engine, "
        "full 0..255), tflite (per-row hybrid), tflite_symmetric (per-row hybrid, max|x| / 127), "
        "pytorch_per_token (W8A8 per-token: int8 scale and zero point per row, torch's decomposed "
        "per-token ops), pytorch_per_token_symmetric (per token, max|x| / 127); see docs/numerics.md",
    )
    sim.add_argument(
        "--weights",
        choices=WEIGHT_FORMAT_NAMES,
        default=WeightFormatName.SYMMETRIC,
        help="weight codes: symmetric int8, or with a zero point per channel: asymmetric uint8 / int8; or int4 in "
        "groups of 32/64/128 along K (linear layers; woq: weight-only, dynamic: W4A8), int4_gN with zero point 8, "
        "int4_gN_zp with a zero point per group; see docs/numerics.md (default: symmetric)",
    )
    data = _Parser(add_help=False)
    data.add_argument(
        "--input",
        metavar="X.npy|npz",
        help="the run batch (the workload's batch x input shape; an .npz holds one array per input, named as "
        "the workload's or the ONNX model's inputs) instead of seeded random data; the errors are measured on it",
    )
    data.add_argument(
        "--calibration",
        metavar="C.npy|npz",
        help="the static scheme's calibration data (one or more batches, same layout as --input) (default: the "
        "--input batch when given, else seeded random data)",
    )
    run_opts = _Parser(add_help=False, parents=[sim, wide, data])
    run_opts.add_argument(
        "--observer",
        choices=OBSERVER_NAMES,
        default="minmax",
        help="the static scheme's calibration observer: minmax, moving_average_minmax (PyTorch's, constant 0.01) "
        "or percentile (99.99th) (default: minmax)",
    )
    run_opts.add_argument(
        "--granularity",
        choices=GRANULARITY_NAMES,
        default="per_channel",
        help="weight scales of the int8 schemes: one per output channel or one per tensor (default: per_channel)",
    )
    run_opts.add_argument(
        "--smoothquant",
        type=float,
        metavar="ALPHA",
        help="SmoothQuant for static and dynamic: per input channel s = max|X|^ALPHA / max|W|^(1-ALPHA) from the "
        "calibration batch, X / s folded into the preceding rmsnorm/layernorm, W * s into the linear weights "
        "(ALPHA in [0, 1], e.g. 0.5; it changes the values, not the timing; docs/llm.md)",
    )
    run_opts.add_argument(
        "--data",
        metavar="digits|DATA.npz",
        help="labelled data: top-1 accuracy of every scheme on its test images, streamed through the bit-exact "
        "kernels; its calibration images calibrate static and its first test batch is the run batch. digits: "
        "scikit-learn's 8x8 digits with a fixed split (docs/data.md); an .npz: arrays x (images, batch first), y "
        "(labels) and optionally x_calibration",
    )
    run_opts.add_argument(
        "--calibration-size",
        type=int,
        metavar="N",
        help="with --data: calibrate on the first N calibration images (default: all of them; an .npz without "
        "x_calibration: the first 100 of x)",
    )
    run_opts.add_argument(
        "--accuracy-sweep",
        action="store_true",
        help="with --data: measure every dynamic flavour, every static observer and both weight granularities, "
        "not only the options given",
    )
    run_opts.add_argument("--timing-only", action="store_true", help="skip the values (fast; no error metrics)")
    run_opts.add_argument("--ideal-memory", action="store_true", help="DRAM transfers take no time (compute-only)")
    run_opts.add_argument("--out", default="reports", help="results root folder (default: reports)")
    run_opts.add_argument(
        "--report",
        action="store_true",
        help="also write report.md and a self-contained report.html into the results folder",
    )

    p = sub.add_parser(
        "run", parents=[run_opts], help="simulate a workload under one scheme: per-layer table and totals"
    )
    p.add_argument("--scheme", choices=SCHEMES, default=SchemeName.STATIC, help=SCHEME_HELP)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", parents=[run_opts], help="all quantization schemes side by side on the same hardware")
    p.add_argument(
        "--schemes",
        nargs="+",
        choices=SCHEMES,
        default=list(SCHEMES),
        help="the schemes to compare, fp32 first as the error reference (default: all four)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("lower", parents=[sim, wide], help="print the lowered program: GEMMs, tiling, tiles")
    p.add_argument("--scheme", choices=SCHEMES, default=SchemeName.STATIC, help=SCHEME_HELP)
    p.add_argument("--tiles", action="store_true", help="print every tile record")
    p.set_defaults(func=cmd_lower)

    p = sub.add_parser("report", help="write report.md and report.html (plots, conclusions) for a results folder")
    p.add_argument(
        "results_dir",
        metavar="RESULTS_DIR",
        help="a folder `run` or `compare` wrote, e.g. reports/resnet18/default-32x32",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sweep", help="run a hardware sweep spec in parallel into a resumable store")
    p.add_argument("spec", metavar="SPEC", help="a sweep spec, e.g. hwconfigs/sweeps/array_dataflow.yaml")
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a Dask scheduler (tcp://host:8786), or 'local' for a LocalCluster (needs the distributed extra)",
    )
    p.add_argument("--workers", type=int, help="local processes, or LocalCluster workers (default: one per core)")
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help="points per task: raise it when points take milliseconds (default: 1)",
    )
    p.add_argument("--report", action="store_true", help="also write the sweep report into its output folder")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "explain", parents=[sim, data], help="one layer's datapath step by step: dtypes, units, M0/shift, ranges"
    )
    p.add_argument("--layer", required=True, help="layer name (see accelsim show)")
    p.add_argument("--scheme", choices=SCHEMES, default=SchemeName.STATIC, help=SCHEME_HELP)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "golden", parents=[sim, data], help="write one layer's golden vectors (.npz) for an RTL testbench"
    )
    p.add_argument("--layer", required=True, help="layer name (conv2d, linear or matmul)")
    p.add_argument("--scheme", choices=SCHEMES, default=SchemeName.STATIC, help=SCHEME_HELP)
    p.add_argument("--index", type=int, default=0, help="which GEMM of a matmul (sample x head), default 0")
    p.add_argument("-o", "--output", required=True, metavar="VECTORS.npz")
    p.set_defaults(func=cmd_golden)

    p = sub.add_parser("import", help="convert other tools' files into accelsim workloads")
    fmt = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    q = fmt.add_parser("scalesim", help="a SCALE-Sim topology CSV (conv or M,N,K GEMM format)")
    q.add_argument("topology", metavar="TOPO.csv")
    q.add_argument("-o", "--output", metavar="WORKLOAD.yaml", help="default: the CSV's name with .yaml, here")
    q.add_argument("--name", help="workload name (default: the CSV's file name)")
    q.set_defaults(func=cmd_import_scalesim)
    o = fmt.add_parser("onnx", help="an ONNX model (fp32): the workload YAML plus its weights .npz beside it")
    o.add_argument("model", metavar="MODEL.onnx")
    o.add_argument(
        "-o",
        "--output",
        metavar="WORKLOAD.yaml",
        help="default: the model's name with .yaml, here; the weights go beside it, named with .npz",
    )
    o.add_argument("--name", help="workload name (default: the model's file name)")
    o.add_argument("--batch", type=int, help="fills a symbolic batch dim of the model's inputs")
    o.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="a graph input's whole shape, batch first, for inputs with dynamic dims (repeatable)",
    )
    o.set_defaults(func=cmd_import_onnx)
    p = sub.add_parser("export", help="write a workload as another tool's file")
    fmt = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    x = fmt.add_parser(
        "onnx", parents=[overrides, data], help="an ONNX model: the fp32 graph, or accelsim's static run as QDQ"
    )
    x.add_argument("workload", metavar="WORKLOAD", help="a workload file, a shipped workload's name, or an ONNX model")
    x.add_argument("-o", "--output", required=True, metavar="MODEL.onnx")
    x.add_argument(
        "--scheme",
        choices=(SchemeName.FP32.value, SchemeName.STATIC.value),
        default=SchemeName.FP32.value,
        help="fp32: the float graph and weights; static: a QDQ model with accelsim's calibrated scales and zero "
        "points, weight codes and int32 biases (requant mode float_half_even, ONNX Runtime's) (default: %(default)s)",
    )
    x.add_argument("--hw", help="hardware file or shipped name (default: hwconfigs/default.yaml)")
    x.add_argument(
        "--set-workload", action="append", default=[], metavar="PATH=VALUE", help="override a workload field"
    )
    x.add_argument(
        "--weights",
        choices=WEIGHT_FORMAT_NAMES,
        default=WeightFormatName.SYMMETRIC,
        help="static weight codes: symmetric int8, or asymmetric uint8 / int8 with zero points (default: symmetric)",
    )
    x.set_defaults(func=cmd_export_onnx)
    commands = {**sub.choices, "import scalesim": q, "import onnx": o, "export onnx": x}
    for name, examples in COMMAND_EXAMPLES.items():
        commands[name].epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples)
        commands[name].formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


#: arguments that name files or folders, as the user wrote them in the command line
PATH_ARGUMENTS = {
    "files": "FILE",
    "file": "FILE",
    "workload": "WORKLOAD",
    "hw": "--hw",
    "results_dir": "RESULTS_DIR",
    "spec": "SPEC",
    "topology": "TOPO.csv",
    "model": "MODEL.onnx",
    "input": "--input",
    "calibration": "--calibration",
    "data": "--data",
    "output": "--output",
    "out": "--out",
}


def _check_path_arguments(args: argparse.Namespace) -> None:
    """An empty name or a NUL in any path argument, refused before it reaches the file system (ValueError there)."""
    for attr, shown in PATH_ARGUMENTS.items():
        value = getattr(args, attr, None)
        for name in value if isinstance(value, list) else [value]:
            if name is not None:
                check_name(name, field=shown)


#: pydantic's switch for its plugins, which it looks for in every installed package's entry points when it
#: builds its first model (~7 ms of each start with 170 packages installed); accelsim's models use none
PYDANTIC_PLUGINS_VARIABLE = "PYDANTIC_DISABLE_PLUGINS"


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault(PYDANTIC_PLUGINS_VARIABLE, "__all__")  # a value the user set (even empty) stays
    # At exit the interpreter searches every object the imports made (pydantic's schemas, the classes) for
    # garbage cycles: 3% of a timing-only run. With the heap frozen by an exit handler, the OS frees it instead
    # (Python promises no finalizer of what is alive at exit; what the command wrote is closed by then).
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    args = build_parser().parse_args(argv)
    try:
        _check_path_arguments(args)
        return args.func(args)
    except AccelsimError as exc:
        if exc.file is None and exc.path.split(".")[0] in HARDWARE_SECTIONS and hasattr(args, "hw"):
            from accelsim.config.loader import DEFAULT_HARDWARE, resolve

            exc.file = str(resolve(args.hw or DEFAULT_HARDWARE, "hardware"))  # a config the simulation rejected
        print(f"accelsim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except MemoryError:  # the estimate (accelsim.values.footprint) let through a run that still did not fit
        print(
            "accelsim: error: out of memory: use --timing-only (no values) or a smaller batch (--set-workload batch=N)",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:  # a file the user named: missing, unwritable, a full disk (the name is in exc.filename)
        print(f"accelsim: error: {os_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
