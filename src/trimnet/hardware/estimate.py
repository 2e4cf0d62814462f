"""``estimate(profile, device, precision, batch)``: latency, throughput, bound per layer and utilization.

On a catalog device every layer runs at ``peak x utilization`` and ``bandwidth x utilization``
(stated in the result), plus the catalog's per-layer and per-call overheads. On ``local``
(the calibrated machine) each layer runs at the achieved FLOP/s the calibration measured
for its kernel shape on the chosen backend, plus that backend's measured overheads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from trimnet.errors import ConfigError
from trimnet.hardware.accuracy import predictor_error
from trimnet.hardware.attention import EXPORTED_EXTRA_NODES, terms_of_work
from trimnet.hardware.catalog import BYTES_PER_ELEMENT, Device, check_precision, get_device, load_catalog
from trimnet.hardware.fitted import build_works, load_params, seconds
from trimnet.hardware.roofline import MATRIX_ROLES, LayerTime, LayerWork, fused, layer_work
from trimnet.hardware.runtimes import get_runtime
from trimnet.precision import Precision


@dataclass
class Estimate:
    """Predicted latency of one batch on one device, with what it assumes and how far to trust it."""

    model: str
    device: str
    device_name: str
    precision: str
    batch: int
    backend: str | None  # the runtime on ``local``; None on catalog devices (an optimized runtime is assumed)
    latency_s: float
    flops: float  # per batch
    peak_flops: float  # the figure utilization is measured against
    layers: list[LayerTime]
    call_overhead_s: float
    memory: dict[str, Any]
    assumptions: dict[str, Any]
    error: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Samples per second at this batch size."""
        return self.batch / self.latency_s if self.latency_s > 0 else math.inf

    @property
    def achieved_flops(self) -> float:
        return self.flops / self.latency_s if self.latency_s > 0 else 0.0

    @property
    def utilization(self) -> float:
        """Achieved over peak FLOP/s: the share of the device's arithmetic the model keeps busy."""
        return self.achieved_flops / self.peak_flops if self.peak_flops else 0.0

    def time_split(self) -> dict[str, float]:
        """Seconds spent where each layer's roofline is compute-bound, memory-bound, and in overheads."""
        out = {"compute": 0.0, "memory": 0.0, "overhead": self.call_overhead_s}
        for layer in self.layers:
            if layer.fused:
                continue
            out["overhead"] += layer.overhead_s
            if layer.bound in ("compute", "memory"):
                out[layer.bound] += max(layer.compute_s, layer.memory_s)
        return out

    @property
    def bound(self) -> str:
        """What most of the time goes to: compute, memory or overhead."""
        split = self.time_split()
        return max(split, key=split.get)  # type: ignore[arg-type]

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        out = {"model": self.model, "device": self.device, "device_name": self.device_name,
               "precision": self.precision, "batch": self.batch, "backend": self.backend,
               "latency_s": self.latency_s, "latency_ms": self.latency_s * 1e3, "throughput": self.throughput,
               "flops": self.flops, "achieved_flops": self.achieved_flops, "peak_flops": self.peak_flops,
               "utilization": self.utilization, "bound": self.bound, "time_split_s": self.time_split(),
               "memory": self.memory, "assumptions": self.assumptions, "error": self.error, "notes": self.notes}
        if layers:
            out["layers"] = [layer.to_dict() for layer in self.layers]
        return out


def profile_dtype(profile) -> str:
    """The precision the profile's parameters are in (the largest share), as a catalog precision name."""
    if not profile.param_bytes:
        return "fp32"
    name = max(profile.param_bytes, key=profile.param_bytes.get)
    try:
        return Precision.parse(name).value  # "float32", "bfloat16", ...
    except ValueError:  # float64, integer buffers: estimated as fp32
        return Precision.FP32.value


