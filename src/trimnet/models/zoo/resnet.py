"""ResNets (He et al. 2016): ImageNet-style resnet18/34/50 and CIFAR-style resnet20/56.

The ImageNet nets match torchvision's layout and parameter counts exactly (resnet50 is
v1.5, stride on the 3x3 conv). Every net ends in adaptive average pooling, so any input of
at least 1x1 builds and runs, 8x8 digits included.
"""

from __future__ import annotations

from trimnet.models.registry import register_model
from trimnet.models.zoo._blocks import check_width, conv_bn, conv_bn_relu, image_shape, residual, scale


def _projection(cin: int, cout: int, stride: int) -> list | None:
    """The 1x1 conv + BN shortcut where the shape changes (option B); identity otherwise."""
    if stride == 1 and cin == cout:
        return None
    return conv_bn(cin, cout, k=1, stride=stride)


def basic_block(cin: int, cout: int, stride: int) -> dict:
    body = [*conv_bn_relu(cin, cout, stride=stride), *conv_bn(cout, cout)]
    return residual(body, _projection(cin, cout, stride), act="relu")


def bottleneck(cin: int, mid: int, stride: int, expansion: int = 4) -> dict:
    cout = mid * expansion
    body = [*conv_bn_relu(cin, mid, k=1), *conv_bn_relu(mid, mid, stride=stride), *conv_bn(mid, cout, k=1)]
    return residual(body, _projection(cin, cout, stride), act="relu")


def _head(channels: int, num_classes: int) -> list:
    return [
        {"type": "adaptive_avgpool2d", "output_size": 1},
        {"type": "flatten"},
        {"type": "linear", "in_features": channels, "out_features": num_classes},
    ]


def _imagenet_resnet(name: str, in_shape: tuple, num_classes: int, blocks: tuple, bottlenecked: bool,
                     width: float) -> list:
    c, _, _ = image_shape(name, in_shape)
    check_width(name, width)
    cin = scale(64, width)
    layers: list = [*conv_bn_relu(c, cin, k=7, stride=2),
                    {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1}]
    for i, n in enumerate(blocks):
        mid = scale(64 * 2**i, width)
        stage = []
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            if bottlenecked:
                stage.append(bottleneck(cin, mid, stride))
                cin = mid * 4
            else:
                stage.append(basic_block(cin, mid, stride))
                cin = mid
        layers.append({"type": "sequential", "layers": stage})
    return layers + _head(cin, num_classes)


def _cifar_resnet(name: str, in_shape: tuple, num_classes: int, n: int, width: float) -> list:
    c, _, _ = image_shape(name, in_shape)
    check_width(name, width)
    cin = scale(16, width)
    layers: list = conv_bn_relu(c, cin)
    for i in range(3):
        cout = scale(16 * 2**i, width)
        stage = []
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            stage.append(basic_block(cin, cout, stride))
            cin = cout
        layers.append({"type": "sequential", "layers": stage})
    return layers + _head(cin, num_classes)


@register_model("resnet18")
def resnet18(in_shape: tuple, num_classes: int, width: float = 1.0) -> list:
    """11,689,512 parameters at 1000 classes (torchvision)."""
    return _imagenet_resnet("resnet18", in_shape, num_classes, (2, 2, 2, 2), False, width)


@register_model("resnet34")
def resnet34(in_shape: tuple, num_classes: int, width: float = 1.0) -> list:
    """21,797,672 parameters at 1000 classes (torchvision)."""
    return _imagenet_resnet("resnet34", in_shape, num_classes, (3, 4, 6, 3), False, width)


@register_model("resnet50")
def resnet50(in_shape: tuple, num_classes: int, width: float = 1.0) -> list:
    """v1.5 (stride on the 3x3); 25,557,032 parameters at 1000 classes (torchvision)."""
    return _imagenet_resnet("resnet50", in_shape, num_classes, (3, 4, 6, 3), True, width)


@register_model("resnet20")
def resnet20(in_shape: tuple, num_classes: int, width: float = 1.0) -> list:
    """CIFAR ResNet-20 with option-B (1x1 conv + BN) shortcuts: 272,474 parameters at 10
    classes, 2,752 more than the paper's option A (zero-padded identity, 0.27 M)."""
    return _cifar_resnet("resnet20", in_shape, num_classes, 3, width)


@register_model("resnet56")
def resnet56(in_shape: tuple, num_classes: int, width: float = 1.0) -> list:
    """CIFAR ResNet-56 with option-B shortcuts: 855,770 parameters at 10 classes (option A: 0.85 M)."""
    return _cifar_resnet("resnet56", in_shape, num_classes, 9, width)
