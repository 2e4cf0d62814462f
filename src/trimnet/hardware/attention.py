"""What self-attention's core costs on the calibrated machine, term by term.

Besides its q/k/v/output projections (timed as matrix products), a self-attention layer
splits its (batch, tokens, dim) input into heads, computes ``softmax(q k^T / sqrt(e)) v`` per
head and merges the heads back. Its time does not follow its FLOPs alone: a ViT-style model
with many short sequences of small heads (16 tokens of 16 values) spends most of it on a
tiny matrix product per head, on the transposes that split and merge the heads (which move
every token's values) and on the softmax (which moves every score). So calibration times
the attention graph at shapes from few long heads to many short ones, and fits

    t = t0 + per_head * heads + per_flop * flops + per_token * tokens + per_score * scores

by non-negative least squares on relative error: ``heads`` is batch x heads (one small GEMM
pair each), ``flops`` the profiler's count (Q.K^T and P.V, scale and softmax), ``tokens``
batch x tokens x dim (the values each split / merge transpose moves) and ``scores`` batch x
heads x tokens^2 (the values the scale and softmax move).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from trimnet.profile.formulas import SCORE_FWD

if TYPE_CHECKING:
    from trimnet.hardware.roofline import LayerWork

TERMS = ("heads", "flops", "tokens", "scores")
# nodes an exported attention layer has beyond the calibration graph's: torch.onnx writes
# scaled_dot_product_attention's k^T as Shape, Slice x3, Concat x2, Reshape, Transpose, Reshape (where
# the calibration graph has one Transpose) and scales q and k apart (two Muls for its one)
EXPORTED_EXTRA_NODES = 9


def terms_of_shape(heads: float, tokens: float, head_dim: float) -> dict[str, float]:
    """The terms of attention over ``heads`` (batch x heads) sequences of ``tokens`` tokens of ``head_dim`` values."""
    scores = heads * tokens * tokens
    return {"heads": float(heads), "flops": 4.0 * scores * head_dim + SCORE_FWD * scores,
            "tokens": float(heads * tokens * head_dim), "scores": float(scores)}


def terms_of_work(w: "LayerWork") -> dict[str, float] | None:
    """The terms of one call of a profiled attention layer, or None when its profile does not give them.

    ``layer_work`` records an attention layer over (B, N, D) as a GEMM with m = B x N output
    rows, n = D and k = 2N (its multiply-accumulates are 2 x B x N^2 x D, head-independent);
    the rest of its FLOPs are ``SCORE_FWD`` per score, which gives the scores, and so the heads.
    """
    macs = w.m * w.k * w.n
    scores = (w.flops / max(w.calls, 1) - 2.0 * macs) / SCORE_FWD
    tokens_per_seq = w.k / 2.0
    if macs <= 0 or scores <= 0 or tokens_per_seq <= 0:
        return None
    heads = scores / tokens_per_seq ** 2
    return {"heads": heads, "flops": w.flops / max(w.calls, 1), "tokens": w.m * w.n, "scores": scores}


@dataclass(frozen=True)
class AttentionCurve:
    """``t0`` plus a non-negative cost per unit of each of ``TERMS``; ``error``: median |log ratio| of the fit."""

    t0: float
    per_heads: float
    per_flops: float
    per_tokens: float
    per_scores: float
    error: float = 0.0
    points: int = 0

    def time(self, terms: dict[str, float]) -> float:
        return self.t0 + sum(getattr(self, f"per_{k}") * terms[k] for k in TERMS)

    def split(self, terms: dict[str, float]) -> tuple[float, float]:
        """(compute, memory) seconds: the per-head and per-FLOP terms, and the transposes and softmax."""
        compute = self.per_heads * terms["heads"] + self.per_flops * terms["flops"]
        return compute, self.per_tokens * terms["tokens"] + self.per_scores * terms["scores"]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AttentionCurve":
        return cls(**{k: float(d[k]) for k in ("t0", "per_heads", "per_flops", "per_tokens", "per_scores")},
                   error=float(d.get("error", 0.0)), points=int(d.get("points", 0)))


def fit_attention(shapes: Sequence[tuple[int, int, int]], seconds: Sequence[float]) -> AttentionCurve | None:
    """Fit the curve to attention timed at (batch x heads, tokens, head dim) shapes; None with too few points."""
    if len(shapes) < len(TERMS) + 1:
        return None
    rows = np.array([[1.0, *(terms_of_shape(*s)[k] for k in TERMS)] for s in shapes])
    t = np.asarray(seconds, dtype=float)
    w = 1.0 / np.maximum(t, 1e-9)  # relative error: a 3 us point counts as much as a 3 ms one
    coef = _nnls(rows * w[:, None], t * w)
    pred = rows @ coef
    error = float(np.median(np.abs(np.log(np.maximum(pred, 1e-12) / np.maximum(t, 1e-12)))))
    return AttentionCurve(*(float(c) for c in coef), error=error, points=len(t))


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0: drop the most negative one and solve again."""
    scale = np.maximum(np.abs(a).max(axis=0), 1e-30)  # columns of like size: FLOPs run to 1e8, heads to 1e2
    a = a / scale
    keep = list(range(a.shape[1]))
    coef = np.zeros(a.shape[1])
    while keep:
        sol, *_ = np.linalg.lstsq(a[:, keep], b, rcond=None)
        if (sol >= 0).all():
            coef[keep] = sol
            break
        keep.pop(int(np.argmin(sol)))
    return coef / scale