def parse_backend(backend: str | None, precision: str | None) -> tuple[str, str | None]:
    """``"openvino:precision=bf16"`` -> ("openvino", "bf16"); a precision given both ways must agree."""
    if precision is not None:
        precision = Precision.parse(precision).value
    if backend is None:
        return "torch", precision
    name, _, rest = backend.partition(":")
    for part in filter(None, rest.split(":")):
        key, _, value = part.partition("=")
        if key != "precision":
            continue
        value = Precision.parse(value).value  # the runtime's f32 / f16 spelling in trimnet's
        if precision is not None and precision != value:
            raise ConfigError(f"backend {backend!r} runs {value} but precision {precision!r} was asked for")
        precision = value
    return name, precision


def estimate(profile, device: str = "local", precision: str | None = None, batch: int | None = None, *,
             backend: str | None = None, catalog: Mapping[str, Device] | None = None, calibration=None,
             utilization: tuple[float, float] | None = None, error: dict | None = None,
             runtime: str = "tensorrt", effective_seq: int | None = None, model: str | None = None) -> Estimate:
    """Predict ``profile``'s latency on ``device`` (a catalog key, or "local" / "local-cuda" when calibrated).

    ``batch`` scales the profiled batch (FLOPs and activations scale, weights do not);
    ``precision`` defaults to the model's (fp32); ``backend`` (local only) is a runtime name,
    optionally with ``:precision=bf16``; ``utilization`` overrides a catalog device's
    (compute, memory) shares of peak and selects the datasheet model; ``runtime`` (catalog
    devices) is one of ``trimnet.hardware.runtimes.RUNTIMES`` (tensorrt, triton, torch-eager,
    torch-compile, onnxruntime; "optimized" and "eager" are the older names of tensorrt and
    torch-eager); ``effective_seq`` is the mean real length of packed or unpadded sequences
    when the profile's inputs are padded (batch, tokens, dim) to a longer one. ``model``:
    "fitted" (efficiency curves fitted to published measurements, the default where a fit
    ships), or "datasheet" (peak x the catalog's utilization, per-layer overhead).
    """
    from trimnet.profile import Profile

    if not isinstance(profile, Profile):
        raise ConfigError(f"estimate needs a trimnet Profile (tn.profile(model, inputs)); got {type(profile).__name__}")
    batch = profile.batch if batch is None else batch
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer; got {batch!r}")
    scale = batch / max(profile.batch, 1)
    if device in ("local", "local-cuda"):
        return _local(profile, device, precision, batch, scale, backend, calibration, error)
    if backend is not None:
        raise ConfigError(f"--backend applies to the calibrated local device; {device} assumes an optimized runtime")
    dev = get_device(device, load_catalog() if catalog is None else catalog)
    rt = get_runtime(runtime)
    fill = _fill(profile, effective_seq)
    if model not in (None, "fitted", "datasheet"):
        raise ConfigError(f"model must be 'fitted' or 'datasheet'; got {model!r}")
    params = load_params() if model != "datasheet" else None
    if model == "fitted" and params is None:
        raise ConfigError("no fitted efficiency curves ship with this install; run benchmarks/hardware_fidelity.py "
                          "or use model='datasheet'")
    use_fit = params is not None and (model == "fitted" or (utilization is None and not dev.explicit_utilization))
    if use_fit:
        return _fitted(profile, dev, precision, batch, rt.name, params, error, fill)
    legacy = {"tensorrt": "optimized", "triton": "optimized", "torch-eager": "eager"}.get(rt.name, rt.name)
    return _catalog(profile, dev, precision, batch, scale, utilization, error, legacy, fill)


def _memory(profile, batch_scale: float, byte_scale: float, capacity: float | None) -> dict[str, Any]:
    weights = (profile.total_param_bytes + sum(profile.buffer_bytes.values())) * byte_scale
    activations = profile.peak_activation_bytes * batch_scale * byte_scale
    total = weights + activations
    return {"weights_bytes": weights, "activation_bytes": activations, "total_bytes": total,
            "device_bytes": capacity, "fits": None if capacity is None else total <= capacity}


def _byte_scale(profile, precision: str) -> float:
    return BYTES_PER_ELEMENT[precision] / BYTES_PER_ELEMENT[profile_dtype(profile)]


def _works(profile, scale: float, byte_scale: float) -> list[LayerWork]:
    return [layer_work(layer, scale, byte_scale) for layer in profile.layers]


