"""What a model family tells the rest of trimnet: where its attention heads and FFN neurons
are, how to change their count, and how to describe and rebuild the model without pickle.

A family is a small object registered by name (see ``__init__``). Pruning asks it for
``AttentionSite`` and ``FfnSite`` lists; the artifact asks it for a JSON spec and rebuilds
from that spec plus safetensors weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class AttentionSite:
    """One multi-head attention block: q/k/v output rows and the output projection's input
    columns of a head go together; ``owner`` carries the head-count attributes."""

    name: str
    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    o: nn.Linear
    head_dim: int
    owner: nn.Module
    heads_attr: str  # the attribute of ``owner`` that holds its head count

    @property
    def heads(self) -> int:
        return self.q.out_features // self.head_dim

    def set_heads(self, n: int) -> None:
        setattr(self.owner, self.heads_attr, n)
        if hasattr(self.owner, "all_head_size"):
            self.owner.all_head_size = n * self.head_dim


@dataclass
class FfnSite:
    """One feed-forward block: ``up``'s output rows are ``down``'s input columns (the neurons)."""

    name: str
    up: nn.Linear
    down: nn.Linear

    @property
    def neurons(self) -> int:
        return self.up.out_features


class Family:
    """The default: a plain module. Pruning finds channels with the dependency graph; there
    are no heads or FFN sites it must be told about, and no spec beyond the layer spec."""

    name = "plain"
    #: how inputs are read: "features" (float tensors), "tokens" (token ids), "pixels" (images)
    inputs = "features"

    def matches(self, model: nn.Module) -> bool:
        return True

    def attention(self, model: nn.Module) -> list[AttentionSite]:
        return []

    def ffn(self, model: nn.Module) -> list[FfnSite]:
        return []

    def set_sizes(self, model: nn.Module, heads: int, intermediate: int) -> None:
        """Record new uniform widths in the model's own configuration (if it has one)."""

    def spec(self, model: nn.Module) -> dict[str, Any] | None:
        """A JSON description that ``build`` turns back into the same architecture, or None."""
        return None

    def build(self, spec: dict[str, Any]) -> nn.Module:
        raise NotImplementedError


def keep_rows(layer: nn.Linear, keep: torch.Tensor) -> None:
    """Keep only output features ``keep`` of ``layer`` (in place)."""
    layer.weight = nn.Parameter(layer.weight.data[keep].clone(), requires_grad=layer.weight.requires_grad)
    if layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias.data[keep].clone(), requires_grad=layer.bias.requires_grad)
    layer.out_features = len(keep)


def keep_columns(layer: nn.Linear, keep: torch.Tensor) -> None:
    """Keep only input features ``keep`` of ``layer`` (in place)."""
    layer.weight = nn.Parameter(layer.weight.data[:, keep].clone(), requires_grad=layer.weight.requires_grad)
    layer.in_features = len(keep)


def keep_heads(site: AttentionSite, heads: torch.Tensor) -> None:
    """Keep only ``heads`` (indices, ascending) of ``site``."""
    rows = (heads[:, None] * site.head_dim + torch.arange(site.head_dim)[None, :]).flatten()
    for layer in (site.q, site.k, site.v):
        keep_rows(layer, rows)
    keep_columns(site.o, rows)
    site.set_heads(len(heads))


def keep_neurons(site: FfnSite, neurons: torch.Tensor) -> None:
    keep_rows(site.up, neurons)
    keep_columns(site.down, neurons)
