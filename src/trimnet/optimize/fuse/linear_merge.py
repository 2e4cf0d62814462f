"""Merge consecutive linear maps with nothing nonlinear between them into one.

``Linear(W2) . Linear(W1)`` is ``Linear(W2 @ W1)`` with bias ``W2 @ b1 + b2``; likewise a
conv followed by a 1x1 conv (no padding, no groups) is one conv with the first's kernel
and the product of their strides. A merge that would cost more multiply-accumulates than
the two layers it replaces (a low-rank bottleneck, ``512 -> 16 -> 512``) is skipped and
reported. The arithmetic runs in float64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trimnet.optimize.fuse.base import Chain, Item, PassLog, register_pass
from trimnet.optimize.fuse.bn_fold import CONVS


def _b(layer: nn.Module) -> torch.Tensor | None:
    return None if layer.bias is None else layer.bias.detach().double()


def _merged_bias(first: nn.Module, second: nn.Module, w2: torch.Tensor) -> torch.Tensor | None:
    b1, b2 = _b(first), _b(second)
    if b1 is None and b2 is None:
        return None
    out = torch.zeros(w2.shape[0], dtype=torch.float64) if b2 is None else b2
    return out if b1 is None else out + w2 @ b1


def merge_linear(first: nn.Linear, second: nn.Linear) -> nn.Linear:
    w1, w2 = first.weight.detach().double(), second.weight.detach().double()
    bias = _merged_bias(first, second, w2)
    new = nn.Linear(first.in_features, second.out_features, bias=bias is not None,
                    dtype=first.weight.dtype, device=first.weight.device)
    with torch.no_grad():
        new.weight.copy_(w2 @ w1)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def merge_conv(first: nn.Module, second: nn.Module) -> nn.Module:
    """``second(first(x))`` for a conv ``first`` and a 1x1 conv ``second`` (see ``_conv_pair``)."""
    w1 = first.weight.detach().double()
    w2 = second.weight.detach().double().flatten(1)  # (out2, out1)
    bias = _merged_bias(first, second, w2)
    stride = tuple(a * b for a, b in zip(first.stride, second.stride))
    new = type(first)(first.in_channels, second.out_channels, first.kernel_size, stride=stride,
                      padding=first.padding, dilation=first.dilation, groups=1, bias=bias is not None,
                      padding_mode=first.padding_mode, dtype=first.weight.dtype, device=first.weight.device)
    with torch.no_grad():
        new.weight.copy_(torch.einsum("po,oi...->pi...", w2, w1))
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _conv_pair(a: Item, b: Item) -> str | None:
    """None when conv ``a`` then conv ``b`` merge exactly, else why not."""
    first, second = a.module, b.module
    if type(first) is not type(second):
        return f"{a.kind} and {b.kind} have different dimensions"
    if first.groups != 1 or second.groups != 1:
        return "a grouped conv mixes only within groups"
    if any(k != 1 for k in second.kernel_size):
        return f"{b.name} is not a 1x1 conv"
    if isinstance(second.padding, str) or any(p != 0 for p in second.padding):
        return f"{b.name} pads its input"
    if isinstance(first.padding, str) and any(s != 1 for s in second.stride):
        return f"{a.name} uses padding={first.padding!r}, which cannot take a stride"
    return None


def _macs(a: Item, b: Item) -> tuple[int, int] | None:
    """(MACs of the two layers, MACs of the merged one) per sample; None without shapes."""
    if a.out_shape is None or b.out_shape is None:
        return None
    first, second = a.module, b.module
    if isinstance(first, nn.Linear):
        rows = math.prod(b.out_shape[1:-1])  # a Linear applies to every leading position
        mid = first.out_features
        return rows * (first.in_features * mid + mid * second.out_features), rows * first.in_features * second.out_features
    k = math.prod(first.kernel_size) * first.in_channels
    p1, p2 = math.prod(a.out_shape[2:]), math.prod(b.out_shape[2:])
    mid = first.out_channels
    return p1 * k * mid + p2 * mid * second.out_channels, p2 * k * second.out_channels


def _try(a: Item, b: Item) -> tuple[nn.Module | None, str | None]:
    """(merged module, None), or (None, why not) for a linear pair, or (None, None) for any other pair."""
    if type(a.module) is nn.Linear and type(b.module) is nn.Linear:
        merge = merge_linear
    elif type(a.module) in CONVS and type(b.module) in CONVS:
        why = _conv_pair(a, b)
        if why is not None:
            return None, f"not merged with {a.name}: {why}"
        merge = merge_conv
    else:
        return None, None
    macs = _macs(a, b)
    if macs is None:
        return None, f"not merged with {a.name}: shapes unknown (the layer ran with several input shapes)"
    separate, merged = macs
    if merged > separate:
        return None, (f"not merged with {a.name}: one layer would cost {merged:,} MACs per sample against "
                      f"{separate:,} for the two (the middle width is a bottleneck)")
    return merge(a.module, b.module), None


@register_pass("linear_merge", "merge consecutive linear (or conv + 1x1 conv) layers with nothing nonlinear between")
def linear_merge(chain: Chain, log: PassLog) -> list[Item]:
    out: list[Item] = []
    for item in chain.items:
        if out:
            prev = out[-1]
            merged, why = _try(prev, item)
            if merged is not None:
                out[-1] = Item(prev.name, merged, prev.in_shape, item.out_shape)
                log.change("merge", [prev.name, item.name], prev.name, f"{prev.kind} + {item.kind} -> {type(merged).__name__}")
                continue
            if why is not None:
                log.skip(item.name, why)
        out.append(item)
    return out