def _notes(profile) -> list[str]:
    notes = []
    if profile.training:
        notes.append("the profile is a training profile; the estimate is of its forward pass (inference)")
    if profile.uncounted:
        notes.append(f"the profiler could not count {', '.join(sorted(profile.uncounted))}; their time is missing")
    return notes


def _fill(profile, effective_seq: int | None) -> float:
    """The share of real tokens when sequences of mean length ``effective_seq`` are padded to the profiled length."""
    if effective_seq is None:
        return 1.0
    shape = profile.inputs[0] if profile.inputs else ()
    if len(shape) != 3:
        raise ConfigError("effective_seq applies to a sequence model profiled on (batch, tokens, dim) inputs; "
                          f"this profile's input is {tuple(shape)}")
    if not isinstance(effective_seq, int) or not 0 < effective_seq <= shape[1]:
        raise ConfigError(f"effective_seq must be a whole number of tokens in 1..{shape[1]} (the padded length); "
                          f"got {effective_seq!r}")
    return effective_seq / shape[1]


def published_error(params, dev: Device, training: bool = False) -> dict[str, Any]:
    """The held-out error of the fitted model for ``dev``'s chip (or its kind), as an ``error`` field."""
    got = params.error_for(dev, training) if params is not None else None
    if not got:
        return {"status": "unknown", "against": "published",
                "reason": f"no held-out published figures cover {dev.family} or {dev.kind} devices"}
    scope = ("training steps" if training else dev.family if params.errors.get(dev.family)
             else f"{dev.kind} devices")
    return {"status": "measured", "against": "published", "scope": scope, **got,
            "source": "benchmarks/published/figures.yaml, held-out part (benchmarks/hardware_fidelity.py)"}


def _fitted(profile, dev: Device, precision: str | None, batch: int, runtime: str, params, error: dict | None,
            fill: float) -> Estimate:
    precision = check_precision(precision or profile_dtype(profile))
    peak = dev.peak(precision)
    works = build_works(profile, batch, precision, fill)
    t = seconds(works, dev, precision, runtime, params)
    layers = [LayerTime(works.names[i], works.types[i], str(works.roles[i]), float(works.flops[i]),
                        float(works.wbytes[i] + works.abytes[i]), float(t.compute[i]), float(t.memory[i]),
                        float(t.overhead[i]), bool(t.fused[i])) for i in range(len(works.names))]
    byte_scale = _byte_scale(profile, precision)
    scale = batch / max(profile.batch, 1)
    assumptions = {"source": "fitted", "precision": precision, "peak_flops": peak, "bandwidth": dev.bandwidth,
                   **t.assumptions, "effective_token_share": fill,
                   "fit": "efficiency curves fitted to published measurements (benchmarks/published/)",
                   "datasheet": dev.source, **({"assumption": dev.assumption} if dev.assumption else {})}
    notes = _notes(profile)
    if t.assumptions["efficiency_from"] != "fitted":
        notes.append(f"no published {precision} figure for {dev.family} was fitted on; efficiency "
                     f"{t.assumptions['efficiency_from']}")
    return Estimate(profile.model, dev.key, dev.name, precision, batch, None, t.seconds, profile.flops * scale * fill,
                    peak, layers, t.call_s, _memory(profile, scale, byte_scale, dev.memory_bytes), assumptions,
                    published_error(params, dev) if error is None else error, notes)


