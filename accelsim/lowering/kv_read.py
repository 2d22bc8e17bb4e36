"""A matmul's operand read from a KV cache in DRAM (decoder workloads with a ``kv_cache`` layer).

A module of its own: the lowering makes one only for such a workload, and a dataclass costs the compilation
of its methods when its module is imported (a CNN's run does not import this one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KvRead:
    """A matmul's operand b read from a KV cache: its storage dtype and head size (an int8 cache carries one
    float32 scale per head per token)."""

    dtype: str  # workload.KvDtype
    head_dim: int
