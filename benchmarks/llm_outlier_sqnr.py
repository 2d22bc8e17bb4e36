"""SQNR of each W8A8 / weight-only scheme on a decoder block with activation outlier channels (issue 18).

Run: ``python benchmarks/llm_outlier_sqnr.py [--workload NAME] [--hw HW]``. Prints the Markdown table of
docs/llm.md ("Outlier channels"): each scheme's values against the fp32 run of the same weights and input
(``workloads/llama_outlier_block.yaml`` by default: 6 hidden channels 20-100x the rest), in dB, at the first
projection after each norm (q_proj and gate_proj, which read the outlier channels), at the linears that read
no norm (o_proj, down_proj) and at the block's output. SmoothQuant rows migrate the outliers into the weights
first (``accelsim.values.smoothquant``; the fp32 reference keeps the original weights). Every number is
computed, none is stored; ``tests/test_llm_outliers.py`` asserts the ordering the docs explain. One
``accelsim compare llama_outlier_block --schemes fp32 dynamic static --flavour pytorch_per_token --smoothquant 0.5``
reproduces a row pair from the command line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from accelsim.config.loader import load_hardware, load_workload
from accelsim.values.runner import OUTPUT, run_values
from accelsim.values.smoothquant import smooth
from accelsim.values.tensors import materialize

#: where the table measures: the projections reading the two norms, the two that read none, the block output
COLUMNS = ("self_attn.q_proj", "mlp.gate_proj", "self_attn.o_proj", "mlp.down_proj", OUTPUT)


@dataclass(frozen=True)
class Variant:
    label: str
    scheme: str
    flavour: str = "onnx"
    weights: str = "symmetric"
    smoothquant: float | None = None


VARIANTS = (
    Variant("woq int8 (per channel)", "woq"),
    Variant("woq int4, group 128", "woq", weights="int4_g128"),
    Variant("dynamic per tensor (onnx, uint8)", "dynamic"),
    Variant("dynamic per token (pytorch_per_token)", "dynamic", flavour="pytorch_per_token"),
    Variant("static per tensor (minmax)", "static"),
    Variant("static + SmoothQuant 0.5", "static", smoothquant=0.5),
    Variant("dynamic per token + SmoothQuant 0.5", "dynamic", flavour="pytorch_per_token", smoothquant=0.5),
)


def sqnr_table(workload_name: str = "llama_outlier_block", hw_name: str = "default") -> dict[str, dict[str, float]]:
    """Variant label -> column -> SQNR in dB against fp32 (the fp32 row is the reference: infinite)."""
    workload, hw = load_workload(workload_name), load_hardware(hw_name)
    tensors = materialize(workload)
    reference = run_values(workload, hw, "fp32", tensors=tensors)
    smoothed: dict[float, object] = {}
    table = {}
    for v in VARIANTS:
        run_tensors = tensors
        if v.smoothquant is not None:
            run_tensors = smoothed.setdefault(v.smoothquant, smooth(workload, hw, tensors, v.smoothquant))
        values = run_values(workload, hw, v.scheme, flavour=v.flavour, weights=v.weights, tensors=run_tensors)
        errors = values.compare_to(reference)
        table[v.label] = {column: errors[column].sqnr_db for column in COLUMNS}
    return table


def markdown(table: dict[str, dict[str, float]]) -> str:
    head = ["scheme", *(c.split(".")[-1] if c != OUTPUT else "block output" for c in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| fp32 (reference) | " + " | ".join("inf" for _ in COLUMNS) + " |")
    for label, row in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[c]:.1f}" for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="llama_outlier_block")
    parser.add_argument("--hw", default="default")
    args = parser.parse_args()
    print(markdown(sqnr_table(args.workload, args.hw)))


if __name__ == "__main__":
    main()
