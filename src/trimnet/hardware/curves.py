"""Curves fitted to calibration points: achieved FLOP/s or bytes/s as a function of an operation's size.

A matrix product or convolution is a GEMM of ``m`` output positions x ``k`` reduction length x
``n`` output channels. Its time is modelled as

    t = t0 + max(flops / (peak * e(m) e(k) e(n)),  bytes / bandwidth(bytes)),   e(v) = v / (v + half_v)

a fixed cost per call plus a roofline whose compute side loses efficiency on thin dimensions
(short reductions, few channels, one sample). ``t0``, ``peak`` and the three halves are fitted
per backend and dtype by a grid search on log-time error.

Every other kind of layer (ReLU, batch norm, pooling, residual add, GELU, layer norm,
depthwise convolution, attention) is a *pass*: ``t = t0 + amount / rate(amount)``, where the
amount is the bytes it moves (FLOPs for attention) and the rate is interpolated between the
measured sizes, because caches make small passes faster per byte than large ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


def saturation(v: float, half: float) -> float:
    return v / (v + half) if v > 0 else 0.0


@dataclass(frozen=True)
class Rate:
    """Amount per second as a function of the amount: piecewise linear in log-log between measured points."""

    sizes: tuple[float, ...]  # increasing
    rates: tuple[float, ...]

    def __call__(self, amount: float) -> float:
        if not self.sizes:
            raise ValueError("empty rate curve")
        if amount <= self.sizes[0]:
            return self.rates[0]
        if amount >= self.sizes[-1]:
            return self.rates[-1]
        return float(np.exp(np.interp(np.log(amount), np.log(self.sizes), np.log(self.rates))))

    @property
    def largest(self) -> float:
        """The rate at the largest size measured (for bytes: main memory rather than a cache)."""
        return self.rates[-1]

    def to_dict(self) -> dict:
        return {"sizes": list(self.sizes), "rates": list(self.rates)}

    @classmethod
    def from_dict(cls, d: dict) -> "Rate":
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
class PassCurve:
    """``time = t0 + amount / rate(amount)``; ``unit`` says what the amount is (bytes or flops)."""

    t0: float
    rate: Rate
    unit: str = "bytes"

    def time(self, amount: float) -> float:
        return self.t0 + (amount / self.rate(amount) if amount > 0 else 0.0)

    def to_dict(self) -> dict:
        return {"t0": self.t0, "rate": self.rate.to_dict(), "unit": self.unit}

    @classmethod
    def from_dict(cls, d: dict) -> "PassCurve":
        return cls(float(d["t0"]), Rate.from_dict(d["rate"]), d.get("unit", "bytes"))


# ---------------------------------------------------------------- fitting

_HALVES_M = np.geomspace(0.25, 512, 12)
_HALVES_K = np.geomspace(1, 1024, 12)
_HALVES_N = np.geomspace(1, 1024, 12)


def fit_pass(amounts: Sequence[float], seconds: Sequence[float], unit: str = "bytes") -> PassCurve:
    """``t0`` by relative least squares of ``t = t0 + c * amount``; then a rate per measured size."""
    order = np.argsort(amounts)
    a = np.asarray(amounts, dtype=float)[order]
    t = np.asarray(seconds, dtype=float)[order]
    if len(a) == 1:
        t0 = 0.5 * float(t[0])
    else:
        w = 1.0 / t
        design = np.stack([w, a * w], axis=1)
        (t0, _), *_ = np.linalg.lstsq(design, t * w, rcond=None)
        t0 = float(min(max(t0, 0.0), 0.9 * t[0]))
    rates = a / np.maximum(t - t0, 0.05 * t)
    return PassCurve(t0, Rate(tuple(a.tolist()), tuple(rates.tolist())), unit)


def fit_compute(shapes: Sequence[tuple[float, float, float]], flops: Sequence[float], nbytes: Sequence[float],
                seconds: Sequence[float], bandwidth: Rate) -> ComputeCurve:
    """Grid search of (half_m, half_k, half_n); for each, t0 and 1/peak by least squares on relative error."""
    m, k, n = (np.asarray(v, dtype=float) for v in zip(*shapes))
    f = np.asarray(flops, dtype=float)
    t = np.asarray(seconds, dtype=float)
    mem = np.asarray([nb / bandwidth(nb) if nb else 0.0 for nb in nbytes])
    em = m[None, :] / (m[None, :] + _HALVES_M[:, None])  # (halves, points)
    ek = k[None, :] / (k[None, :] + _HALVES_K[:, None])
    en = n[None, :] / (n[None, :] + _HALVES_N[:, None])
    eff = em[:, None, None, :] * ek[None, :, None, :] * en[None, None, :, :]  # (M, K, N, points)
    x = f / eff  # seconds x peak
    # relative least squares of t = t0 + x / P (rows weighted by 1/t), solved in closed form per grid cell
    w = 1.0 / t
    a1, a2, y = w, x * w, t * w
    s11, s12, s22 = (a1 * a1).sum(), (a1 * a2).sum(-1), (a2 * a2).sum(-1)
    r1, r2 = (a1 * y).sum(), (a2 * y).sum(-1)
    det = s11 * s22 - s12 * s12
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = np.where(det > 0, (r1 * s22 - s12 * r2) / det, 0.0)
        inv_p = np.where(det > 0, (s11 * r2 - s12 * r1) / det, 0.0)
    # where that solution is infeasible, fall back to t0 = half the fastest point
    bad = (t0 < 0) | (inv_p <= 0) | ~np.isfinite(t0) | ~np.isfinite(inv_p)
    t0 = np.where(bad, 0.5 * t.min(), np.minimum(t0, t.min()))
    inv_p = np.where(bad, np.maximum(((t - t0[..., None]) * x).sum(-1) / (x * x).sum(-1), 1e-18), inv_p)
    pred = t0[..., None] + np.maximum(x * inv_p[..., None], mem)
    err = np.abs(np.log(pred / t)).mean(-1)
    i, j, l = np.unravel_index(np.nanargmin(err), err.shape)
    return ComputeCurve(t0=float(t0[i, j, l]), peak=float(1.0 / inv_p[i, j, l]), half_m=float(_HALVES_M[i]),
                        half_k=float(_HALVES_K[j]), half_n=float(_HALVES_N[l]),
                        error=float(np.median(np.abs(np.log(pred[i, j, l] / t)))), points=int(len(t)))
