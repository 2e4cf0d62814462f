"""Hugging Face ``transformers`` encoders as trimnet models.

``HFClassifier`` wraps a ``*ForSequenceClassification`` or ``*ForImageClassification``
model into a tensor-in / logits-out module, so train, evaluate, profile, export, prune and
search take it unchanged:

- text: one tensor of token ids, shape (batch, seq_len). Float tensors are accepted (the
  datasets and runtimes of trimnet carry float inputs) and rounded; ids outside the
  vocabulary are clamped into it. The attention mask is derived inside from the padding id.
- images: ``pixel_values``, shape (batch, channels, height, width).

``HFEncoderFamily`` knows where one architecture keeps its heads and FFN neurons (a
dotted path per part) and which config fields hold their counts, so a pruned model's
config stays consistent and the model rebuilds from config JSON + safetensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trimnet.errors import ModelError, require
from trimnet.models.families.base import AttentionSite, Family, FfnSite, keep_heads

SPEC_TYPE = "hf"


class HFClassifier(nn.Module):
    """A transformers classifier as ``forward(x) -> logits``."""

    def __init__(self, hf: nn.Module, family: "HFEncoderFamily", seq_len: int | None = None,
                 mask_padding: bool = True):
        super().__init__()
        self.hf = hf
        self.family_name = family.name
        self.inputs = family.inputs
        cfg = hf.config
        self.num_classes = int(cfg.num_labels)
        self.arch = f"hf-{cfg.model_type}"
        if family.inputs == "tokens":
            self.seq_len = int(seq_len or min(128, getattr(cfg, "max_position_embeddings", 128)))
            self.in_shape = (self.seq_len,)
            self.vocab_size = int(cfg.vocab_size)
            pad = getattr(cfg, "pad_token_id", None)
            self.pad_token_id = int(pad) if (pad is not None and mask_padding) else None
        else:
            size = cfg.image_size if isinstance(cfg.image_size, int) else cfg.image_size[0]
            self.in_shape = (int(cfg.num_channels), int(size), int(size))
            self.seq_len = None
            self.pad_token_id = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inputs == "tokens":
            ids = (x.round() if x.is_floating_point() else x).long().clamp(0, self.vocab_size - 1)
            mask = (ids != self.pad_token_id).long() if self.pad_token_id is not None else None
            return self.hf(input_ids=ids, attention_mask=mask).logits
        return self.hf(pixel_values=x).logits

    def sample_inputs(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Inputs of the kind the model reads: token ids (as float) or standard-normal pixels."""
        if self.inputs == "tokens":
            return torch.randint(0, self.vocab_size, (batch, *self.in_shape), generator=generator).float()
        return torch.randn((batch, *self.in_shape), generator=generator)


@dataclass
class HFEncoderFamily(Family):
    """One transformers encoder architecture: where its parts are and what its config calls them."""

    name: str = ""
    model_types: tuple[str, ...] = ()
    inputs: str = "tokens"
    layers: str = ""  # dotted path from the transformers model to its list of blocks
    q: str = ""
    k: str = ""
    v: str = ""
    o: str = ""
    owner: str = ""  # the module holding the head count
    owner_heads: str = ""  # its attribute
    up: str = ""
    down: str = ""
    heads_key: str = "num_attention_heads"  # config fields
    ffn_key: str = "intermediate_size"
    hidden_key: str = "hidden_size"
    classes: tuple[str, ...] = ()  # transformers classes this family wraps and rebuilds

    def matches(self, model: nn.Module) -> bool:
        hf = _hf(model)
        return hf is not None and getattr(hf.config, "model_type", None) in self.model_types

    def head_dim(self, hf: nn.Module) -> int:
        cfg = hf.config
        return int(getattr(cfg, "trimnet_head_dim", None) or getattr(cfg, self.hidden_key) // getattr(cfg, self.heads_key))

    def blocks(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        hf = _hf(model)
        prefix = "hf." if isinstance(model, HFClassifier) else ""
        return [(f"{prefix}{self.layers}.{i}", b) for i, b in enumerate(_get(hf, self.layers))]

    def attention(self, model: nn.Module) -> list[AttentionSite]:
        hd = self.head_dim(_hf(model))
        return [AttentionSite(name=f"{name}.{self.owner}", q=_get(b, self.q), k=_get(b, self.k), v=_get(b, self.v),
                              o=_get(b, self.o), head_dim=hd, owner=_get(b, self.owner), heads_attr=self.owner_heads)
                for name, b in self.blocks(model)]

    def ffn(self, model: nn.Module) -> list[FfnSite]:
        return [FfnSite(name=f"{name}.{self.up.rsplit('.', 1)[0]}", up=_get(b, self.up), down=_get(b, self.down))
                for name, b in self.blocks(model)]

    def set_sizes(self, model: nn.Module, heads: int, intermediate: int) -> None:
        cfg = _hf(model).config
        if not getattr(cfg, "trimnet_head_dim", None):
            cfg.trimnet_head_dim = self.head_dim(_hf(model))
        setattr(cfg, self.heads_key, int(heads))
        setattr(cfg, self.ffn_key, int(intermediate))
        if hasattr(cfg, "head_dim"):
            cfg.head_dim = cfg.trimnet_head_dim

    def spec(self, model: nn.Module) -> dict[str, Any] | None:
        if not isinstance(model, HFClassifier):
            return None
        hf = model.hf
        if type(hf).__name__ not in self.classes:
            return None
        cfg = hf.config.to_dict()
        cfg.pop("transformers_version", None)
        return {"type": SPEC_TYPE, "family": self.name, "class": type(hf).__name__, "config": cfg,
                "seq_len": model.seq_len, "mask_padding": model.pad_token_id is not None}

    def build(self, spec: dict[str, Any]) -> nn.Module:
        transformers = require("transformers", "hf")
        cls_name = spec.get("class")
        if cls_name not in self.classes:
            raise ModelError(f"model.json names transformers class {cls_name!r}, which the {self.name} family "
                             f"does not rebuild; expected one of {', '.join(self.classes)}")
        config_dict = dict(spec["config"])
        model_type = config_dict.pop("model_type", self.model_types[0])
        config = transformers.AutoConfig.for_model(model_type, **config_dict)
        heads, head_dim = getattr(config, self.heads_key), getattr(config, "trimnet_head_dim", None)
        full = copy.deepcopy(config)
        if head_dim:  # pruned: build at the original head count, then cut to the recorded one
            setattr(full, self.heads_key, getattr(config, self.hidden_key) // head_dim)
        hf = getattr(transformers, cls_name)(full)
        hf.config = config
        wrapper = HFClassifier(hf, self, seq_len=spec.get("seq_len"), mask_padding=spec.get("mask_padding", True))
        for site in self.attention(wrapper):
            if site.heads != heads:
                keep_heads(site, torch.arange(heads))
        return wrapper.eval()


def _hf(model: nn.Module) -> nn.Module | None:
    """The transformers model inside ``model`` (or ``model`` itself), if any."""
    hf = model.hf if isinstance(model, HFClassifier) else model
    return hf if hasattr(hf, "config") and hasattr(hf.config, "model_type") else None


def _get(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = root[int(part)] if part.isdigit() else getattr(root, part)
    return root
