"""VGG-16 (Simonyan & Zisserman 2015, configuration D), laid out as torchvision's ``vgg16``.

At the defaults the parameter count is torchvision's exactly: 138,357,544 at 1000 classes
(``vgg16_bn``: 138,365,992). The classifier's input is fixed by the adaptive pool
(512 x 7 x 7), so it does not depend on the image size. Inputs smaller than 32 px skip the
max-pools that would shrink the map below 1x1 (8x8 digits keep three of the five).
"""

from __future__ import annotations

from trimnet.models.registry import register_model
from trimnet.models.zoo._blocks import check_width, image_shape, scale

# Configuration D: conv widths, "M" for a 2x2 max-pool.
CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _vgg(name: str, in_shape: tuple, num_classes: int, batchnorm: bool, width: float, hidden: int,
         pool_size: int, dropout: float) -> list:
    c, h, w = image_shape(name, in_shape)
    check_width(name, width)
    layers: list = []
    for v in CONFIG_D:
        if v == "M":
            if min(h, w) >= 2:
                layers.append({"type": "maxpool2d", "kernel_size": 2, "stride": 2})
                h, w = h // 2, w // 2
            continue
        cout = scale(v, width)
        # torchvision keeps the conv bias even when a BN follows; so do we, for equal counts.
        layers.append({"type": "conv2d", "in_channels": c, "out_channels": cout, "kernel_size": 3,
                       "padding": 1, "bias": True})
        if batchnorm:
            layers.append({"type": "batchnorm2d", "num_features": cout})
        layers.append({"type": "relu"})
        c = cout
    layers += [{"type": "adaptive_avgpool2d", "output_size": pool_size}, {"type": "flatten"}]
    width_in = c * pool_size * pool_size
    for _ in range(2):
        layers += [{"type": "linear", "in_features": width_in, "out_features": hidden}, {"type": "relu"},
                   {"type": "dropout", "p": dropout}]
        width_in = hidden
    layers.append({"type": "linear", "in_features": hidden, "out_features": num_classes})
    return layers


@register_model("vgg16")
def vgg16(in_shape: tuple, num_classes: int, width: float = 1.0, hidden: int = 4096, pool_size: int = 7,
          dropout: float = 0.5) -> list:
    """13 convs with bias, 5 max-pools, adaptive pool to ``pool_size``, classifier of two
    ``hidden`` linears with ReLU + dropout. ``pool_size=1, hidden=512`` is the usual CIFAR head."""
    return _vgg("vgg16", in_shape, num_classes, False, width, hidden, pool_size, dropout)


@register_model("vgg16_bn")
def vgg16_bn(in_shape: tuple, num_classes: int, width: float = 1.0, hidden: int = 4096, pool_size: int = 7,
             dropout: float = 0.5) -> list:
    """``vgg16`` with a batch norm after every conv."""
    return _vgg("vgg16_bn", in_shape, num_classes, True, width, hidden, pool_size, dropout)
