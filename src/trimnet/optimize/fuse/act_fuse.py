"""Fuse each conv/linear with the activation right after it into one layer (``Conv2dAct``, ``LinearAct``).

In eager PyTorch a conv and its ReLU are two kernels and two module calls, the second
reading back the whole output the first just wrote. Fused, the activation runs as the
conv's oneDNN post-op while the output is still in cache (the kernel ``torch.compile``
emits for the same pattern on CPU), and a linear's activation runs in place on its product.
A conv with no activation after it (the last conv of a residual body, a downsampling
shortcut) becomes a ``Conv2dAct`` with activation ``none``: it still gains the packed
weight, which oneDNN would otherwise reorder on every call (ResNet-18 at batch 1: 1.13x
from folding and fusing alone, 1.47x with every conv packed; measured A/B, 2 threads).
Exported graphs are unchanged (Conv, Relu), so onnxruntime and OpenVINO fuse the pair their
own way. Runs last: the other passes look for plain ``Conv2d`` and ``Linear`` layers.
"""

from __future__ import annotations

from torch import nn

from trimnet.models.fused import Conv2dAct, LinearAct, activation_of, kernel_for
from trimnet.optimize.fuse.base import Chain, Item, PassLog, register_pass


def _why_not(layer: nn.Module) -> str | None:
    if type(layer) is nn.Conv2d:
        if isinstance(layer.padding, str) or layer.padding_mode != "zeros":
            return f"padding {layer.padding!r} ({layer.padding_mode}) is not plain zero padding"
        return None
    if type(layer) is nn.Linear:
        return None
    return f"{type(layer).__name__} before it is not a Conv2d or Linear"


def _fused(layer: nn.Module, activation: str) -> nn.Module:
    fused = (Conv2dAct.from_conv(layer, activation) if type(layer) is nn.Conv2d
             else LinearAct.from_linear(layer, activation))
    return fused.train(layer.training)


@register_pass("act_fuse", "fuse each Conv2d/Linear with the activation after it into one layer; "
                           "every other Conv2d runs as one oneDNN step on a packed weight")
def act_fuse(chain: Chain, log: PassLog) -> list[Item]:
    return [_packed(item, log) for item in _with_activations(chain, log)]


def _packed(item: Item, log: PassLog) -> Item:
    """A plain conv left without an activation runs on the packed-weight kernel too, where that pays."""
    if type(item.module) is not nn.Conv2d or _why_not(item.module) is not None or kernel_for(item.module) != "onednn":
        return item
    log.change("pack", [item.name], item.name, "Conv2d -> Conv2dAct (no activation; weight packed for oneDNN)")
    return Item(item.name, _fused(item.module, "none"), item.in_shape, item.out_shape)


def _with_activations(chain: Chain, log: PassLog) -> list[Item]:
    out: list[Item] = []
    for item in chain.items:
        activation = activation_of(item.module)
        if activation is None or not out:
            out.append(item)
            continue
        prev = out[-1]
        why = _why_not(prev.module)
        if why is not None:
            log.skip(item.name, f"not fused: {why}")
            out.append(item)
            continue
        out[-1] = Item(prev.name, _fused(prev.module, activation), prev.in_shape, item.out_shape)
        log.change("fuse", [prev.name, item.name], prev.name,
                   f"{prev.kind} + {item.kind} -> {type(out[-1].module).__name__} ({activation})")
    return out
