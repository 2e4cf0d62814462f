"""The small CNN for 8x8 digits (REFERENCE.md): three conv-bn-relu stages, two pools, two linears."""

from __future__ import annotations

from trimnet.errors import ModelError
from trimnet.models.registry import register_model
from trimnet.models.zoo._blocks import conv_bn_relu


@register_model("cnn")
def cnn(in_shape: tuple, num_classes: int, widths: tuple = (64, 64, 128), hidden: int = 256) -> list:
    if len(in_shape) != 3:
        raise ModelError(f"cnn needs image inputs (C, H, W); got in_shape {in_shape}; use mlp for tabular data")
    c, h, w = in_shape
    if h < 4 or w < 4:
        raise ModelError(f"cnn pools twice and needs inputs of at least 4x4; got {h}x{w}")
    w1, w2, w3 = widths
    return [
        *conv_bn_relu(c, w1),
        *conv_bn_relu(w1, w2),
        {"type": "maxpool2d", "kernel_size": 2, "stride": 2},
        *conv_bn_relu(w2, w3),
        {"type": "maxpool2d", "kernel_size": 2, "stride": 2},
        {"type": "flatten"},
        {"type": "linear", "in_features": w3 * (h // 4) * (w // 4), "out_features": hidden},
        {"type": "relu"},
        {"type": "linear", "in_features": hidden, "out_features": num_classes},
    ]
