"""MobileNetV2 (Sandler et al. 2018), laid out as torchvision's ``mobilenet_v2``.

At width 1.0: 3,504,872 parameters at 1000 classes, exactly torchvision's count.
"""

from __future__ import annotations

from trimnet.models.registry import register_model
from trimnet.models.zoo._blocks import check_width, conv_bn, conv_bn_relu, image_shape, residual

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to a multiple of ``divisor``, never more than 10 % down (torchvision's rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def inverted_residual(cin: int, cout: int, stride: int, expansion: int) -> dict | list:
    """1x1 expand (skipped at expansion 1), 3x3 depthwise, 1x1 linear projection; residual
    only where the shape is kept."""
    hidden = int(round(cin * expansion))
    body = conv_bn_relu(cin, hidden, k=1, act="relu6") if expansion != 1 else []
    body += [*conv_bn_relu(hidden, hidden, stride=stride, groups=hidden, act="relu6"), *conv_bn(hidden, cout, k=1)]
    if stride == 1 and cin == cout:
        return residual(body)
    return {"type": "sequential", "layers": body}


@register_model("mobilenetv2")
def mobilenetv2(in_shape: tuple, num_classes: int, width: float = 1.0, dropout: float = 0.2) -> list:
    c, _, _ = image_shape("mobilenetv2", in_shape)
    check_width("mobilenetv2", width)
    cin = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    features: list = [{"type": "sequential", "layers": conv_bn_relu(c, cin, stride=2, act="relu6")}]
    for t, ch, n, s in SETTINGS:
        cout = make_divisible(ch * width)
        for i in range(n):
            features.append(inverted_residual(cin, cout, s if i == 0 else 1, t))
            cin = cout
    features.append({"type": "sequential", "layers": conv_bn_relu(cin, last, k=1, act="relu6")})
    return [
        {"type": "sequential", "layers": features},
        {"type": "adaptive_avgpool2d", "output_size": 1},
        {"type": "flatten"},
        {"type": "dropout", "p": dropout},
        {"type": "linear", "in_features": last, "out_features": num_classes},
    ]
