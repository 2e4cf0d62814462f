"""Efficiency curves fitted to calibration points: the achieved FLOP/s of a kernel as a function of its shape.

A matrix product or convolution is a GEMM of ``m`` output positions x ``k`` reduction length x
``n`` output channels. Its time is modelled as

    t = t0 + max(flops / (peak * e(m) e(k) e(n)),  bytes / bandwidth(bytes)),   e(v) = v / (v + half_v)

a fixed cost per call plus a roofline whose compute side loses efficiency on thin dimensions
(short reductions, few channels, one sample). ``t0``, ``peak`` and the three halves are fitted
per backend and dtype by a grid search on log-time error. An elementwise pass is
``t0 + max(bytes / bandwidth(bytes), flops / vector_rate)``, where the bandwidth depends on the
bytes moved (caches are faster than DRAM), interpolated between the measured sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


def saturation(v: float, half: float) -> float:
    return v / (v + half) if v > 0 else 0.0


@dataclass(frozen=True)
class Bandwidth:
    """Achieved bytes/s as a function of bytes moved: piecewise linear in log-log between points."""

    sizes: tuple[float, ...]  # bytes moved (read + write), increasing
    rates: tuple[float, ...]  # bytes/s

    def __call__(self, nbytes: float) -> float:
        if not self.sizes:
            raise ValueError("empty bandwidth curve")
        if nbytes <= self.sizes[0]:
            return self.rates[0]
        if nbytes >= self.sizes[-1]:
            return self.rates[-1]
        return float(np.exp(np.interp(np.log(nbytes), np.log(self.sizes), np.log(self.rates))))

    @property
    def dram(self) -> float:
        """The rate at the largest size measured: main memory rather than a cache."""
        return self.rates[-1]

    def to_dict(self) -> dict:
        return {"sizes": list(self.sizes), "rates": list(self.rates)}

    @classmethod
    def from_dict(cls, d: dict) -> "Bandwidth":
        return cls(tuple(float(v) for v in d["sizes"]), tuple(float(v) for v in d["rates"]))


@dataclass(frozen=True)
class ComputeCurve:
    """A fitted matmul or convolution kernel; ``error`` is the fit's median |log ratio| on its points."""

    t0: float
    peak: float
    half_m: float
    half_k: float
    half_n: float
    error: float = 0.0
    points: int = 0

    def efficiency(self, m: float, k: float, n: float) -> float:
        return saturation(m, self.half_m) * saturation(k, self.half_k) * saturation(n, self.half_n)

    def rate(self, m: float, k: float, n: float) -> float:
        """Achieved FLOP/s for a GEMM of this shape (before the memory bound)."""
        return self.peak * max(self.efficiency(m, k, n), 1e-9)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ComputeCurve":
        return cls(**{k: d[k] for k in ("t0", "peak", "half_m", "half_k", "half_n", "error", "points") if k in d})


@dataclass(frozen=True)
class ElementwiseCurve:
    t0: float
    bandwidth: Bandwidth
    vector_rate: float  # FLOP/s of transcendental-heavy elementwise work (GELU)

    def to_dict(self) -> dict:
        return {"t0": self.t0, "bandwidth": self.bandwidth.to_dict(), "vector_rate": self.vector_rate}

    @classmethod
    def from_dict(cls, d: dict) -> "ElementwiseCurve":
        return cls(float(d["t0"]), Bandwidth.from_dict(d["bandwidth"]), float(d["vector_rate"]))


# ---------------------------------------------------------------- fitting

_HALVES_M = np.geomspace(0.25, 512, 12)
_HALVES_K = np.geomspace(1, 1024, 12)
_HALVES_N = np.geomspace(1, 1024, 12)


def fit_elementwise(sizes: Sequence[float], seconds: Sequence[float], gelu: tuple[float, float, float] | None
                    ) -> ElementwiseCurve:
    """From elementwise passes (bytes moved, seconds) and one GELU (flops, bytes, seconds)."""
    order = np.argsort(sizes)
    b = np.asarray(sizes, dtype=float)[order]
    t = np.asarray(seconds, dtype=float)[order]
    t0 = float(t[0]) * 0.9  # the smallest pass moves a few KB: its time is the fixed cost
    rates = b / np.maximum(t - t0, t * 0.05)
    rates = np.maximum.accumulate(rates[::-1])[::-1] if len(rates) > 1 else rates  # caches never slower than DRAM
    curve = Bandwidth(tuple(b.tolist()), tuple(rates.tolist()))
    vector_rate = 1e12
    if gelu is not None:
        flops, nbytes, seconds_g = gelu
        vector_rate = flops / max(seconds_g - t0, seconds_g * 0.05)
    return ElementwiseCurve(t0, curve, float(vector_rate))


def fit_compute(shapes: Sequence[tuple[float, float, float]], flops: Sequence[float], nbytes: Sequence[float],
                seconds: Sequence[float], bandwidth: Bandwidth) -> ComputeCurve:
    """Grid search of (half_m, half_k, half_n); for each, t0 and 1/peak by least squares on relative error."""
    m, k, n = (np.asarray(v, dtype=float) for v in zip(*shapes))
    f = np.asarray(flops, dtype=float)
    t = np.asarray(seconds, dtype=float)
    mem = np.asarray([nb / bandwidth(nb) for nb in nbytes])
    em = m[None, :] / (m[None, :] + _HALVES_M[:, None])  # (halves, points)
    ek = k[None, :] / (k[None, :] + _HALVES_K[:, None])
    en = n[None, :] / (n[None, :] + _HALVES_N[:, None])
    eff = em[:, None, None, :] * ek[None, :, None, :] * en[None, None, :, :]  # (M, K, N, points)
    x = f / eff  # seconds x peak
    best = None
    # relative least squares of t = t0 + x / P: weights 1/t
    w = 1.0 / t
    a1, a2, y = w, x * w, t * w  # rows: [a1, a2] . [t0, 1/P] = y
    s11, s12, s22 = (a1 * a1).sum(), (a1 * a2).sum(-1), (a2 * a2).sum(-1)
    r1, r2 = (a1 * y).sum(), (a2 * y).sum(-1)
    det = s11 * s22 - s12 * s12
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = np.where(det > 0, (r1 * s22 - s12 * r2) / det, 0.0)
        inv_p = np.where(det > 0, (s11 * r2 - s12 * r1) / det, 0.0)
    # where the unconstrained solution is infeasible, fall back to t0 = a fraction of the fastest point
    bad = (t0 < 0) | (inv_p <= 0) | ~np.isfinite(t0) | ~np.isfinite(inv_p)
    t0 = np.where(bad, 0.5 * t.min(), np.minimum(t0, t.min()))
    inv_p = np.where(bad, np.maximum(((t - t0[..., None]) * x).sum(-1) / (x * x).sum(-1), 1e-18), inv_p)
    pred = t0[..., None] + np.maximum(x * inv_p[..., None], mem)
    err = np.abs(np.log(pred / t)).mean(-1)
    i, j, l = np.unravel_index(np.nanargmin(err), err.shape)
    best_pred = pred[i, j, l]
    best = ComputeCurve(t0=float(t0[i, j, l]), peak=float(1.0 / inv_p[i, j, l]), half_m=float(_HALVES_M[i]),
                        half_k=float(_HALVES_K[j]), half_n=float(_HALVES_N[l]),
                        error=float(np.median(np.abs(np.log(best_pred / t)))), points=int(len(t)))
    return best
