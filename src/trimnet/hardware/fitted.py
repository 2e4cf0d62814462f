"""Catalog-device estimates from efficiency curves fitted to published measurements.

Each layer of a profile is a GEMM of ``m`` output positions x ``k`` reduction x ``n`` channels
(or a vector pass). On a device ``d`` at precision ``p`` under runtime ``r``:

    matrix layer   compute = flops / (peak[d,p] * E[chip,p] * F[role,p] * m/(m+Hm) * k/(k+Hk) * n/(n+Hn)),
                   Hm = hm * (peak[d,p] / 100 TFLOP/s) ** a     (a bigger chip needs more rows to fill)
                   F = conv_p (implicit-GEMM convolution), attn_p (fused attention), else 1
    vector layer   compute = flops / (peak[d,fp32] * vector)
    memory         weights / (bandwidth * mu) + activations / (bandwidth * mu * (l2x if they fit in L2 else 1))
    layer time     max(compute, memory) + layer_s[r]       (0 for the roles r fuses away)
    call time      call_s[r] + sum of layer times

``E`` per chip and precision, the shape constants (hm, a, hk, hn, conv_p, attn_p), vector, mu and l2x per device
kind, and each runtime's call_s and layer_s are fitted by least squares on log time to the
training part of ``benchmarks/published/`` (``fit``); ``benchmarks/hardware_fidelity.py``
writes the result to ``fitted.json`` next to this file with the error measured on the
held-out part. Training steps cost three forward passes at ``backward_efficiency`` x E, an
optimizer pass over the weights, and an all-reduce of the gradients over the interconnect
``2 (G-1)/G x gradient bytes / link``, of which ``1 - overlap`` is not hidden behind the
backward pass, once per ``accumulation`` micro-batches.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from trimnet.hardware.catalog import BYTES_PER_ELEMENT, Device
from trimnet.hardware.roofline import MATRIX_ROLES, layer_work, role_of
from trimnet.hardware.runtimes import get_runtime

FITTED_PATH = Path(__file__).with_name("fitted.json")
KIND_VERSION = "trimnet.hardware.fitted"
SHAPE_DEFAULTS = {"hm": 64.0, "a": 0.5, "hk": 64.0, "hn": 64.0, "vector": 0.3, "mu": 0.8, "l2x": 3.0}
TRAINING_DEFAULTS = {"backward_efficiency": 0.8, "overlap": 0.5}
OPTIMIZER_BYTES_PER_PARAM = 16.0  # fp32 master weight, gradient and two moments read and written once a step
HEAD_DIM = 64  # attention head width (BERT, ViT): the score matrix has width / 64 heads
SCORE_PASSES = 4  # an unfused attention writes QK^T, reads and writes softmax, reads it for AV
TOKEN_ROLES = ("matmul", "layernorm", "activation", "simple_activation", "add", "elementwise", "norm")


@dataclass
class Works:
    """One profile at a batch and precision as arrays (one entry per layer)."""

    roles: np.ndarray  # str
    matrix: np.ndarray  # bool
    flops: np.ndarray
    wbytes: np.ndarray
    abytes: np.ndarray
    m: np.ndarray
    k: np.ndarray
    n: np.ndarray
    calls: np.ndarray
    params: float  # parameters of the model (optimizer and gradient traffic)
    score_bytes: np.ndarray | None = None  # attention layers: the (heads x seq x seq) scores an unfused kernel moves
    input_bytes: float = 0.0  # the batch's input tensors (what a served request carries)
    names: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)


def build_works(profile, batch: int, precision: str, fill: float = 1.0) -> Works:
    """``profile`` at ``batch`` and ``precision``; ``fill`` < 1 packs sequences: only that share of tokens is real."""
    from trimnet.hardware.estimate import profile_dtype

    scale = batch / max(profile.batch, 1)
    byte_scale = BYTES_PER_ELEMENT[precision] / BYTES_PER_ELEMENT[profile_dtype(profile)]
    rows = []
    for layer in profile.layers:
        role = role_of(layer)
        w = layer_work(layer, scale, byte_scale)
        flops, abytes, m, k = w.flops, layer.activation_bytes * scale * byte_scale, w.m, w.k
        if fill != 1.0 and role in TOKEN_ROLES + ("attention",):
            m, flops, abytes = m * fill, flops * fill, abytes * fill
            if role == "attention":  # each packed sequence attends only to itself: the score matrix shrinks twice
                k, flops = k * fill, flops * fill
        # scores: rows x seq per head, head width HEAD_DIM (k = 2 x seq for QK^T plus AV)
        score = m * (k / 2) * (w.n / HEAD_DIM) * BYTES_PER_ELEMENT[precision] if role == "attention" else 0.0
        rows.append((role, flops, layer.weight_bytes * byte_scale, abytes, m, k, w.n, w.calls, score,
                     layer.name, layer.type))
    if not rows:
        rows.append(("free", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1, 0.0, "", ""))
    roles = np.array([r[0] for r in rows])
    arr = [np.array([r[i] for r in rows], dtype=float) for i in range(1, 8)]
    return Works(roles, np.isin(roles, MATRIX_ROLES), *arr, params=float(profile.params),
                 score_bytes=np.array([r[8] for r in rows], dtype=float),
                 input_bytes=float(profile.input_bytes * scale * fill),
                 names=[r[9] for r in rows], types=[r[10] for r in rows])


@dataclass
class Params:
    efficiency: dict[str, float] = field(default_factory=dict)  # "chip/precision" -> E
    shape: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> constants
    runtimes: dict[str, dict[str, float]] = field(default_factory=dict)  # "runtime/kind" -> call_s, layer_s
    training: dict[str, float] = field(default_factory=dict)
    datasets: dict[str, dict[str, float]] = field(default_factory=dict)  # "mlperf-squad" -> {"fill": share}
    errors: dict[str, Any] = field(default_factory=dict)  # held-out error per device family and kind
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": KIND_VERSION, "efficiency": self.efficiency, "shape": self.shape, "runtimes": self.runtimes,
                "training": self.training, "datasets": self.datasets, "errors": self.errors, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "Params":
        return cls(dict(d.get("efficiency", {})), dict(d.get("shape", {})), dict(d.get("runtimes", {})),
                   dict(d.get("training", {})), dict(d.get("datasets", {})), dict(d.get("errors", {})),
                   dict(d.get("meta", {})))

    # ------------------------------------------------------------ lookups with fallbacks

    def shape_of(self, kind: str, family: str = "") -> dict[str, float]:
        """The shape constants of a device kind, with what was fitted for its chip on top."""
        return {**SHAPE_DEFAULTS, **self.shape.get("gpu", {}), **self.shape.get(kind, {}), **self.shape.get(family, {})}

    def runtime_of(self, runtime: str, kind: str) -> tuple[float, float, bool]:
        """(call_s, layer_s, fitted?) of ``runtime`` on a device of ``kind``."""
        rt = get_runtime(runtime)
        got = self.runtimes.get(f"{rt.name}/{kind}")
        if got:
            return got["call_s"], got["layer_s"], True
        if rt.name == "triton" and f"tensorrt/{kind}" in self.runtimes:
            return rt.call_s, self.runtimes[f"tensorrt/{kind}"]["layer_s"], False
        return rt.call_s, rt.layer_s, False

    def efficiency_of(self, dev: Device, precision: str) -> tuple[float, str]:
        """E and where it came from: fitted for this chip and precision, or the nearest fitted figure."""
        key = f"{dev.family}/{precision}"
        if key in self.efficiency:
            return self.efficiency[key], "fitted"
        same_chip = {k.split("/")[1]: v for k, v in self.efficiency.items() if k.split("/")[0] == dev.family}
        peak = dev.peak_flops.get(precision)
        for other, e in same_chip.items():  # a precision with the same peak on the same chip (fp8 ~ int8)
            if peak and math.isclose(dev.peak_flops.get(other, 0.0), peak, rel_tol=0.01):
                return e, f"from {dev.family}/{other} (same peak)"
        kind = self.meta.get("kinds", {})
        same_prec = [v for k, v in self.efficiency.items() if k.endswith("/" + precision) and kind.get(k.split("/")[0]) == dev.kind]
        if same_prec:
            return float(np.exp(np.mean(np.log(same_prec)))), f"mean of fitted {precision} chips"
        same_kind = [v for k, v in self.efficiency.items() if kind.get(k.split("/")[0]) == dev.kind]
        if same_kind:
            return float(np.exp(np.mean(np.log(same_kind)))), f"mean of fitted {dev.kind} chips"
        return 0.5, "assumed (nothing fitted)"

    def fill_of(self, dataset: str | None) -> float:
        return float(self.datasets.get(dataset, {}).get("fill", 1.0)) if dataset else 1.0

    def error_for(self, dev: Device, training: bool = False) -> dict[str, Any] | None:
        if training:
            return self.errors.get("training")
        return self.errors.get(dev.family) or self.errors.get(dev.kind)


@lru_cache(maxsize=1)
def _load(path: str, mtime: float) -> Params | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return Params.from_dict(data) if data.get("kind") == KIND_VERSION else None


def load_params(path: str | Path | None = None) -> Params | None:
    """The shipped fit (``fitted.json``), or None when there is none."""
    p = Path(path) if path else FITTED_PATH
    if not p.is_file():
        return None
    return _load(str(p), p.stat().st_mtime)


@dataclass
class Timing:
    seconds: float
    compute: np.ndarray
    memory: np.ndarray
    overhead: np.ndarray
    fused: np.ndarray
    call_s: float
    extra: dict[str, float]  # training: optimizer and all-reduce seconds
    assumptions: dict[str, Any]


def seconds(works: Works, dev: Device, precision: str, runtime: str, params: Params, *, training: bool = False,
            gpus: int = 1, accumulation: int = 1) -> Timing:
    """Seconds per batch on one device (per micro-batch step when ``training``)."""
    rt = get_runtime(runtime)
    peak = dev.peak(precision)
    vector_peak = dev.peak_flops.get("fp32", peak)
    s = params.shape_of(dev.kind, dev.family)
    e, e_from = params.efficiency_of(dev, precision)
    call_s, layer_s, rt_fitted = params.runtime_of(rt.name, dev.kind)
    if training:
        e = e * params.training.get("backward_efficiency", TRAINING_DEFAULTS["backward_efficiency"])
    hm = s["hm"] * (peak / 1e14) ** s["a"]
    # an implicit-GEMM convolution kernel at this precision runs at conv_<precision> x the dense GEMM's E
    # ... and a fused attention kernel (two GEMMs around a softmax, reducing over 64-wide heads) at attn_<precision>
    conv = np.where(works.roles == "conv", s.get(f"conv_{precision}", 1.0),
                    np.where(works.roles == "attention", s.get(f"attn_{precision}", 1.0), 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.minimum(e * conv * works.m / (works.m + hm) * works.k / (works.k + s["hk"])
                         * works.n / (works.n + s["hn"]), 1.0)
        compute = np.where(works.matrix, works.flops / (peak * np.maximum(eff, 1e-9)),
                           works.flops / (vector_peak * s["vector"]))
    compute = np.nan_to_num(compute)
    bw = dev.bandwidth * s["mu"]
    per_call = works.abytes / np.maximum(works.calls, 1)
    l2 = dev.l2_bytes or 0.0
    act_bw = np.where(per_call <= l2, bw * s["l2x"], bw)
    memory = works.wbytes / bw + works.abytes / act_bw
    if not training and not rt.fused_attention and works.score_bytes is not None:
        memory = memory + SCORE_PASSES * works.score_bytes / bw
    fuses = frozenset({"free"}) if training else rt.fuses
    fused = np.isin(works.roles, list(fuses)) & ~works.matrix
    free = works.roles == "free"
    overhead = np.where(free, 0.0, layer_s * works.calls)
    if training:
        compute, memory, overhead = 3 * compute, 3 * memory, 3 * overhead
    layer_t = np.where(fused | free, 0.0, np.maximum(compute, memory) + overhead)
    total = call_s + float(layer_t.sum())
    extra: dict[str, float] = {}
    transfer = params.runtimes.get(f"{rt.name}/{dev.kind}", {}).get("request_gbs")
    if transfer:  # a served request carries its inputs to the server
        extra["request_transfer_s"] = works.input_bytes / (transfer * 1e9)
    if training:
        extra["optimizer_s"] = works.params * OPTIMIZER_BYTES_PER_PARAM / bw / accumulation
        if gpus > 1:
            grad_bytes = works.params * (2 if BYTES_PER_ELEMENT[precision] <= 2 else 4)
            link = dev.interconnect or dev.bandwidth / 20
            overlap = params.training.get("overlap", TRAINING_DEFAULTS["overlap"])
            extra["allreduce_s"] = (1 - overlap) * 2 * (gpus - 1) / gpus * grad_bytes / link / accumulation
    total += sum(extra.values())
    assumptions = {"efficiency": e, "efficiency_from": e_from, "half_m": hm, "half_k": s["hk"], "half_n": s["hn"],
                   "conv_factor": s.get(f"conv_{precision}", 1.0), "attention_factor": s.get(f"attn_{precision}", 1.0),
                   "vector_share": s["vector"], "memory_share": s["mu"], "l2_speedup": s["l2x"],
                   "l2_bytes": dev.l2_bytes, "runtime": rt.name, "runtime_about": rt.about,
                   "call_overhead_s": call_s, "overhead_per_layer_s": layer_s,
                   "runtime_overheads": "fitted to published figures" if rt_fitted else "assumed (no published figures)"}
    assumptions.update(extra)
    return Timing(total, compute, memory, overhead, fused | free, call_s, extra, assumptions)


# ---------------------------------------------------------------- fitting


def _paths(figs: Iterable, catalog: dict[str, Device]) -> list[tuple]:
    """The free parameters the training figures can pin down: (section, key, name, low, high, start)."""
    out = []
    eff = sorted({f"{catalog[f.device].family}/{f.precision}" for f in figs})
    out += [("efficiency", k, None, 0.02, 1.0, 0.5) for k in eff]
    kinds = sorted({catalog[f.device].kind for f in figs})
    for name, lo, hi in (("hm", 1.0, 4096.0), ("a", 1e-3, 0.3), ("hk", 1.0, 2048.0), ("hn", 1.0, 2048.0),
                         ("vector", 0.02, 1.0), ("mu", 0.2, 1.0), ("l2x", 1.0, 10.0)):
        out.append(("shape", "gpu", name, lo, hi, SHAPE_DEFAULTS[name]))
    if "cpu" in kinds:
        out.append(("shape", "cpu", "mu", 0.2, 1.0, 0.7))
    # convolutions run as implicit GEMMs, whose kernels differ per precision from the dense GEMMs (BERT) E rests on
    conv_precisions = {f.precision for f in figs if f.model == "resnet50" and catalog[f.device].kind == "gpu"}
    dense_precisions = {f.precision for f in figs if f.model != "resnet50" and catalog[f.device].kind == "gpu"}
    for prec in sorted(conv_precisions & dense_precisions):  # only where the two can be told apart
        out.append(("shape", "gpu", f"conv_{prec}", 0.3, 3.0, 1.0))
    attn_chips: dict[str, set] = {}
    for f in figs:
        if f.model != "resnet50" and catalog[f.device].kind == "gpu":
            attn_chips.setdefault(f.precision, set()).add(catalog[f.device].family)
    for prec in sorted(p for p, chips in attn_chips.items() if len(chips) >= 2):  # else E alone absorbs it
        out.append(("shape", "gpu", f"attn_{prec}", 0.1, 3.0, 1.0))
    counts: dict[str, int] = {}
    for f in figs:
        counts[catalog[f.device].family] = counts.get(catalog[f.device].family, 0) + 1
    for fam in sorted(k for k, c in counts.items() if c >= 10):  # chips with enough figures get their own fill curve
        out.append(("shape", fam, "hm", 1.0, 4096.0, SHAPE_DEFAULTS["hm"]))
    for rk in sorted({(f.runtime, catalog[f.device].kind) for f in figs}):
        rt = get_runtime(rk[0])
        out.append(("runtimes", f"{rt.name}/{rk[1]}", "call_s", 1e-6, 5e-2, rt.call_s))
        if rt.name != "triton":  # a Triton engine's layers cost what TensorRT's do
            out.append(("runtimes", f"{rt.name}/{rk[1]}", "layer_s", 1e-7, 2e-4, rt.layer_s))
        else:  # ... but its requests carry the inputs over the network
            out.append(("runtimes", f"{rt.name}/{rk[1]}", "request_gbs", 0.05, 100.0, 2.0))
    if any(f.mode == "training" for f in figs):
        out.append(("training", None, "backward_efficiency", 0.2, 1.3, TRAINING_DEFAULTS["backward_efficiency"]))
        if any(f.gpus > 1 for f in figs):
            out.append(("training", None, "overlap", 1e-3, 0.99, TRAINING_DEFAULTS["overlap"]))
    for ds in sorted({f.dataset for f in figs if f.dataset}):
        out.append(("datasets", ds, "fill", 0.1, 1.0, 0.7))
    return out


def _apply(paths: list[tuple], x: np.ndarray, base: Params) -> Params:
    p = Params(dict(base.efficiency), {k: dict(v) for k, v in base.shape.items()},
               {k: dict(v) for k, v in base.runtimes.items()}, dict(base.training),
               {k: dict(v) for k, v in base.datasets.items()}, dict(base.errors), dict(base.meta))
    for (section, key, name, *_), v in zip(paths, x):
        v = float(v)
        if section == "efficiency":
            p.efficiency[key] = v
        elif section == "training":
            p.training[name] = v
        else:
            getattr(p, section).setdefault(key, {})[name] = v
    for key, rt in p.runtimes.items():  # triton has no layer_s of its own
        if key.startswith("triton/") and "layer_s" not in rt:
            rt["layer_s"] = p.runtimes.get("tensorrt/" + key.split("/")[1], {}).get("layer_s", 3e-6)
    return p


def figure_works(fig, precision_bytes_cache: dict, fill: float = 1.0, batch: int | None = None) -> Works:
    from trimnet.hardware.published import workload

    batch = batch or fig.model_batch
    key = (fig.model, fig.seq, batch, fig.precision, round(fill, 4))
    if key not in precision_bytes_cache:
        precision_bytes_cache[key] = build_works(workload(fig.model, fig.seq), batch, fig.precision, fill)
    return precision_bytes_cache[key]


OFFLINE_LADDER = (16, 64, 256, 1024)  # an Offline harness is tuned to its best batch; these bracket the usual ones


def predict(fig, catalog: dict[str, Device], params: Params, cache: dict | None = None) -> float:
    """Predicted seconds per batch per device for a published figure (comparable to ``fig.seconds_per_batch``).

    A figure whose batch the source does not state (MLPerf Offline) is predicted at the batch of
    ``OFFLINE_LADDER`` with the most throughput, as its harness was tuned, and converted to
    seconds per ``fig.model_batch`` samples; ``recommend`` chooses over its batch ladder the same way.
    """
    cache = {} if cache is None else cache
    dev = catalog[fig.device]
    fill = params.fill_of(fig.dataset)
    training = fig.mode == "training"
    if fig.batch is not None or training:
        works = figure_works(fig, cache, fill)
        return seconds(works, dev, fig.precision, fig.runtime, params, training=training,
                       gpus=fig.gpus, accumulation=fig.accumulation).seconds
    best = min(seconds(figure_works(fig, cache, fill, b), dev, fig.precision, fig.runtime, params).seconds / b
               for b in OFFLINE_LADDER)
    return best * fig.model_batch


def fit(figs: list, catalog: dict[str, Device]) -> Params:
    """Least squares on log(predicted / measured) over ``figs`` (a soft-L1 loss, so one odd figure cannot pull all)."""
    try:
        from scipy.optimize import least_squares
    except ImportError:
        from trimnet.errors import ConfigError

        raise ConfigError("refitting the hardware model needs scipy: pip install 'trimnet[fit]'") from None

    paths = _paths(figs, catalog)
    base = Params(meta={"kinds": {d.family: d.kind for d in catalog.values()}})
    cache: dict = {}
    lo = np.log([p[3] for p in paths])
    hi = np.log([p[4] for p in paths])
    x0 = np.clip(np.log([p[5] for p in paths]), lo + 1e-9, hi - 1e-9)
    measured = np.log([f.seconds_per_batch for f in figs])

    def residuals(x):
        params = _apply(paths, np.exp(x), base)
        return np.log([predict(f, catalog, params, cache) for f in figs]) - measured

    # the loss has local minima: start from the defaults and from larger and smaller fill constants
    # (hm, l2x), and keep the lowest cost on these figures (nothing held out is looked at)
    results = []
    for hm_scale, l2_scale in ((1.0, 1.0), (4.0, 3.0), (0.25, 1.0)):
        start = x0.copy()
        for i, path in enumerate(paths):
            if path[0] == "shape" and path[2] == "hm":
                start[i] += np.log(hm_scale)
            if path[0] == "shape" and path[2] == "l2x":
                start[i] += np.log(l2_scale)
        start = np.clip(start, lo + 1e-9, hi - 1e-9)
        results.append(least_squares(residuals, start, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, diff_step=1e-3,
                                     max_nfev=400))
    result = min(results, key=lambda r: r.cost)
    params = _apply(paths, np.exp(result.x), base)
    params.meta.update({"figures_fitted": len(figs), "parameters": len(paths), "cost": float(result.cost),
                        "starts": [float(r.cost) for r in results]})
    return params


def error_summary(ratios: list[float]) -> dict[str, Any]:
    """Shares within +-20 % and 2x, median and 90th-percentile |error| of predicted/measured ratios."""
    r = np.asarray(ratios, dtype=float)
    if r.size == 0:
        return {"figures": 0}
    rel = np.abs(r - 1)
    return {"figures": int(r.size), "within_20": float(np.mean(rel <= 0.2)),
            "within_2x": float(np.mean((r >= 0.5) & (r <= 2.0))), "median_abs_error": float(np.median(rel)),
            "p90_abs_log": float(np.quantile(np.abs(np.log(r)), 0.9)),
            "band": float(np.exp(np.quantile(np.abs(np.log(r)), 0.9)) - 1)}
