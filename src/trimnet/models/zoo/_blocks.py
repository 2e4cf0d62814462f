"""Spec fragments several zoo files share: conv + batch-norm (+ activation), residual blocks."""

from __future__ import annotations

from typing import Sequence

from trimnet.errors import ModelError


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: str | None = None) -> list:
    """A bias-free ``k x k`` conv ("same" padding), batch norm, then ``act`` if given."""
    layers = [
        {"type": "conv2d", "in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": stride,
         "padding": k // 2, "groups": groups, "bias": False},
        {"type": "batchnorm2d", "num_features": cout},
    ]
    if act is not None:
        layers.append({"type": act})
    return layers


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: str = "relu") -> list:
    return conv_bn(cin, cout, k, stride, groups, act)


def residual(body: list, shortcut: list | None = None, act: str | None = None) -> dict:
    """``body(x) + shortcut(x)`` (identity when no shortcut), then ``act``, as one sequential block.

    The post-add activation cannot live inside the residual (its output is the sum), so a
    block that has one is ``sequential[residual, act]``; one child per block keeps the
    module tree reading like the paper's block diagram.
    """
    res: dict = {"type": "residual", "body": body}
    if shortcut:
        res["shortcut"] = shortcut
    if act is None:
        return res
    return {"type": "sequential", "layers": [res, {"type": act}]}


def scale(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1."""
    return max(1, int(round(channels * width)))


def image_shape(model: str, in_shape: Sequence[int]) -> tuple[int, int, int]:
    """``in_shape`` as (C, H, W), or a ``ModelError`` saying what ``model`` needs."""
    if len(in_shape) != 3:
        raise ModelError(f"{model} needs image inputs (C, H, W); got in_shape {tuple(in_shape)}; "
                         "use mlp or transformer for tabular data")
    c, h, w = (int(v) for v in in_shape)
    return c, h, w


def check_width(model: str, width: float) -> None:
    if not width > 0:
        raise ModelError(f"{model} width multiplier must be > 0; got {width}")