def _catalog(profile, dev: Device, precision: str | None, batch: int, scale: float,
             utilization: tuple[float, float] | None, error: dict | None, runtime: str, fill: float = 1.0) -> Estimate:
    error = predictor_error() if error is None else error
    precision = check_precision(precision or profile_dtype(profile))
    peak = dev.peak(precision)
    vector_peak = dev.peak_flops.get("fp32", peak)  # elementwise work runs on vector units, not matrix engines
    cu, mu = utilization or (dev.compute_utilization, dev.memory_utilization)
    for what, u in (("compute", cu), ("memory", mu)):
        if not 0 < u <= 1:
            raise ConfigError(f"{what} utilization must be in (0, 1]; got {u}")
    byte_scale = _byte_scale(profile, precision)
    bandwidth = dev.bandwidth * mu
    layers = []
    for w in _works(profile, scale * fill, byte_scale):
        rate = (peak if w.role in MATRIX_ROLES else vector_peak) * cu
        layers.append(LayerTime(w.name, w.type, w.role, w.flops, w.bytes, w.flops / rate if w.flops else 0.0,
                                w.bytes / bandwidth if w.bytes else 0.0,
                                dev.overhead_s * w.calls if w.role != "free" else 0.0, fused(w, runtime)))
    latency = dev.call_overhead_s + sum(layer.time_s for layer in layers)
    assumptions = {
        "source": "catalog", "precision": precision, "compute_utilization": cu, "memory_utilization": mu,
        "peak_flops": peak, "bandwidth": dev.bandwidth, "overhead_per_layer_s": dev.overhead_s,
        "call_overhead_s": dev.call_overhead_s,
        "runtime": ("an optimized runtime: batch norm, activations and residual adds fused into the convolutions"
                    if runtime == "optimized" else "eager: every layer runs as its own kernel" if runtime == "eager"
                    else runtime),
        "datasheet": dev.source, **({"assumption": dev.assumption} if dev.assumption else {}),
    }
    err = {**error, "applies_to": "the local predictor on the machine it was measured on; "
                                  f"{dev.key} figures are datasheet peaks x assumed utilization, not measured here"}
    return Estimate(profile.model, dev.key, dev.name, precision, batch, None, latency, profile.flops * scale, peak,
                    layers, dev.call_overhead_s, _memory(profile, scale, byte_scale, dev.memory_bytes), assumptions,
                    err, _notes(profile))


def _local(profile, device: str, precision: str | None, batch: int, scale: float, backend: str | None,
           calibration, error: dict | None) -> Estimate:
    from trimnet.hardware.calibration import load_calibration

    cuda = device == "local-cuda"
    name, precision = parse_backend(backend or ("torch-cuda" if cuda else "torch"), precision)
    if cuda and name == "torch":
        name = "torch-cuda"
    precision = precision or profile_dtype(profile)
    cal = calibration if calibration is not None else load_calibration("cuda" if cuda else "cpu")
    series = cal.get(name, precision)
    error = predictor_error(cal.machine) if error is None else error
    byte_scale = _byte_scale(profile, precision) if precision in BYTES_PER_ELEMENT else 1.0
    works = _works(profile, scale, byte_scale)
    unfused = _adds_after_matmul(works) if name in ADDS_FUSED_ONLY_INTO_CONV else set()
    graph = not _runs_module(name)
    layers = [_local_layer(w, series, name, w.name in unfused, graph) for w in works]
    latency = series.call_s + sum(layer.time_s for layer in layers)
    # utilization against the best FLOP/s a calibrated kernel reached (the fitted asymptotes can
    # run past anything measured); kernels borrowed from another series use that one's points
    source = (series.borrowed or series.key).split("/")
    peak = cal.best_flops(*source) or max(series.matmul.peak, series.conv.peak)
    assumptions = {
        "source": "calibration", "calibration": cal.path, "calibrated": cal.created, "quick": cal.quick,
        "clock": cal.clock,
        "machine": cal.machine.get("cpu") if not cuda else cal.machine.get("gpu"), "threads": cal.machine.get("threads"),
        "backend": name, "precision": precision, "peak_flops": peak,
        "bandwidth": series.bandwidth.largest, "call_overhead_s": series.call_s, "overhead_per_layer_s": series.layer_s,
        "fused_roles": sorted(_fused_roles(name)),
        "utilization": "measured: each layer runs at the FLOP/s calibrated for its kernel shape",
        **({"kernels_from": series.borrowed} if series.borrowed else {}),
    }
    notes = _notes(profile)
    if _runs_module(name) and precision != "fp32":
        notes.append(f"the {name} runner runs fp32; this assumes the model itself is cast to {precision}")
    return Estimate(profile.model, cal.name, cal.machine.get("cpu") or "this machine", precision, batch, name,
                    latency, profile.flops * scale, peak, layers, series.call_s,
                    _memory(profile, scale, byte_scale, cal.machine.get("memory_bytes")), assumptions, error, notes)


