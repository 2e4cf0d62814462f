"""``PruneConfig``: what to prune, how much, and how to recover."""

from __future__ import annotations

from dataclasses import dataclass, field

from trimnet.errors import ConfigError
from trimnet.optimize.finetune import FinetuneConfig

PRUNE_CONFIG_VERSION = 1
SCOPES = ("per_layer", "global")


@dataclass
class PruneConfig:
    """Structured pruning: remove whole channels, neurons and attention heads.

    Give ``ratio`` (the share of channels to remove) or ``target_macs`` (the share of the
    MACs to keep); with neither, half the channels go.
    """

    version: int = PRUNE_CONFIG_VERSION
    criterion: str = "apoz"  # apoz | mean_activation | l1 | l2 | bn_scale | taylor
    ratio: float | None = None  # share of channels removed, in (0, 1)
    target_macs: float | None = None  # share of the MACs to keep, in (0, 1)
    scope: str = "per_layer"  # per_layer: every layer loses `ratio`; global: rank channels across layers
    round_to: int = 8  # pruned widths are multiples of this (layers narrower than it are not rounded)
    min_channels: int = 1  # floor per layer; a layer never loses all its channels
    ignore: list[str] = field(default_factory=list)  # module names whose shapes are never changed
    steps: int = 1  # iterative pruning: prune a share, fine-tune, repeat
    calibration_samples: int = 512  # training inputs the activation statistics are measured on
    batch_size: int = 256  # calibration batch size
    threshold: float = 0.0  # an activation "fires" when its output exceeds this
    recalibrate_bn: bool = True  # re-estimate batch-norm statistics on the calibration inputs after pruning
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def validate(self) -> None:
        from trimnet.optimize.importance import CRITERIA

        if self.version != PRUNE_CONFIG_VERSION:
            raise ConfigError(f"prune config version {self.version} is not supported; this trimnet reads "
                              f"version {PRUNE_CONFIG_VERSION}")
        CRITERIA.get(self.criterion)
        if self.ratio is not None and self.target_macs is not None:
            raise ConfigError("give either ratio (channels to remove) or target_macs (MACs to keep), not both")
        if self.ratio is not None and not 0.0 < self.ratio < 1.0:
            raise ConfigError(f"ratio must be in (0, 1): the share of channels to remove; got {self.ratio}")
        if self.target_macs is not None and not 0.0 < self.target_macs < 1.0:
            raise ConfigError(f"target_macs must be in (0, 1): the share of the MACs to keep; got {self.target_macs}")
        if self.scope not in SCOPES:
            raise ConfigError(f"scope {self.scope!r} is unknown; choose per_layer or global")
        if self.round_to < 1:
            raise ConfigError(f"round_to must be >= 1; got {self.round_to}")
        if self.min_channels < 1:
            raise ConfigError(f"min_channels must be >= 1 (a layer is never pruned to zero); got {self.min_channels}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1; got {self.steps}")
        if self.calibration_samples < 1 or self.batch_size < 1:
            raise ConfigError("calibration_samples and batch_size must be >= 1")
        if not isinstance(self.ignore, (list, tuple)) or not all(isinstance(n, str) for n in self.ignore):
            raise ConfigError(f"ignore must be a list of module names; got {self.ignore!r}")
        self.finetune.validate()

    @property
    def amount(self) -> float:
        """The channel ratio in force (0.5 when neither ratio nor target_macs is given)."""
        return self.ratio if self.ratio is not None else 0.5
