"""The memory a values run will hold, estimated before it starts, so a run that cannot fit is refused.

Why: the values path keeps every layer's activations for the whole batch (float32 references, integer
codes, accumulators) for each scheme it runs; ``run resnet50`` with a batch of 1000 needs hundreds of
GiB and used to end in a MemoryError traceback after minutes. Timing alone holds no tensors (per-tile
records only), so ``--timing-only`` is always the way out, besides a smaller batch.
"""

from __future__ import annotations

from math import prod

import psutil

from accelsim.config import Workload
from accelsim.errors import AccelsimError

#: bytes held per activation element (the input and all layers' outputs, whole batch): a base for the
#: shared float tensors and the largest layer's transient im2col buffer, plus this much per scheme.
#: Measured as tracemalloc peaks of values runs: 14.3 B (one scheme) and 21.2 B (four) on tiny_cnn at
#: batch 256 (3x3 convs: the most im2col per element); ResNet-18, BERT and MobileNetV2 need less
#: (ResNet-18 batch 2 -> 4: 11.9 B and 19 B per added element), so the estimate is an upper bound
BASE_BYTES_PER_ELEMENT = 12
SCHEME_BYTES_PER_ELEMENT = 3
#: bytes per parameter: float32 weights, int8 codes, packed GEMM operands (ResNet-18: about 7 B measured)
BYTES_PER_PARAMETER = 8
#: share of the available memory a run may plan to use (the rest: the interpreter, Numba, the OS)
USABLE_SHARE = 0.8


def activation_elements(workload: Workload) -> int:
    """Elements of the input and every layer's output, for one sample."""
    return prod(workload.input_shape) + sum(prod(s.output_shape) for s in workload.shapes)


def values_bytes(workload: Workload, schemes: int) -> int:
    """Estimated peak bytes of a values run of ``schemes`` schemes sharing one draw of the tensors."""
    per_element = BASE_BYTES_PER_ELEMENT + SCHEME_BYTES_PER_ELEMENT * schemes
    return workload.batch * activation_elements(workload) * per_element + workload.params * BYTES_PER_PARAMETER


def refuse_repeated(workload: Workload) -> None:
    """Values are computed for one block: a workload that repeats its block (``repeat``) has timing only."""
    if workload.repeat > 1:
        raise AccelsimError(
            f"values of a block repeated {workload.repeat} times are not computed (the timing is)",
            path="repeat",
            allowed="--timing-only, or --set-workload repeat=1 for one block's values",
        )


def check_values_fit(
    workload: Workload, schemes: int, *, timing_only_flag: bool = True, available: int | None = None
) -> None:
    """Refuse a values run that needs more memory than is available, naming what lowers it.

    ``timing_only_flag``: whether the command has ``--timing-only`` to suggest (``golden`` and ``explain``
    need the values). ``available`` defaults to the memory the system has free now.
    """
    refuse_repeated(workload)
    need = values_bytes(workload, schemes)
    usable = int(USABLE_SHARE * (psutil.virtual_memory().available if available is None else available))
    if need <= usable:
        return
    per_sample = (need - workload.params * BYTES_PER_PARAMETER) / workload.batch
    fits = int((usable - workload.params * BYTES_PER_PARAMETER) // per_sample)
    ways = (["--timing-only (no values)"] if timing_only_flag else []) + (
        [f"a batch of at most {fits} (--set-workload batch={fits})"] if fits >= 1 else []
    )
    raise AccelsimError(
        f"the values of workload {workload.name} at batch {workload.batch} need about {need / 2**30:.1f} GiB of "
        f"memory, {usable / 2**30:.1f} GiB is usable here",
        path="batch",
        allowed=" or ".join(ways) or "a smaller workload",
    )
