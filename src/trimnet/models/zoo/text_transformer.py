"""A small transformer that classifies token ids: the text model of the zoo.

Input: ``(seq_len,)`` token ids per sample (as float32, like every trimnet input), e.g. from a
``csv:`` source with ``data.text`` set or a ``text:`` source, whose tokenizer pads and truncates
to ``data.seq_len``. The blocks are the zoo transformer's pre-norm blocks (``SelfAttention``
with separate q/k/v and an FFN of two linears), so pruning removes whole heads and FFN neurons.
"""

from __future__ import annotations

from trimnet.errors import ModelError
from trimnet.models.registry import register_model
from trimnet.models.zoo.transformer import _check_heads, _layernorm, pre_norm_block

DEFAULT_VOCAB = 4096  # the same default as data.vocab_size, so the two agree unless both are set


@register_model("text_transformer")
def text_transformer(in_shape: tuple, num_classes: int, vocab_size: int = DEFAULT_VOCAB, dim: int = 128,
                     depth: int = 2, heads: int = 4, mlp_ratio: float = 4.0) -> list:
    """Token embedding + learned positions, ``depth`` pre-norm blocks, mean over tokens, linear head."""
    if len(in_shape) != 1:
        raise ModelError(f"text_transformer takes (seq_len,) token ids; got in_shape {tuple(in_shape)}; "
                         "load text with --data.text COLUMN (csv) or a text: source")
    if vocab_size < 2:
        raise ModelError(f"text_transformer: vocab_size must be >= 2; got {vocab_size}")
    _check_heads("text_transformer", dim, heads)
    (seq_len,) = in_shape
    return [
        {"type": "token_embedding", "vocab_size": vocab_size, "dim": dim, "padding_idx": 0},
        {"type": "position_embedding", "num_tokens": seq_len, "dim": dim},
        *[pre_norm_block(dim, heads, int(dim * mlp_ratio)) for _ in range(depth)],
        _layernorm(dim),
        {"type": "token_mean"},
        {"type": "linear", "in_features": dim, "out_features": num_classes},
    ]
