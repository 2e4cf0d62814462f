"""Model families: what pruning, profiling and saving need to know about a kind of model.

``family_of(model)`` returns the family that claims ``model`` (Hugging Face BERT,
DistilBERT, ViT, ...), or the ``plain`` family. ``wrap(hf_model)`` turns a transformers
classifier into a tensor-in / logits-out module. One file per family registers it.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from trimnet.errors import ModelError
from trimnet.models.families.base import AttentionSite, Family, FfnSite
from trimnet.registry import Registry

FAMILIES: Registry[Family] = Registry("model family", ModelError)
_MODULES = ("bert", "distilbert", "vit", "plain")  # "plain" last: it claims everything


def register_family(family: Family) -> Family:
    return FAMILIES.register(family.name)(family)


def _load() -> None:
    for name in _MODULES:
        importlib.import_module(f"trimnet.models.families.{name}")


def list_families() -> list[str]:
    _load()
    return [n for n in _MODULES if n in FAMILIES]


def get_family(name: str) -> Family:
    _load()
    return FAMILIES.get(name)


def family_of(model: nn.Module) -> Family:
    """The first family that claims ``model``; ``plain`` when none does."""
    _load()
    for name in _MODULES:
        fam = FAMILIES.get(name)
        if name != "plain" and fam.matches(model):
            return fam
    return FAMILIES.get("plain")


def wrap(hf_model: nn.Module, seq_len: int | None = None, mask_padding: bool = True) -> nn.Module:
    """A transformers sequence/image classifier as ``forward(x) -> logits`` (see ``hf.HFClassifier``)."""
    from trimnet.models.families.hf import HFClassifier, HFEncoderFamily

    if isinstance(hf_model, HFClassifier):
        return hf_model
    fam = family_of(hf_model)
    if not isinstance(fam, HFEncoderFamily):
        kind = getattr(getattr(hf_model, "config", None), "model_type", None)
        known = ", ".join(n for n in list_families() if n != "plain")
        raise ModelError(f"{type(hf_model).__name__} ({'model_type ' + repr(kind) if kind else 'not a transformers model'})"
                         f" is not a family trimnet wraps ({known}); pass a plain nn.Module that maps one tensor to "
                         f"logits instead")
    if type(hf_model).__name__ not in fam.classes:
        raise ModelError(f"{type(hf_model).__name__} is not a classifier trimnet wraps; use "
                         f"{' or '.join(fam.classes)} (a head that returns .logits)")
    return HFClassifier(hf_model, fam, seq_len=seq_len, mask_padding=mask_padding)


def as_module(model: Any, data: Any = None, example: Any = None) -> Any:
    """``model`` itself, or a transformers classifier wrapped (``wrap``) so that every step takes it:
    the sequence length comes from ``data``'s input shape or ``example``'s, else the default."""
    if not isinstance(model, nn.Module) or not hasattr(getattr(model, "config", None), "model_type"):
        return model
    shape = getattr(data, "in_shape", None) or (tuple(example.shape[1:]) if example is not None else None)
    return wrap(model, seq_len=shape[0] if shape and len(shape) == 1 else None)


def spec_of(model: nn.Module) -> dict[str, Any] | None:
    """The family's JSON spec of ``model``, or None when the layer spec should describe it."""
    return family_of(model).spec(model)


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    return get_family(spec.get("family", "")).build(spec)


__all__ = ["AttentionSite", "FAMILIES", "as_module", "Family", "FfnSite", "build_from_spec", "family_of", "get_family",
           "list_families", "register_family", "spec_of", "wrap"]
