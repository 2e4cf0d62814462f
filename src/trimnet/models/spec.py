"""The layer spec: a JSON-able description of a network that builds an ``nn.Module`` and
can be written back from one.

A spec is a dict ``{"type": NAME, **params}``; containers hold lists of specs
(``sequential``: ``layers``; ``residual``: ``body`` and ``shortcut``). ``describe`` reads
the parameters off the built modules themselves (``in_channels``, ``out_features``, ...),
so a model whose widths were changed in place, by pruning say, is described with its new
widths and ``build(describe(m))`` rebuilds it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from trimnet.errors import ModelError
from trimnet.models import fused as FU
from trimnet.models import layers as L

Spec = dict[str, Any]


@dataclass(frozen=True)
class LayerType:
    name: str
    cls: type[nn.Module]
    build: Callable[[Spec], nn.Module]
    describe: Callable[[nn.Module], dict]


def _pair(v: Any) -> Any:
    return list(v) if isinstance(v, (tuple, list)) else v


def _conv2d(s: Spec) -> nn.Module:
    return nn.Conv2d(s["in_channels"], s["out_channels"], _tuple(s["kernel_size"]), stride=_tuple(s.get("stride", 1)),
                     padding=_tuple(s.get("padding", 0)), dilation=_tuple(s.get("dilation", 1)),
                     groups=s.get("groups", 1), bias=s.get("bias", True))


def _tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _describe_conv(m: nn.Conv2d) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": _pair(m.kernel_size),
            "stride": _pair(m.stride), "padding": _pair(m.padding), "dilation": _pair(m.dilation),
            "groups": m.groups, "bias": m.bias is not None}


def _conv2d_act(s: Spec) -> nn.Module:
    conv = _conv2d(s)
    return FU.Conv2dAct.from_conv(conv, s.get("activation", "relu"), s.get("kernel", "onednn"))


def _linear_act(s: Spec) -> nn.Module:
    return FU.LinearAct(s["in_features"], s["out_features"], bias=s.get("bias", True),
                        activation=s.get("activation", "relu"))


def _pool(cls):
    def build(s: Spec) -> nn.Module:
        return cls(_tuple(s["kernel_size"]), stride=_tuple(s.get("stride")), padding=_tuple(s.get("padding", 0)))

    def describe(m) -> dict:
        return {"kernel_size": _pair(m.kernel_size), "stride": _pair(m.stride), "padding": _pair(m.padding)}

    return build, describe


def _plain(cls):
    return (lambda s: cls()), (lambda m: {})


_TYPES: list[LayerType] = [
    LayerType("linear", nn.Linear,
              lambda s: nn.Linear(s["in_features"], s["out_features"], bias=s.get("bias", True)),
              lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}),
    LayerType("conv2d", nn.Conv2d, _conv2d, _describe_conv),
    # fused by ``trimnet.optimize.fuse.act_fuse``: the layer and the activation after it, one step
    LayerType("conv2d_act", FU.Conv2dAct, _conv2d_act, lambda m: {**_describe_conv(m), "activation": m.activation,
                                                            "kernel": m.kernel}),
    LayerType("linear_act", FU.LinearAct, _linear_act,
              lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None,
                         "activation": m.activation}),
    LayerType("batchnorm1d", nn.BatchNorm1d,
              lambda s: nn.BatchNorm1d(s["num_features"], eps=s.get("eps", 1e-5), momentum=s.get("momentum", 0.1)),
              lambda m: {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum}),
    LayerType("batchnorm2d", nn.BatchNorm2d,
              lambda s: nn.BatchNorm2d(s["num_features"], eps=s.get("eps", 1e-5), momentum=s.get("momentum", 0.1)),
              lambda m: {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum}),
    LayerType("layernorm", nn.LayerNorm,
              lambda s: nn.LayerNorm(s["normalized_shape"], eps=s.get("eps", 1e-5)),
              lambda m: {"normalized_shape": list(m.normalized_shape), "eps": m.eps}),
    LayerType("relu", nn.ReLU, *_plain(nn.ReLU)),
    LayerType("relu6", nn.ReLU6, *_plain(nn.ReLU6)),
    LayerType("gelu", nn.GELU, lambda s: nn.GELU(approximate=s.get("approximate", "none")),
              lambda m: {"approximate": m.approximate}),
    LayerType("silu", nn.SiLU, *_plain(nn.SiLU)),
    LayerType("sigmoid", nn.Sigmoid, *_plain(nn.Sigmoid)),
    LayerType("tanh", nn.Tanh, *_plain(nn.Tanh)),
    LayerType("identity", nn.Identity, *_plain(nn.Identity)),
    LayerType("dropout", nn.Dropout, lambda s: nn.Dropout(s.get("p", 0.5)), lambda m: {"p": m.p}),
    LayerType("flatten", nn.Flatten, lambda s: nn.Flatten(s.get("start_dim", 1)), lambda m: {"start_dim": m.start_dim}),
    LayerType("maxpool2d", nn.MaxPool2d, *_pool(nn.MaxPool2d)),
    LayerType("avgpool2d", nn.AvgPool2d, *_pool(nn.AvgPool2d)),
    LayerType("adaptive_avgpool2d", nn.AdaptiveAvgPool2d,
              lambda s: nn.AdaptiveAvgPool2d(_tuple(s.get("output_size", 1))),
              lambda m: {"output_size": _pair(m.output_size)}),
    LayerType("self_attention", L.SelfAttention,
              lambda s: L.SelfAttention(s["dim"], s["num_heads"], s.get("head_dim"), bias=s.get("bias", True)),
              lambda m: {"dim": m.q.in_features, "num_heads": m.num_heads, "head_dim": m.head_dim,
                         "bias": m.q.bias is not None}),
    LayerType("patch_tokens", L.PatchTokens, *_plain(L.PatchTokens)),
    LayerType("feature_tokens", L.FeatureTokens, lambda s: L.FeatureTokens(s["num_features"], s["dim"]),
              lambda m: {"num_features": m.num_features, "dim": m.dim}),
    LayerType("position_embedding", L.PositionEmbedding, lambda s: L.PositionEmbedding(s["num_tokens"], s["dim"]),
              lambda m: {"num_tokens": m.num_tokens, "dim": m.dim}),
    LayerType("token_mean", L.TokenMean, *_plain(L.TokenMean)),
    LayerType("token_embedding", L.TokenEmbedding,
              lambda s: L.TokenEmbedding(s["vocab_size"], s["dim"], padding_idx=s.get("padding_idx")),
              lambda m: {"vocab_size": m.num_embeddings, "dim": m.embedding_dim, "padding_idx": m.padding_idx}),
]

BY_NAME: dict[str, LayerType] = {t.name: t for t in _TYPES}
BY_CLASS: dict[type, LayerType] = {t.cls: t for t in _TYPES}


def build(spec: Spec) -> nn.Module:
    """Build the module a spec describes (fresh, randomly initialized weights)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ModelError(f"a layer spec must be a mapping with a 'type'; got {spec!r}")
    kind = spec["type"]
    if kind == "sequential":
        return nn.Sequential(*[build(s) for s in spec.get("layers", [])])
    if kind == "residual":
        shortcut = spec.get("shortcut")
        return L.Residual(nn.Sequential(*[build(s) for s in spec["body"]]),
                          nn.Sequential(*[build(s) for s in shortcut]) if shortcut else None)
    if kind not in BY_NAME:
        raise ModelError(f"unknown layer type {kind!r} in spec; known: {', '.join(sorted(BY_NAME))}, "
                         "sequential, residual")
    try:
        return BY_NAME[kind].build(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"layer {kind!r} spec {spec} is incomplete or invalid: {exc}") from None


def describe(module: nn.Module, where: str = "model") -> Spec:
    """Write the spec back from a module built of spec layers (widths read off the module)."""
    if type(module) is nn.Sequential or (isinstance(module, nn.Sequential) and type(module).__name__ == "SpecNet"):
        return {"type": "sequential",
                "layers": [describe(m, f"{where}.{name}") for name, m in module.named_children()]}
    if type(module) is L.Residual:
        out: Spec = {"type": "residual", "body": describe(module.body, f"{where}.body")["layers"]}
        if len(module.shortcut) > 0:
            out["shortcut"] = describe(module.shortcut, f"{where}.shortcut")["layers"]
        return out
    kind = BY_CLASS.get(type(module))
    if kind is None:
        raise ModelError(f"{where} is a {type(module).__name__}, which the layer spec cannot describe")
    return {"type": kind.name, **kind.describe(module)}


def is_describable(module: nn.Module) -> bool:
    try:
        describe(module)
    except ModelError:
        return False
    return True
