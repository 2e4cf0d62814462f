"""Transformer encoders: a small classifier for images or tabular data, and BERT-base's
encoder for profiling.

``transformer`` is pre-norm (ViT style): each block is ``x + attn(ln(x))`` then
``x + mlp(ln(x))``, with a final layer norm, a mean over tokens and a linear head.
``bert_base_encoder`` is post-norm like BERT: ``ln(x + attn(x))`` then ``ln(x + mlp(x))``.
"""

from __future__ import annotations

from trimnet.errors import ModelError
from trimnet.models.registry import register_model


def _mlp(dim: int, hidden: int) -> list:
    return [{"type": "linear", "in_features": dim, "out_features": hidden}, {"type": "gelu"},
            {"type": "linear", "in_features": hidden, "out_features": dim}]


def _attention(dim: int, heads: int) -> dict:
    return {"type": "self_attention", "dim": dim, "num_heads": heads}


def _layernorm(dim: int, eps: float = 1e-5) -> dict:
    return {"type": "layernorm", "normalized_shape": [dim], "eps": eps}


def pre_norm_block(dim: int, heads: int, hidden: int) -> dict:
    return {"type": "sequential", "layers": [
        {"type": "residual", "body": [_layernorm(dim), _attention(dim, heads)]},
        {"type": "residual", "body": [_layernorm(dim), *_mlp(dim, hidden)]},
    ]}


def post_norm_block(dim: int, heads: int, hidden: int, eps: float = 1e-12) -> dict:
    return {"type": "sequential", "layers": [
        {"type": "residual", "body": [_attention(dim, heads)]}, _layernorm(dim, eps),
        {"type": "residual", "body": _mlp(dim, hidden)}, _layernorm(dim, eps),
    ]}


def _check_heads(model: str, dim: int, heads: int) -> None:
    if heads < 1 or dim % heads:
        raise ModelError(f"{model}: dim {dim} must be a multiple of heads {heads}; pass another --model.heads")


def _tokens(in_shape: tuple, dim: int, patch: int | None) -> tuple[list, int]:
    """The embedding layers that turn an input into tokens, and how many tokens they make."""
    if len(in_shape) == 1:
        (f,) = in_shape
        return [{"type": "feature_tokens", "num_features": f, "dim": dim}], f
    if len(in_shape) != 3:
        raise ModelError(f"transformer takes images (C, H, W) or tabular rows (F,); got in_shape {in_shape}")
    c, h, w = in_shape
    # A 4x4 grid of patches by default: 16 tokens for 8x8 digits (patch 2), 28x28 and 32x32 alike.
    if patch is None:
        patch = max(1, min(h, w) // 4)
    if patch < 1 or patch > min(h, w):
        raise ModelError(f"transformer patch must be between 1 and {min(h, w)} for {h}x{w} images; got {patch}")
    embed = {"type": "conv2d", "in_channels": c, "out_channels": dim, "kernel_size": patch, "stride": patch}
    return [embed, {"type": "patch_tokens"}], (h // patch) * (w // patch)


@register_model("transformer")
def transformer(in_shape: tuple, num_classes: int, dim: int = 64, depth: int = 2, heads: int = 4,
                mlp_ratio: float = 2.0, patch: int | None = None) -> list:
    """Pre-norm encoder classifier; ``patch`` defaults to a quarter of the image side."""
    _check_heads("transformer", dim, heads)
    embed, num_tokens = _tokens(tuple(in_shape), dim, patch)
    hidden = int(dim * mlp_ratio)
    return [
        *embed,
        {"type": "position_embedding", "num_tokens": num_tokens, "dim": dim},
        *[pre_norm_block(dim, heads, hidden) for _ in range(depth)],
        _layernorm(dim),
        {"type": "token_mean"},
        {"type": "linear", "in_features": dim, "out_features": num_classes},
    ]


@register_model("bert_base_encoder")
def bert_base_encoder(in_shape: tuple, num_classes: int, depth: int = 12, heads: int = 12,
                      mlp_ratio: float = 4.0) -> list:
    """BERT-base's encoder on (tokens, dim) float embeddings (no embedding table), post-norm.

    Layer 0 holds the ``depth`` encoder blocks: 12 x 7,087,872 = 85,054,464 parameters at
    in_shape (128, 768); a token mean and a linear make the head.
    """
    if len(in_shape) != 2:
        raise ModelError(f"bert_base_encoder takes (tokens, dim) embeddings, e.g. (128, 768); got {in_shape}")
    _, dim = in_shape
    _check_heads("bert_base_encoder", dim, heads)
    hidden = int(dim * mlp_ratio)
    return [
        {"type": "sequential", "layers": [post_norm_block(dim, heads, hidden) for _ in range(depth)]},
        {"type": "token_mean"},
        {"type": "linear", "in_features": dim, "out_features": num_classes},
    ]
