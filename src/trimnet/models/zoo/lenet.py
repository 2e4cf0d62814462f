"""LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling in place of tanh and subsampling."""

from __future__ import annotations

from trimnet.errors import ModelError
from trimnet.models.registry import register_model
from trimnet.models.zoo._blocks import image_shape


def _conv_pool(size: int, padding: int) -> int:
    """Spatial size after a 5x5 conv with ``padding`` and a 2x2 pool."""
    return (size + 2 * padding - 4) // 2


@register_model("lenet5")
def lenet5(in_shape: tuple, num_classes: int) -> list:
    """conv 6@5x5, pool, conv 16@5x5, pool, fc 120, fc 84, fc ``num_classes``.

    On 32x32 inputs this is the paper's network (61,706 parameters for 10 classes). Smaller
    inputs get padding so they reach the classifier at the paper's size where they can: the
    first conv is padded by 2 below 32 px (so 28x28 MNIST also gives 16x5x5 features), and
    the second as well where the map would otherwise vanish (8x8 digits give 16x2x2).
    """
    c, h, w = image_shape("lenet5", in_shape)
    if min(h, w) < 4:
        raise ModelError(f"lenet5 pools twice and needs inputs of at least 4x4; got {h}x{w}")
    p1 = 0 if min(h, w) >= 32 else 2
    h1, w1 = _conv_pool(h, p1), _conv_pool(w, p1)
    p2 = 0 if min(h1, w1) >= 6 else 2
    h2, w2 = _conv_pool(h1, p2), _conv_pool(w1, p2)
    return [
        {"type": "conv2d", "in_channels": c, "out_channels": 6, "kernel_size": 5, "padding": p1},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2, "stride": 2},
        {"type": "conv2d", "in_channels": 6, "out_channels": 16, "kernel_size": 5, "padding": p2},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2, "stride": 2},
        {"type": "flatten"},
        {"type": "linear", "in_features": 16 * h2 * w2, "out_features": 120},
        {"type": "relu"},
        {"type": "linear", "in_features": 120, "out_features": 84},
        {"type": "relu"},
        {"type": "linear", "in_features": 84, "out_features": num_classes},
    ]
