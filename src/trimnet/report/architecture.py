"""The network as the report draws it: each weight-carrying layer with its input and output width,
and per-layer latency grouped onto those layers (an activation or pooling that follows a layer
belongs to it: the runtimes fuse them into its kernel anyway)."""

from __future__ import annotations

from torch import nn


def _width(module: nn.Module) -> tuple[int, int] | None:
    """(inputs, outputs) of a layer that carries a weight matrix or kernel; None otherwise."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return module.in_channels, module.out_channels
    if isinstance(module, nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    weight = getattr(module, "weight", None)
    if isinstance(weight, nn.Parameter) and weight.dim() >= 2 and not list(module.children()):
        groups = getattr(module, "groups", 1) or 1
        return int(weight.shape[1]) * groups, int(weight.shape[0])
    return None


def layers_with_widths(model: nn.Module) -> list[dict]:
    """``[{"name": "features.0", "type": "Conv2d", "in": 1, "out": 32, "label": "features.0 Conv2d 1→32"}]``."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)) or \
                (not list(module.children()) and _width(module)):
            w = _width(module)
            if w is None:
                continue
            kind = type(module).__name__
            out.append({"name": name or "(model)", "type": kind, "in": w[0], "out": w[1],
                        "label": f"{name or kind} {kind} {w[0]}→{w[1]}"})
    return out


def group_latency(model: nn.Module, timed: list[dict]) -> list[dict]:
    """Kernel times per module (``bench.layers.layer_latency``) summed onto the layer at or before each
    module in the model's order; times the model's modules do not own stay as they came."""
    layers = {row["name"]: row for row in layers_with_widths(model)}
    owner, current = {}, None
    for name, _ in model.named_modules():
        if name in layers:
            current = name
        owner[name] = current
    sums: dict[str, float] = {}
    for row in timed:
        target = owner.get(row["name"])
        key = layers[target]["label"] if target in layers else row["name"]
        sums[key] = sums.get(key, 0.0) + row["ms"]
    order = [r["label"] for r in layers.values()]
    keys = sorted(sums, key=lambda k: order.index(k) if k in order else len(order))
    return [{"layer": k, "ms": sums[k]} for k in keys]
