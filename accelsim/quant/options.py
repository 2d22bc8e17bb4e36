"""What a caller chooses when it runs a layer: the quantization (scheme and its variant, weight format and
granularity), as a typed, validated value instead of loose keyword strings.

Every name is a key of its table (``accelsim.schemes.SCHEMES``, ``REQUANT_MODES``, ``DYNAMIC_FLAVOURS``,
``WEIGHT_FORMATS``) and is checked on construction, so a misspelt mode fails where the options are
written, not deep in the arithmetic. Only the variant the scheme uses is checked (a static run never
reads ``flavour``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from accelsim.dynamic_flavours import FlavourName, get_flavour
from accelsim.requant_modes import RequantModeName, get_mode
from accelsim.schemes import Scheme, SchemeName, WeightFormatName, get_scheme, get_weight_format

#: how weights are scaled: one scale per output channel or one per tensor
WeightGranularity = Literal["per_channel", "per_tensor"]
WEIGHT_GRANULARITIES: tuple[WeightGranularity, ...] = ("per_channel", "per_tensor")


@dataclass(frozen=True, kw_only=True)
class Quantization:
    """The quantization a layer runs under.

    ``requant_mode`` (static; ``REQUANT_MODES``) selects the requant unit's arithmetic and with it the
    framework's input rule and activation dtype; ``flavour`` (dynamic; ``DYNAMIC_FLAVOURS``) the run-time
    quantization; ``weights`` the weight code format (``WEIGHT_FORMATS``: symmetric int8, asymmetric uint8
    or int8 with zero points) and ``weight_granularity`` its scales."""

    scheme: SchemeName = SchemeName.STATIC
    requant_mode: str = RequantModeName.TFLITE
    flavour: str = FlavourName.TFLITE
    weight_granularity: WeightGranularity = "per_channel"
    weights: str = WeightFormatName.SYMMETRIC

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", get_scheme(self.scheme).name)  # a plain string becomes its SchemeName
        if self.weight_granularity not in WEIGHT_GRANULARITIES:
            raise ValueError(f"weight_granularity must be per_channel or per_tensor, got {self.weight_granularity!r}")
        get_weight_format(self.weights)
        if self.plan.calibrated:
            get_mode(self.requant_mode)
        elif self.plan.runtime_activations:
            get_flavour(self.flavour)

    @cached_property
    def plan(self) -> Scheme:
        """The scheme's row of the table (what it quantizes, which units run)."""
        return get_scheme(self.scheme, self.weights)

    @property
    def variant(self) -> str | None:
        """The variant the scheme uses: the requant mode (calibrated), the dynamic flavour, else None."""
        if self.plan.calibrated:
            return self.requant_mode
        return self.flavour if self.plan.runtime_activations else None
