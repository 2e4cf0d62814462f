"""Activation statistics: per channel of every activation, how often it fires.

Each activation module (ReLU, ReLU6, LeakyReLU, GELU, SiLU, Hardswish, ELU, Mish) is a
*site*. Over calibration batches a site collects, per output channel:

- ``apoz``: the average percentage of zeros (Network Trimming, Hu et al. 2016): the share
  of its outputs, over samples and positions, that are ``<= threshold``;
- ``mean`` and ``max`` of the outputs;
- ``fire_rate``: the share of samples on which the channel exceeds ``threshold`` at one
  position at least;
- ``never_active``: the channels that never exceed ``threshold`` on any sample.

ReLU and ReLU6 output exact zeros. GELU, SiLU and the rest never do, so "zero" means
"at most ``threshold``" there; the default threshold is 0, where GELU(x) and SiLU(x) are
``<= 0`` exactly when their input is, so a channel counts as firing when its pre-activation
is positive, as for ReLU. The threshold used is recorded with the statistics.

The channel axis is 1 for (N, C, H, W) maps and (N, F) features, the last axis for
(N, tokens, D) sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trimnet.errors import ConfigError, DataError

# activation module type -> does it output exact zeros below its threshold
ACTIVATIONS: dict[type, bool] = {
    nn.ReLU: True, nn.ReLU6: True, nn.LeakyReLU: False, nn.GELU: False, nn.SiLU: False,
    nn.Hardswish: False, nn.ELU: False, nn.Mish: False,
}
_PASS_THROUGH = (nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.Identity)


def site_zeros(module: nn.Module) -> bool | None:
    """None when ``module`` is no activation site; else whether it outputs exact zeros below its threshold.

    A fused layer (``Conv2dAct``, ``LinearAct`` from ``trimnet fuse``) is a site too: its output
    is its activation's output, and it is its own producer.
    """
    from trimnet.models import fused

    if isinstance(module, (fused.Conv2dAct, fused.LinearAct)) and module.activation != "none":
        return ACTIVATIONS.get(fused.ACTIVATIONS[module.activation].module, False)
    return ACTIVATIONS.get(type(module))


@dataclass
class SiteStats:
    """The statistics of one activation module, per output channel."""

    name: str
    type: str
    source: str | None  # the layer whose output it activates (a sibling before it), when there is one
    threshold: float
    samples: int
    apoz: torch.Tensor
    mean: torch.Tensor
    max: torch.Tensor
    fire_rate: torch.Tensor
    taylor: torch.Tensor | None = None  # |mean over positions of activation x gradient|, averaged over samples
    exact_zeros: bool = True

    @property
    def channels(self) -> int:
        return int(self.apoz.numel())

    @property
    def never_active(self) -> list[int]:
        """Channels that never exceeded the threshold on any calibration sample."""
        return [int(i) for i in torch.nonzero(self.max <= self.threshold).flatten()]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "source": self.source, "channels": self.channels,
                "apoz": float(self.apoz.mean()), "never_active": len(self.never_active),
                "mean": float(self.mean.mean()), "max": float(self.max.max()) if self.channels else 0.0,
                "fire_rate": float(self.fire_rate.mean()), "threshold": self.threshold}

    def to_dict(self, per_channel: bool = True) -> dict[str, Any]:
        out = self.summary()
        out["never_active_channels"] = self.never_active
        if per_channel:
            out["per_channel"] = {k: [round(float(v), 6) for v in getattr(self, k)]
                                  for k in ("apoz", "mean", "max", "fire_rate")}
            if self.taylor is not None:
                out["per_channel"]["taylor"] = [float(v) for v in self.taylor]
        return out


@dataclass
class ActivationStats:
    """``sites`` by activation module name, in the order the model runs them."""

    sites: dict[str, SiteStats]
    samples: int
    threshold: float
    grads: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # summed weight gradients (taylor)

    def __getitem__(self, name: str) -> SiteStats:
        return self.sites[name]

    def __contains__(self, name: object) -> bool:
        return name in self.sites

    def never_active(self) -> dict[str, list[int]]:
        return {name: s.never_active for name, s in self.sites.items() if s.never_active}

    def rows(self) -> list[dict[str, Any]]:
        return [s.summary() for s in self.sites.values()]

    def to_dict(self, per_channel: bool = True) -> dict[str, Any]:
        total = sum(s.channels for s in self.sites.values())
        dead = sum(len(s.never_active) for s in self.sites.values())
        return {"samples": self.samples, "threshold": self.threshold, "channels": total, "never_active": dead,
                "sites": [s.to_dict(per_channel) for s in self.sites.values()]}


class _Accumulator:
    """Running per-channel sums for one site."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.zeros = self.total = self.sum = self.max = self.fired = self.taylor = None
        self.samples = 0
        self.conflict = False  # one module run on outputs of different widths (reused): not a site

    def add(self, y: torch.Tensor) -> None:
        y = _channels_first(y.detach()).float()  # (N, C, L); reduced per batch, summed in float64
        n, channels, positions = y.shape
        if self.zeros is not None and channels != self.zeros.numel():
            self.conflict = True
            return
        fires = y > self.threshold
        zeros = (~fires).sum(dim=(0, 2)).double()
        total = y.sum(dim=(0, 2), dtype=torch.float64)
        peak = y.amax(dim=(0, 2)).double()
        fired = fires.any(dim=2).sum(dim=0).double()
        if self.zeros is None:
            self.zeros, self.sum, self.max, self.fired, self.total = zeros, total, peak, fired, 0
        else:
            self.zeros += zeros
            self.sum += total
            self.max = torch.maximum(self.max, peak)
            self.fired += fired
        self.total += n * positions
        self.samples += n

    def add_grad(self, y: torch.Tensor, g: torch.Tensor) -> None:
        # Molchanov et al. 2017: |mean over positions of a * dL/da| per sample, averaged later
        if self.conflict or self.zeros is None or _channels_first(y).shape[1] != self.zeros.numel():
            return
        score = (_channels_first(y) * _channels_first(g.detach())).mean(dim=2).abs().sum(dim=0, dtype=torch.float64)
        self.taylor = score if self.taylor is None else self.taylor + score


