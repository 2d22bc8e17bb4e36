"""Hostile uses of the int4 group-wise weight formats (``--weights int4_g*``, issue 18): each ends in one line
naming the option and what is allowed (exit 2)."""

from __future__ import annotations

from .case import Case

CASES = [
    Case(
        "int4-static-scheme",
        ("run", "mlp", "--scheme", "static", "--weights", "int4_g32", "--timing-only", "--out", "{tmp}/o"),
        match=r"weights: int4 group-wise weights \(int4_g32\) do not run under the static scheme.*allowed: woq",
    ),
    Case(
        "int4-compare-static",
        (
            "compare",
            "mlp",
            "--schemes",
            "dynamic",
            "static",
            "--weights",
            "int4_g64_zp",
            "--timing-only",
            "--out",
            "{tmp}/o",
        ),
        match=r"do not run under the static scheme",
    ),
    Case(
        "int4-conv-layer",
        ("run", "tiny_cnn", "--scheme", "dynamic", "--weights", "int4_g128", "--timing-only", "--out", "{tmp}/o"),
        match=r"weights: int4 group-wise weights apply to linear layers.*is conv2d.*allowed: an int8 weight format",
    ),
    Case(
        "int4-golden",
        ("golden", "mlp", "--layer", "fc1", "--weights", "int4_g32", "-o", "{tmp}/g.npz"),
        match=r"--weights: golden vectors hold one int8 layer's steps.*allowed: symmetric",
    ),
    Case(
        "int4-group-unknown",
        ("run", "mlp", "--weights", "int4_g16", "--timing-only", "--out", "{tmp}/o"),
        match=r"--weights: invalid choice: 'int4_g16'",
    ),
    Case(
        "int4-explain-static",
        ("explain", "mlp", "--layer", "fc1", "--scheme", "static", "--weights", "int4_g32"),
        match=r"do not run under the static scheme",
    ),
]
