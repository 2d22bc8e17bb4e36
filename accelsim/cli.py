"""The ``accelsim`` command: parse arguments, call the library, print. User errors exit 2 on one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from accelsim.atomic_file import write_atomic
from accelsim.config import AccelsimError, HardwareConfig, Workload, load_any
from accelsim.config.scalesim_topology import import_topology, workload_yaml
from accelsim.report.table import format_table, si

EXAMPLES = """examples:
  accelsim validate hwconfigs/*.yaml workloads/*.yaml
  accelsim show workloads/resnet50.yaml
  accelsim show hwconfigs/gemmini.yaml --set array.rows=32
  accelsim import scalesim Resnet18.csv -o workloads/resnet18_scalesim.yaml
"""


def summary(model: HardwareConfig | Workload) -> str:
    """One line that says what a file holds."""
    if isinstance(model, Workload):
        return (
            f"workload {model.name}: {len(model.layers)} layers, batch {model.batch}, "
            f"{si(model.macs)}MAC, {si(model.params)} parameters ({si(model.params, 'B')} as int8)"
        )
    a = model.array
    return (
        f"hardware {model.name}: {a.rows}x{a.cols} {a.dataflow.upper()} array ({a.model} model), "
        f"{model.clock_mhz:g} MHz, SRAM {model.sram_total_kib:g} KiB, "
        f"DRAM {model.dram_bytes_per_cycle:.3g} B/cycle"
    )


def workload_table(workload: Workload) -> str:
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
    rows.append(["total", "", "", "", f"{workload.macs:,}", f"{workload.params:,}"])
    return format_table(["layer", "type", "inputs", "output (per sample)", "MACs (batch)", "params"], rows)


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


def cmd_validate(args: argparse.Namespace) -> int:
    for path in args.files:
        print(f"{path}: ok: {summary(load_any(path, args.set))}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    model = load_any(args.file, args.set)
    print(summary(model))
    print(workload_table(model) if isinstance(model, Workload) else hardware_table(model))
    return 0


def cmd_import_scalesim(args: argparse.Namespace) -> int:
    workload = import_topology(args.topology, name=args.name)
    out = args.output or Path(args.topology).with_suffix(".yaml").name
    write_atomic(out, workload_yaml(workload))
    print(f"wrote {out}: {summary(workload)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accelsim",
        description="Cycle-approximate, bit-exact simulator of an int8 systolic-array accelerator.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument(
        "--set", action="append", default=[], metavar="PATH=VALUE", help="override a field by dotted path (repeatable)"
    )

    p = sub.add_parser("validate", parents=[overrides], help="check hardware and workload files, one summary line each")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("show", parents=[overrides], help="a table of a workload's layers (shapes, MACs) or a hardware config")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("import", help="convert other tools' files into accelsim workloads")
    fmt = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    q = fmt.add_parser("scalesim", help="a SCALE-Sim topology CSV (conv or M,N,K GEMM format)")
    q.add_argument("topology", metavar="TOPO.csv")
    q.add_argument("-o", "--output", metavar="WORKLOAD.yaml", help="default: the CSV's name with .yaml, here")
    q.add_argument("--name", help="workload name (default: the CSV's file name)")
    q.set_defaults(func=cmd_import_scalesim)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AccelsimError as exc:
        print(f"accelsim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
