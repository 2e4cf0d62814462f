"""Fold inference-mode BatchNorm into the conv/linear before it, or else into the one after it.

At inference a BatchNorm is ``y = s * x + t`` per channel (``s = gamma / sqrt(var + eps)``,
``t = beta - mean * s``), so it folds into the layer before it (scale its output channels,
shift its bias) or into the next conv/linear (scale its input channels, push the shift
through its weights into its bias) when only layers that commute with a per-channel affine
map sit between: average pooling, flatten, dropout. The next layer must not zero-pad
(padding pads zeros, not ``t``). The arithmetic runs in float64.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from trimnet.optimize.fuse.base import Chain, Item, PassLog, register_pass
from trimnet.optimize.fuse.drop_identity import is_no_op

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) per channel in float64: ``bn(x) == scale * x + shift`` in eval mode."""
    scale = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    return scale, shift


def _with_weights(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A copy of ``module`` with new weight and bias (a bias is added when it had none)."""
    new = copy.deepcopy(module)
    new.weight = nn.Parameter(weight.to(module.weight.dtype), requires_grad=module.weight.requires_grad)
    new.bias = nn.Parameter(bias.to(module.weight.dtype), requires_grad=module.weight.requires_grad)
    return new


def _bias(module: nn.Module) -> torch.Tensor:
    out = module.weight.shape[0]
    return module.bias.detach().double() if module.bias is not None else torch.zeros(out, dtype=torch.float64)


def fold_into_producer(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """``bn(layer(x))`` as one conv/linear: its output channels scaled, its bias shifted."""
    scale, shift = bn_affine(bn)
    w = layer.weight.detach().double()
    w = w * scale.view(-1, *[1] * (w.dim() - 1))
    return _with_weights(layer, w, _bias(layer) * scale + shift)


def fold_into_consumer(layer: nn.Module, bn: nn.Module, repeat: int = 1) -> nn.Module:
    """``layer(bn(x))`` as one conv/linear; ``repeat``: features per channel after a flatten."""
    scale, shift = bn_affine(bn)
    w = layer.weight.detach().double()
    if isinstance(layer, nn.Linear):
        s, t = scale.repeat_interleave(repeat), shift.repeat_interleave(repeat)
        return _with_weights(layer, w * s.view(1, -1), _bias(layer) + w @ t)
    groups = layer.groups
    out_ch, per_group = w.shape[0], w.shape[1]
    # input channel j of output channel o is channel (o's group) * per_group + j of the BN
    s = scale.view(groups, 1, per_group).expand(groups, out_ch // groups, per_group).reshape(out_ch, per_group)
    t = shift.view(groups, 1, per_group).expand(groups, out_ch // groups, per_group).reshape(out_ch, per_group)
    kernel = [1] * (w.dim() - 2)
    bias = _bias(layer) + (w * t.view(out_ch, per_group, *kernel)).sum(dim=tuple(range(1, w.dim())))
    return _with_weights(layer, w * s.view(out_ch, per_group, *kernel), bias)


def _why_not_producer(prev: Item | None, bn: Item, chain: Chain) -> str | None:
    """None when ``bn`` folds into ``prev``, else why not."""
    channels = bn.module.num_features
    if prev is None:
        return f"its input {chain.shared_input}" if chain.shared_input else "no conv or linear directly before it"
    m = prev.module
    if type(m) in CONVS:
        return None if m.out_channels == channels else f"{prev.name} has {m.out_channels} channels, it {channels}"
    if type(m) is nn.Linear:
        if prev.out_shape is None or len(prev.out_shape) != 2:
            return (f"{prev.name} (Linear) output is not (batch, features), so BatchNorm1d does not normalize "
                    "its features")
        return None if m.out_features == channels else f"{prev.name} has {m.out_features} features, it {channels}"
    return f"{prev.name} ({prev.kind}) sits between it and the layer before"


def _consumer(items: list[Item], i: int) -> tuple[int | None, int, str]:
    """(index of the conv/linear ``items[i]`` folds into, features per channel, why not)."""
    bn = items[i]
    channels = bn.module.num_features
    repeat = 1 if bn.in_shape is None else math.prod(bn.in_shape[2:])
    flattened = bn.in_shape is not None and len(bn.in_shape) == 2
    for j in range(i + 1, len(items)):
        item, m = items[j], items[j].module
        if is_no_op(m):
            continue
        if type(m) is nn.Flatten and m.start_dim == 1 and m.end_dim == -1:
            flattened = True
            repeat = 1 if item.in_shape is None else math.prod(item.in_shape[2:])
            continue
        if type(m) in POOLS and not flattened and _plain_average(m):
            continue
        if type(m) is nn.Linear:
            if not flattened or item.in_shape is None or len(item.in_shape) != 2:
                return None, 1, f"the next Linear ({item.name}) does not act on its channels"
            if m.in_features != channels * repeat:
                return None, 1, f"the next Linear ({item.name}) takes {m.in_features} features, not {channels}x{repeat}"
            return j, repeat, ""
        if type(m) in CONVS:
            if flattened or m.in_channels != channels:
                return None, 1, f"the next conv ({item.name}) does not take its {channels} channels"
            if m.padding == "same" or any(p != 0 for p in (m.padding if isinstance(m.padding, tuple) else ())):
                return None, 1, f"the next conv ({item.name}) zero-pads its input, and the shift cannot pass the padding"
            return j, 1, ""
        return None, 1, f"{item.name} ({item.kind}) sits between it and the next conv or linear"
    return None, 1, "no conv or linear after it"


def _plain_average(pool: nn.Module) -> bool:
    """Averages whose weights sum to one: they commute with a per-channel affine map."""
    if type(pool).__name__.startswith("Adaptive"):
        return True
    padding = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,)
    return all(p == 0 for p in padding) and not pool.ceil_mode and getattr(pool, "divisor_override", None) is None


def _usable(bn: nn.Module) -> str | None:
    if bn.running_mean is None or bn.running_var is None:
        return "it has no running statistics (track_running_stats=False): it normalizes by batch statistics"
    return None


@register_pass("bn_fold", "fold BatchNorm into the conv/linear before it (or the one after it)")
def bn_fold(chain: Chain, log: PassLog) -> list[Item]:
    items, out, i = chain.items, [], 0
    while i < len(items):
        item = items[i]
        if type(item.module) not in BATCH_NORMS:
            out.append(item)
            i += 1
            continue
        unusable = _usable(item.module)
        if unusable:
            log.skip(item.name, f"not folded: {unusable}")
            out.append(item)
            i += 1
            continue
        prev = out[-1] if out else None
        why_back = _why_not_producer(prev, item, chain)
        if why_back is None:
            added = " (bias added)" if prev.module.bias is None else ""
            out[-1] = Item(prev.name, fold_into_producer(prev.module, item.module), prev.in_shape, item.out_shape)
            log.change("fold", [prev.name, item.name], prev.name, f"{prev.kind} + {item.kind} -> {prev.kind}{added}")
            i += 1
            continue
        j, repeat, why_forward = _consumer(items, i)
        if j is None:
            log.skip(item.name, f"not folded: {why_back}; {why_forward}")
            out.append(item)
            i += 1
            continue
        target = items[j]
        added = " (bias added)" if target.module.bias is None else ""
        out.extend(items[i + 1:j])
        out.append(Item(target.name, fold_into_consumer(target.module, item.module, repeat), target.in_shape,
                        target.out_shape))
        between = "".join(f" + {x.kind}" for x in items[i + 1:j])
        log.change("fold", [item.name, target.name], target.name,
                   f"{item.kind}{between} + {target.kind} -> {between[3:] + ' + ' if between else ''}"
                   f"{target.kind}{added} (folded forward: {why_back})")
        i = j + 1
    return out
