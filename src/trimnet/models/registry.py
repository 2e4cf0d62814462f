"""The model registry: ``register_model``, ``list_models``, ``create_model`` (zoo names, or a
user's ``file.py:function`` / ``module:function``).

A model factory takes the input shape (without batch), the number of classes and its
own options, and returns the list of layer specs of a sequential network.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Callable, Sequence

import torch
from torch import nn

from trimnet.errors import ModelError
from trimnet.models import layers as L
from trimnet.models import spec as S
from trimnet.registry import Registry

Factory = Callable[..., list]
MODELS: Registry[Factory] = Registry("model", ModelError)


class SpecNet(nn.Sequential):
    """The root of every spec-built model: a Sequential that remembers what it is."""

    def __init__(self, *layers: nn.Module, arch: str = "custom", in_shape: Sequence[int] = (),
                 num_classes: int = 0):
        super().__init__(*layers)
        self.arch = arch
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes

    def sample_inputs(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random inputs of the kind the model reads: token ids (as float) or standard-normal values."""
        first = next(iter(self), None)
        if isinstance(first, L.TokenEmbedding):
            return torch.randint(0, first.num_embeddings, (batch, *self.in_shape), generator=generator).float()
        return torch.randn((batch, *self.in_shape), generator=generator)


def register_model(name: str) -> Callable[[Factory], Factory]:
    return MODELS.register(name)


def _load_zoo() -> None:
    import trimnet.models.zoo as zoo

    for info in pkgutil.iter_modules(zoo.__path__):
        importlib.import_module(f"trimnet.models.zoo.{info.name}")


def list_models(pattern: str = "*") -> list[str]:
    _load_zoo()
    return MODELS.names(pattern)


def create_model(name: str, in_shape: Sequence[int], num_classes: int, **options) -> nn.Module:
    """Build a registered model for inputs of ``in_shape`` (no batch dim) and ``num_classes`` outputs.

    ``name`` may also be a user's function: ``path/to/file.py:function`` or
    ``package.module:function`` (see ``trimnet.models.user``).
    """
    from trimnet.models import user

    if user.is_reference(name):
        if num_classes < 1:
            raise ModelError(f"num_classes must be >= 1; got {num_classes}")
        return user.create(name, in_shape, num_classes, **options)
    _load_zoo()
    factory = MODELS.get(name)
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1; got {num_classes}")
    try:
        inspect.signature(factory).bind(tuple(in_shape), num_classes, **options)
    except TypeError as exc:
        raise ModelError(f"model {name!r} does not take these options {sorted(options)}: {exc}") from None
    layers = factory(tuple(in_shape), num_classes, **options)
    return from_spec({"type": "sequential", "layers": layers}, arch=name, in_shape=in_shape, num_classes=num_classes)


def from_spec(spec: S.Spec, *, arch: str = "custom", in_shape: Sequence[int] = (), num_classes: int = 0) -> SpecNet:
    if isinstance(spec, dict) and spec.get("type") == "hf":  # a model family's spec (models/families)
        from trimnet.models.families import build_from_spec

        return build_from_spec(spec)
    seq = S.build(spec)
    if not isinstance(seq, nn.Sequential):
        seq = nn.Sequential(seq)
    return SpecNet(*seq.children(), arch=arch, in_shape=in_shape, num_classes=num_classes)


def to_spec(model: nn.Module) -> S.Spec:
    """The spec of ``model``; a ``ModelError`` if it holds modules the spec cannot describe."""
    from trimnet.models.families import spec_of

    family_spec = spec_of(model)
    return family_spec if family_spec is not None else S.describe(model)
