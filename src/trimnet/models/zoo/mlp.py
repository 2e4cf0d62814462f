"""Multi-layer perceptron for tabular data (or flattened images)."""

from __future__ import annotations

import math
from typing import Sequence

from trimnet.models.registry import register_model


@register_model("mlp")
def mlp(in_shape: tuple, num_classes: int, hidden: Sequence[int] = (128, 64), dropout: float = 0.0,
        batchnorm: bool = False) -> list:
    layers: list = [{"type": "flatten"}] if len(in_shape) > 1 else []
    width = math.prod(in_shape)
    for h in hidden:
        layers.append({"type": "linear", "in_features": width, "out_features": int(h)})
        if batchnorm:
            layers.append({"type": "batchnorm1d", "num_features": int(h)})
        layers.append({"type": "relu"})
        if dropout:
            layers.append({"type": "dropout", "p": dropout})
        width = int(h)
    layers.append({"type": "linear", "in_features": width, "out_features": num_classes})
    return layers
