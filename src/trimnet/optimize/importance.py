"""Importance criteria: how much each channel of a pruning group matters (higher: keep it).

One small registered class per criterion. A criterion reads a ``Group`` (which layers and
activations its channels are, see ``optimize.prune.graph``) and the calibration
``Evidence`` and returns one score per channel of the group, or ``None`` when the group
holds nothing it can read (an activation criterion on a group without an activation, say
attention heads); ``score`` then falls back to ``l2`` and says so.

``comparable`` says whether scores mean the same in every layer (a share of zeros does; a
weight norm depends on the layer's fan-in), which decides how global ranking treats them.

| name | what is measured | paper |
|---|---|---|
| ``apoz`` | 1 - average percentage of zeros after the activation | Hu et al. 2016, Network Trimming |
| ``mean_activation`` | mean output after the activation | Molchanov et al. 2017 (baseline) |
| ``l1``, ``l2`` | norm of each filter / weight row of the layers that make the channel | Li et al. 2017 |
| ``bn_scale`` | absolute batch-norm (or layer-norm) scale | Liu et al. 2017, Network Slimming |
| ``taylor`` | mean over samples of abs(mean over positions of activation x gradient) | Molchanov et al. 2017 |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from trimnet.optimize.prune.graph import Group
    from trimnet.optimize.stats import ActivationStats

FALLBACK = "l2"


@dataclass(frozen=True)
class Evidence:
    """What calibration measured: activation statistics (and gradients, for taylor)."""

    stats: "ActivationStats | None" = None


class Criterion:
    name: ClassVar[str] = ""
    needs: ClassVar[str] = "weights"  # weights | activations | gradients
    comparable: ClassVar[bool] = False

    def __call__(self, group: "Group", evidence: Evidence) -> torch.Tensor | None:
        raise NotImplementedError


CRITERIA: Registry[type[Criterion]] = Registry("pruning criterion", ConfigError)


def register_criterion(name: str) -> Callable[[type[Criterion]], type[Criterion]]:
    def add(cls: type[Criterion]) -> type[Criterion]:
        cls.name = name
        return CRITERIA.register(name)(cls)

    return add


def get_criterion(name: str) -> Criterion:
    return CRITERIA.get(name)()


def list_criteria() -> list[str]:
    return CRITERIA.names()


def score(criterion: Criterion, group: "Group", evidence: Evidence) -> tuple[torch.Tensor, str]:
    """Channel scores of ``group`` and the criterion that gave them (``criterion`` or the fallback)."""
    used = criterion.name
    values = criterion(group, evidence)
    if values is None:
        values, used = get_criterion(FALLBACK)(group, evidence), FALLBACK
    if values is None:  # no weights either: keep the group's order
        values, used = torch.ones(group.channels, dtype=torch.float64), "none"
    values = values.double()
    missing = torch.isnan(values)
    if missing.any():
        values[missing] = values[~missing].mean() if (~missing).any() else 1.0
    return values, used


def _mean(per_item: list[torch.Tensor]) -> torch.Tensor | None:
    if not per_item:
        return None
    return torch.nanmean(torch.stack(per_item), dim=0)


def _site_values(group: "Group", evidence: Evidence, read: Callable) -> torch.Tensor | None:
    stats = evidence.stats
    if stats is None:
        return None
    values = []
    for item in group.sites:
        if item.name in stats.sites:
            v = read(stats.sites[item.name])
            if v is not None and v.numel() > int(item.idxs.max()):
                values.append(group.per_channel(item, v))
    return _mean(values)


def _row_norms(weight: torch.Tensor, p: int) -> torch.Tensor:
    w = weight.detach().flatten(1)
    return w.abs().sum(1) if p == 1 else w.pow(2).sum(1).sqrt()


@register_criterion("apoz")
class APoZ(Criterion):
    """1 - APoZ: the share of calibration outputs above the threshold."""

    needs = "activations"
    comparable = True

    def __call__(self, group, evidence):
        return _site_values(group, evidence, lambda s: 1.0 - s.apoz)


@register_criterion("mean_activation")
class MeanActivation(Criterion):
    needs = "activations"

    def __call__(self, group, evidence):
        return _site_values(group, evidence, lambda s: s.mean)


@register_criterion("taylor")
class Taylor(Criterion):
    """First-order Taylor: activation x gradient at the activations; weight x gradient where there is none."""

    needs = "gradients"

    def __call__(self, group, evidence):
        values = _site_values(group, evidence, lambda s: s.taylor)
        if values is not None or evidence.stats is None or not evidence.stats.grads:
            return values
        grads = evidence.stats.grads
        rows = [group.per_channel(i, (i.module.weight.detach() * grads[f"{i.name}.weight"]).flatten(1).sum(1).abs())
                for i in group.producers if f"{i.name}.weight" in grads]
        return _mean(rows)


class _Magnitude(Criterion):
    p: ClassVar[int] = 1

    def __call__(self, group, evidence):
        return _mean([group.per_channel(i, _row_norms(i.module.weight, self.p)) for i in group.producers])


@register_criterion("l1")
class L1(_Magnitude):
    p = 1


@register_criterion("l2")
class L2(_Magnitude):
    p = 2


@register_criterion("bn_scale")
class BNScale(Criterion):
    """abs(gamma) of the batch norms (else layer norms) on the group's channels."""

    def __call__(self, group, evidence):
        norms = group.members("out", nn.modules.batchnorm._BatchNorm) or group.members("out", nn.LayerNorm)
        return _mean([group.per_channel(i, i.module.weight.detach().abs()) for i in norms
                      if getattr(i.module, "weight", None) is not None])