def _channels_first(y: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (N, C, positions); (N, tokens, D) -> (N, D, tokens)."""
    if y.dim() == 2:
        return y.unsqueeze(-1)
    if y.dim() == 3:
        return y.transpose(1, 2)
    return y.flatten(2)


def _sources(model: nn.Module) -> dict[str, str | None]:
    """For each activation, the sibling layer before it that produced its input (BN and dropout skipped)."""
    out: dict[str, str | None] = {}
    for parent_name, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        children = list(parent.named_children())
        def full(child_name: str) -> str:
            return f"{parent_name}.{child_name}" if parent_name else child_name

        for i, (name, child) in enumerate(children):
            if site_zeros(child) is None:
                continue
            if type(child) not in ACTIVATIONS:  # a fused layer: conv or linear and activation in one
                out[full(name)] = full(name)
                continue
            j = i - 1
            while j >= 0 and isinstance(children[j][1], _PASS_THROUGH):
                j -= 1
            out[full(name)] = full(children[j][0]) if j >= 0 else None
    return out


def calibration_inputs(data: Any, samples: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``samples`` inputs (and labels) of ``split`` of a Dataset, or of a tensor."""
    from trimnet.data.dataset import Dataset

    if samples < 1:
        raise ConfigError(f"calibration samples must be >= 1; got {samples}")
    if isinstance(data, Dataset):
        x, y = data.split(split)
        if len(x) == 0:
            raise DataError(f"the {split} split of {data.name} is empty; calibrate on another split")
        return x[:samples], y[:samples]
    if isinstance(data, torch.Tensor):
        if data.dim() < 2 or len(data) == 0:
            raise DataError(f"calibration inputs must be a non-empty batch (N, ...); got shape {tuple(data.shape)}")
        return data[:samples], None
    raise DataError(f"calibration data must be a trimnet Dataset or a tensor of inputs; got {type(data).__name__}")


def activation_stats(model: nn.Module, data: Any, *, samples: int = 1024, batch_size: int = 256,
                     threshold: float = 0.0, gradients: bool = False, split: str = "train") -> ActivationStats:
    """Per-channel activation statistics of ``model`` over ``samples`` calibration inputs.

    ``data`` is a ``Dataset`` (its ``split``, train by default) or a tensor of inputs.
    ``gradients=True`` also collects first-order Taylor scores (activation x gradient of
    the task's loss on the targets, so it needs a Dataset) and the weight gradients.
    The model is run in eval mode and left as it was.
    """
    if batch_size < 1:
        raise ConfigError(f"calibration batch size must be >= 1; got {batch_size}")
    x, y = calibration_inputs(data, samples, split)
    from trimnet.tasks import task_for

    task_loss = task_for(data if hasattr(data, "task") else None).loss
    if gradients and y is None:
        raise DataError("gradient statistics (the taylor criterion) need labels; pass a Dataset, not a tensor")
    sources = _sources(model)
    sites = {name: m for name, m in model.named_modules() if site_zeros(m) is not None}
    accs = {name: _Accumulator(threshold) for name in sites}
    order: list[str] = []
    hooks = [m.register_forward_hook(_hook(name, accs[name], order, gradients)) for name, m in sites.items()]
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads: dict[str, torch.Tensor] | None = {n: torch.zeros_like(p) for n, p in params.items()} if gradients else None
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            if not gradients:
                with torch.no_grad():
                    model(xb)
                continue
            with torch.enable_grad():
                # the task's loss summed over the batch (cross-entropy for classification, MSE for regression)
                loss = task_loss(model(xb), y[i:i + batch_size].to(device)) * len(xb)
                got = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (name, _), g in zip(params.items(), got):
                if g is not None:
                    grads[name] += g
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    out: dict[str, SiteStats] = {}
    for name in dict.fromkeys(order):
        a = accs[name]
        if a.conflict or a.zeros is None:
            continue
        out[name] = SiteStats(
            name=name, type=type(sites[name]).__name__, source=sources.get(name), threshold=threshold,
            samples=a.samples, apoz=(a.zeros / a.total).float(), mean=(a.sum / a.total).float(), max=a.max.float(),
            fire_rate=(a.fired / a.samples).float(),
            taylor=(a.taylor / a.samples).float() if a.taylor is not None else None,
            exact_zeros=bool(site_zeros(sites[name])))
    return ActivationStats(sites=out, samples=len(x), threshold=threshold, grads=grads)


def _hook(name: str, acc: _Accumulator, order: list[str], gradients: bool):
    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() < 2:
            return
        order.append(name)
        acc.add(output)
        if gradients and output.requires_grad:
            y = output.detach()
            output.register_hook(lambda g: acc.add_grad(y, g))

    return hook
