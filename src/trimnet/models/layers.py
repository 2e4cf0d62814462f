"""Modules the layer spec needs that torch.nn lacks: residual blocks and transformer pieces."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """``body(x) + shortcut(x)``; an empty shortcut is the identity."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Sequential | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over (batch, tokens, dim) with separate q/k/v projections.

    Separate projections (rather than one fused qkv matrix) keep whole-head pruning a
    matter of removing rows of three linears; ``num_heads`` follows from their width.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int | None = None, bias: bool = True):
        super().__init__()
        head_dim = head_dim or dim // num_heads
        self.head_dim = head_dim
        inner = num_heads * head_dim
        self.q = nn.Linear(dim, inner, bias=bias)
        self.k = nn.Linear(dim, inner, bias=bias)
        self.v = nn.Linear(dim, inner, bias=bias)
        self.proj = nn.Linear(inner, dim, bias=bias)

    @property
    def num_heads(self) -> int:
        return self.q.out_features // self.head_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        shape = (b, n, -1, self.head_dim)
        q = self.q(x).view(shape).transpose(1, 2)
        k = self.k(x).view(shape).transpose(1, 2)
        v = self.v(x).view(shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class PatchTokens(nn.Module):
    """(B, C, H, W) -> (B, H*W, C): feature-map positions become tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class FeatureTokens(nn.Module):
    """(B, F) -> (B, F, D): each tabular feature becomes a token (x_f * w_f + b_f)."""

    def __init__(self, num_features: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_features, dim) * 0.02)
        self.bias = nn.Parameter(torch.zeros(num_features, dim))

    @property
    def num_features(self) -> int:
        return self.weight.shape[0]

    @property
    def dim(self) -> int:
        return self.weight.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * self.weight + self.bias


class PositionEmbedding(nn.Module):
    """Adds a learned embedding per token position."""

    def __init__(self, num_tokens: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_tokens, dim) * 0.02)

    @property
    def num_tokens(self) -> int:
        return self.weight.shape[1]

    @property
    def dim(self) -> int:
        return self.weight.shape[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


class TokenMean(nn.Module):
    """(B, N, D) -> (B, D): the mean over tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class TokenEmbedding(nn.Embedding):
    """Token ids -> (B, N, D) vectors. Ids arrive as floats (every trimnet dataset, runtime and
    server carries float32 inputs; ids below 2**24 are exact) and are rounded; ids outside the
    vocabulary are clamped to its last entry rather than raising inside a runtime."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = (x.round() if x.is_floating_point() else x).long().clamp(0, self.num_embeddings - 1)
        return super().forward(ids)