# the calibrated pass each layer role is timed by
PASS_OF_ROLE = {"dwconv": "dwconv", "attention": "attention", "norm": "norm", "layernorm": "layernorm",
                "simple_activation": "elementwise", "activation": "gelu", "add": "add", "pool": "pool",
                "elementwise": "elementwise"}


# graph runtimes that fold a residual add into the convolution before it (onnxruntime's FusedConv takes the
# shortcut as its sum input) but not into a matrix product: after a linear layer or attention it runs as an Add
ADDS_FUSED_ONLY_INTO_CONV = frozenset({"onnxruntime"})


def _adds_after_matmul(works: list[LayerWork]) -> set[str]:
    """The residual adds whose body ends in a matrix product (a transformer block's), by layer name."""
    out = set()
    for w in works:
        if w.role != "add":
            continue
        body = [v for v in works if v.name.startswith(f"{w.name}.body.") and v.role != "free"]
        if body and body[-1].role in ("matmul", "attention"):
            out.add(w.name)
    return out


def _local_layer(w: LayerWork, series, runtime: str, unfused: bool = False, graph: bool = False) -> LayerTime:
    """One layer on the calibrated machine: its kernel's fitted time plus the backend's per-layer overhead
    (``unfused``: a layer of a role the runtime fuses elsewhere that it cannot fuse here).

    On a graph runtime (``graph``) the per-layer overhead is a node's dispatch, which the time of a
    lone op less a one-node graph's leaves out: it is added per node the layer exports to (a bias
    Add, attention's shape arithmetic), except to convolutions and matrix products, timed as the
    slope of a chain (which includes it)."""
    overhead = 0.0 if graph and w.is_gemm else series.layer_s * w.calls
    compute = memory = 0.0
    if w.is_gemm:
        curve = series.conv if w.role == "conv" else series.matmul
        compute = w.flops / curve.rate(w.m, w.k, w.n)
        memory = w.bytes / series.bandwidth(w.bytes / w.calls) if w.bytes else 0.0
        overhead += curve.t0 * w.calls
        if w.bias_bytes and runtime == "onnxruntime":  # MatMul + Add: onnxruntime fuses the bias only on 2-D input
            add = series.passes.get("add") or series.passes["elementwise"]
            bias = add.time(w.bias_bytes / w.calls) * w.calls  # its own node, after the product: the times add up
            compute, memory = compute + bias, memory + bias
            overhead += series.layer_s * w.calls
    elif w.role == "attention" and series.attention is not None and (terms := terms_of_work(w)) is not None:
        gemms, moves = (t * w.calls for t in series.attention.split(terms))
        # the small GEMMs and the transposes / softmax are different nodes, run one after another:
        # their times add up, on the side of the larger (the roofline's max then takes the sum)
        compute, memory = (gemms + moves, moves) if gemms >= moves else (gemms, gemms + moves)
        overhead += (series.attention.t0 + (series.layer_s * EXPORTED_EXTRA_NODES if graph else 0.0)) * w.calls
    elif w.role != "free":
        curve = series.passes.get(PASS_OF_ROLE[w.role]) or series.passes["elementwise"]
        amount = (w.flops if curve.unit == "flops" else w.bytes) / w.calls
        seconds = (amount / curve.rate(amount) if amount else 0.0) * w.calls
        if curve.unit == "flops":
            compute = seconds
        else:
            memory = seconds
        overhead += curve.t0 * w.calls
    return LayerTime(w.name, w.type, w.role, w.flops, w.bytes, compute, memory, overhead,
                     fused(w, runtime) and not unfused)


def _runs_module(backend: str) -> bool:
    """A backend that runs the PyTorch module as it is (its dtype is the module's), not an exported graph."""
    from trimnet.runtime import get_backend

    return not get_backend(backend).runs_file


def _fused_roles(runtime: str) -> frozenset[str]:
    from trimnet.hardware.roofline import fused_roles

    return fused_roles(runtime)
