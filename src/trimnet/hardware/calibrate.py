"""Calibrate this machine: achieved FLOP/s per kernel shape and dtype, bandwidth, and backend overheads.

``calibrate()`` times the operations of ``measure`` on every backend that runs here (PyTorch
fp32 and bf16 kernels; onnxruntime; OpenVINO f32 and, where the CPU runs it, bf16; on request
torch.compile's call overhead), fits the curves of ``curves``, and saves the result
as the ``local`` device profile in ``$TRIMNET_CACHE`` (default ``~/.cache/trimnet``) with a
description of the machine. A saved profile whose machine description differs from this
machine (CPU, threads, versions) is refused: calibrate again.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from trimnet.errors import ConfigError, TrimnetError
from trimnet.hardware import measure
from trimnet.hardware.curves import ComputeCurve, PassCurve, Rate, fit_compute, fit_pass

log = logging.getLogger(__name__)
CACHE_ENV = "TRIMNET_CACHE"
SCHEMA = "trimnet.hardware.calibration"
VERSION = 2
# machine-description keys that must match for a saved profile to be used
MACHINE_KEYS = ("device", "cpu", "usable_cores", "threads", "gpu", "torch", "onnxruntime", "openvino")


@dataclass
class Series:
    """One backend at one dtype: its overheads and fitted curves (see ``curves``)."""

    backend: str
    dtype: str
    call_s: float  # per inference call (runner, bindings, input conversion)
    layer_s: float  # per executed layer beyond its kernel (module dispatch); 0 for graph runtimes
    matmul: ComputeCurve
    conv: ComputeCurve
    passes: dict[str, PassCurve]  # elementwise, norm, pool, add, gelu, layernorm, dwconv, attention
    precision: str | None = None  # what the runtime reported it ran
    borrowed: str | None = None  # where kernels were not measured on this backend, the series they come from

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.dtype}"

    @property
    def bandwidth(self) -> Rate:
        """Bytes/s of a plain elementwise pass, by bytes moved: the memory side of the roofline."""
        return self.passes["elementwise"].rate

    def to_dict(self) -> dict:
        return {"backend": self.backend, "dtype": self.dtype, "call_s": self.call_s, "layer_s": self.layer_s,
                "matmul": self.matmul.to_dict(), "conv": self.conv.to_dict(),
                "passes": {k: v.to_dict() for k, v in self.passes.items()}, "precision": self.precision,
                "borrowed": self.borrowed}

    @classmethod
    def from_dict(cls, d: dict) -> "Series":
        return cls(d["backend"], d["dtype"], float(d["call_s"]), float(d["layer_s"]),
                   ComputeCurve.from_dict(d["matmul"]), ComputeCurve.from_dict(d["conv"]),
                   {k: PassCurve.from_dict(v) for k, v in d["passes"].items()}, d.get("precision"), d.get("borrowed"))


@dataclass
class Calibration:
    """The ``local`` device: what was measured on this machine and the curves fitted to it."""

    device: str  # "cpu" or "cuda"
    machine: dict
    created: str
    quick: bool
    seconds: float
    series: dict[str, Series]
    points: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # backend -> why it was not calibrated
    path: str | None = None

    @property
    def name(self) -> str:
        return "local" if self.device == "cpu" else "local-cuda"

    def get(self, backend: str, dtype: str) -> Series:
        key = f"{backend}/{dtype}"
        if key not in self.series:
            have = ", ".join(sorted(self.series)) or "(none)"
            why = self.skipped.get(backend)
            raise ConfigError(f"no calibration for {key} on {self.name}" + (f" ({why})" if why else "")
                              + f"; calibrated: {have}" + ("" if why else
                                                           "; run `trimnet hardware calibrate` (without --quick)"))
        return self.series[key]

    def bandwidth(self) -> float:
        """Main-memory bandwidth (read + write bytes/s) of PyTorch's largest elementwise pass."""
        first = self.series.get("torch/fp32") or self.series.get("torch-cuda/fp32") or next(iter(self.series.values()))
        return first.bandwidth.largest

    def to_dict(self) -> dict:
        return {"kind": SCHEMA, "version": VERSION, "device": self.device, "machine": self.machine,
                "created": self.created, "quick": self.quick, "seconds": self.seconds,
                "series": {k: s.to_dict() for k, s in self.series.items()}, "skipped": self.skipped,
                "points": self.points}

    @classmethod
    def from_dict(cls, d: dict, path: str | None = None) -> "Calibration":
        if d.get("kind") != SCHEMA or d.get("version") != VERSION:
            raise ConfigError(f"{path or 'calibration'} is not a trimnet calibration (version {VERSION}); "
                              "run `trimnet hardware calibrate` again")
        return cls(d["device"], d["machine"], d["created"], bool(d["quick"]), float(d["seconds"]),
                   {k: Series.from_dict(v) for k, v in d["series"].items()}, d.get("points", []),
                   d.get("skipped", {}), path)


# ---------------------------------------------------------------- where it lives, and which machine

def cache_dir() -> Path:
    """``$TRIMNET_CACHE``, else ``$XDG_CACHE_HOME/trimnet``, else ``~/.cache/trimnet``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trimnet"


def profile_path(device: str = "cpu") -> Path:
    return cache_dir() / ("local.json" if device == "cpu" else "local-cuda.json")


def describe_machine(device: str = "cpu", threads: int | None = None) -> dict:
    """What a calibration depends on: CPU, cores, threads, GPU, library versions."""
    from trimnet.bench.env import describe_cpu, describe_gpu, package_versions

    cpu = describe_cpu()
    versions = package_versions()
    gpu = describe_gpu() if device == "cuda" else None
    return {"device": device, "cpu": cpu["name"], "usable_cores": cpu["usable_cores"],
            "threads": threads or torch.get_num_threads(), "flags": cpu["flags"],
            "gpu": gpu["name"] if gpu else None, "torch": torch.__version__,
            "onnxruntime": versions.get("onnxruntime"), "openvino": versions.get("openvino"),
            "memory_bytes": _memory_bytes(device)}


def _memory_bytes(device: str) -> int | None:
    """RAM (or the GPU's memory) that a model's weights and activations must fit in."""
    if device == "cuda":
        return int(torch.cuda.get_device_properties(0).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def machine_differences(saved: dict, current: dict) -> list[str]:
    return [f"{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in MACHINE_KEYS
            if saved.get(k) != current.get(k)]


def load_calibration(device: str = "cpu", *, path: str | Path | None = None, check: bool = True,
                     threads: int | None = None) -> Calibration:
    """The saved ``local`` profile; a ConfigError when there is none or it is from another machine."""
    p = Path(path) if path is not None else profile_path(device)
    name = "local" if device == "cpu" else "local-cuda"
    if not p.is_file():
        raise ConfigError(f"device {name!r} is not calibrated yet ({p} does not exist); run `trimnet hardware "
                          f"calibrate{'' if device == 'cpu' else ' --device cuda'}` (about a minute; --quick: ~10 s)")
    try:
        cal = Calibration.from_dict(json.loads(p.read_text()), str(p))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{p} is not a readable calibration ({exc}); run `trimnet hardware calibrate` again") from None
    if check:
        diff = machine_differences(cal.machine, describe_machine(cal.device, threads))
        if diff:
            raise ConfigError(f"the calibration in {p} was made on a different machine or setup ({'; '.join(diff)}); "
                              "run `trimnet hardware calibrate` again")
    return cal


def save_calibration(cal: Calibration, path: str | Path | None = None) -> Path:
    p = Path(path) if path is not None else profile_path(cal.device)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(cal.to_dict(), indent=1))
    tmp.replace(p)  # atomic: a reader never sees half a file
    cal.path = str(p)
    return p


# ---------------------------------------------------------------- measuring

def calibrate(*, quick: bool = False, device: str = "auto", threads: int | None = None,
              backends: Sequence[str] | None = None, dtypes: Sequence[str] | None = None, save: bool = True,
              path: str | Path | None = None, point_seconds: float | None = None) -> Calibration:
    """Measure this machine (30-60 s; ``quick``: 10-20 s) and save it as the ``local`` device.

    ``device``: "cpu", "cuda" or "auto" (cuda when present). ``backends`` limits which are
    calibrated (default: every one usable here), ``dtypes`` which of fp32 / bf16. ``point_seconds`` is the time spent per
    measured operation per round (default 0.05, quick 0.02).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"calibration device must be cpu, cuda or auto; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("no CUDA device here (torch.cuda.is_available() is False); calibrate --device cpu")
    threads = threads or torch.get_num_threads()
    if threads < 1:
        raise ConfigError(f"threads must be >= 1; got {threads}")
    ops = measure.QUICK_OPS if quick else measure.FULL_OPS
    seconds = point_seconds if point_seconds is not None else (0.02 if quick else 0.05)
    rounds = 1 if quick else 2
    plan = _plan(device, quick, backends)
    if dtypes is not None:
        bad = [d for d in dtypes if d not in measure.DTYPES]
        if bad:
            raise ConfigError(f"cannot calibrate dtype(s) {', '.join(bad)}; choose from: {', '.join(measure.DTYPES)}")
        plan = [p for p in plan if p[1] in dtypes]
    start = time.perf_counter()
    cal = Calibration(device, describe_machine(device, threads),
                      _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), quick, 0.0, {})
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="trimnet-calibrate-") as tmp:
            for backend, dtype, options in plan:
                why = _why_not(backend)
                if why is not None:
                    cal.skipped[backend] = why
                    continue
                try:
                    series, points = _calibrate_series(backend, dtype, options, ops, seconds, rounds, threads,
                                                       device, Path(tmp), cal)
                except TrimnetError as exc:
                    cal.skipped[f"{backend}/{dtype}"] = str(exc)
                    continue
                if series is None:
                    continue
                cal.series[series.key] = series
                cal.points += points
    finally:
        torch.set_num_threads(before)
    cal.seconds = time.perf_counter() - start
    if save:
        save_calibration(cal, path)
    return cal


def _plan(device: str, quick: bool, backends: Sequence[str] | None) -> list[tuple[str, str, dict]]:
    if device == "cuda":
        plan = [("torch-cuda", "fp32", {}), ("torch-cuda", "bf16", {})]
    else:
        plan = [("torch", "fp32", {}), ("torch", "bf16", {}), ("onnxruntime", "fp32", {}),
                ("openvino", "fp32", {"precision": "f32"}), ("openvino", "bf16", {"precision": "bf16"})]
    if backends is not None:
        known = sorted({b for b, _, _ in plan} | ({"torch-compile"} if device == "cpu" else set()))
        unknown = [b for b in backends if b not in known]
        if unknown:
            raise ConfigError(f"cannot calibrate backend(s) {', '.join(unknown)} on {device}; choose from: "
                              f"{', '.join(known)}")
        if "torch-compile" in backends and all(b != "torch-compile" for b, _, _ in plan):
            plan.append(("torch-compile", "fp32", {}))
        plan = [p for p in plan if p[0] in backends]
    return plan


def _why_not(backend: str) -> str | None:
    from trimnet.runtime import get_backend

    return get_backend(backend).why_not()


def _calibrate_series(backend: str, dtype: str, options: dict, ops: list[measure.Op], seconds: float, rounds: int,
                      threads: int, device: str, tmp: Path, cal: Calibration) -> tuple[Series | None, list[dict]]:
    log.info("calibrating %s/%s", backend, dtype)
    if backend == "torch-compile":
        return _compile_series(threads, seconds, cal), []
    precision = None
    if backend in ("torch", "torch-cuda"):
        if dtype == "bf16" and device == "cpu" and not _native_bf16(cal.machine):
            ops = measure.QUICK_OPS  # emulated bf16 is slow: the short list is enough to show it
        calls = [measure.torch_op(op, dtype, "cuda" if backend == "torch-cuda" else "cpu") for op in ops]
        times = _rounds(calls, seconds, rounds)
    else:
        opts = {**options, "threads": threads}
        tiny, precision = measure.onnx_time(backend, opts, "tiny", tmp, seconds * 2)
        if backend == "openvino" and dtype == "bf16" and precision != "bf16":
            cal.skipped[f"{backend}/{dtype}"] = f"this CPU runs OpenVINO at {precision}, not bf16"
            return None, []
        times = _onnx_times(backend, opts, ops, tmp, seconds, rounds, tiny)
    points = [{"series": f"{backend}/{dtype}", "op": op.kind, "shape": list(op.shape), "gemm": list(op.gemm()),
               "flops": op.flops, "bytes": op.bytes(dtype), "amount": op.amount(dtype), "seconds": t}
              for op, t in zip(ops, times)]
    series = _fit(backend, dtype, points, precision)
    if backend in ("torch", "torch-cuda"):
        base = cal.series.get(f"{backend}/fp32")
        if base is not None:
            series.call_s, series.layer_s = base.call_s, base.layer_s
        else:
            series.call_s, series.layer_s = _module_overheads(backend, threads, seconds)
    else:
        series.call_s = tiny
    return series, points


def _onnx_times(backend: str, opts: dict, ops: list[measure.Op], tmp: Path, seconds: float, rounds: int,
                tiny: float) -> list[float]:
    """Each op's own time on a graph runtime.

    A shape-keeping convolution or matmul is timed as the slope of a chain of copies, which leaves
    out the layout conversions a lone node pays at the graph's input and output (a model pays them
    once); the others are timed alone, less the call overhead of a one-node graph (``tiny``).
    """
    repeat = measure.CHAIN_REPEAT
    graphs = [(op, 1) for op in ops] + [(op, repeat) for op in ops if op.chains]
    runners = []
    try:
        for op, n in graphs:
            runners.append(measure.onnx_runner(backend, opts, op, tmp, n))
        raw = dict(zip(graphs, _rounds([(lambda r=r, x=x: r.run(x)) for r, x in runners], seconds, rounds)))
    finally:
        for r, _ in runners:
            r.close()
    times = []
    for op in ops:
        alone = raw[(op, 1)]
        own = (raw[(op, repeat)] - alone) / (repeat - 1) if op.chains else alone - tiny
        times.append(max(own, 0.02 * alone))
    return times


def _module_overheads(backend: str, threads: int, seconds: float) -> tuple[float, float]:
    """(per call, per layer) of PyTorch modules: a chain of varied tiny layers run whole through the
    runner, against the same operators each timed alone; per layer, the difference is module dispatch
    and the colder caches and branch predictors of a model's longer code path."""
    t = measure.torch_module_times(backend, threads, seconds * 2)
    n = measure.CHAIN_LENGTH
    per_layer = ((t[f"whole_{n}"] - t["whole_1"]) - (t[f"alone_{n}"] - t["alone_1"])) / (n - 1)
    call = t["whole_1"] - t["alone_1"] - per_layer
    return max(call, 0.0), max(per_layer, 0.0)


def _native_bf16(machine: dict) -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & set(machine.get("flags") or ()))


def _rounds(calls: list, seconds: float, rounds: int) -> list[float]:
    """Each call timed in ``rounds`` interleaved passes; the fastest pass's median is kept (noise only adds)."""
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, fn in enumerate(calls):
            best[i] = min(best[i], measure.time_call(fn, seconds))
    return best


def _fit(backend: str, dtype: str, points: list[dict], precision: str | None) -> Series:
    def of(kind: str) -> list[dict]:
        return [p for p in points if p["op"] == kind]

    passes = {}
    for kind in measure.PASS_KINDS:
        pts = of(kind)
        if pts:
            passes[kind] = fit_pass([p["amount"] for p in pts], [p["seconds"] for p in pts],
                                    "flops" if kind == "attention" else "bytes")
    curves = {}
    for kind in measure.GEMM_KINDS:
        pts = of(kind)
        curves[kind] = fit_compute([tuple(p["gemm"]) for p in pts], [p["flops"] for p in pts],
                                   [p["bytes"] for p in pts], [p["seconds"] for p in pts], passes["elementwise"].rate)
    return Series(backend, dtype, 0.0, 0.0, curves["matmul"], curves["conv"], passes, precision)


def _compile_series(threads: int, seconds: float, cal: Calibration) -> Series | None:
    """torch.compile runs PyTorch's own GEMM and convolution kernels; what it changes is the call overhead."""
    base = cal.series.get("torch/fp32")
    if base is None:
        cal.skipped["torch-compile"] = "needs the torch/fp32 calibration for its kernels"
        return None
    module = measure.torch_module_times("torch-compile", threads, seconds * 2)
    call_s = max(module["whole_1"] - module["alone_1"], 0.0)
    return Series("torch-compile", "fp32", call_s, 0.0, base.matmul, base.conv, base.passes,
                  precision="f32", borrowed="torch/fp32")


def summary(cal: Calibration) -> list[dict[str, Any]]:
    """One row per series: overheads, fitted peaks and bandwidth, for tables."""
    rows = []
    for key, s in cal.series.items():
        rows.append({"series": key, "call_us": s.call_s * 1e6, "layer_us": s.layer_s * 1e6,
                     "matmul_peak_gflops": s.matmul.peak / 1e9, "matmul_fit_error": s.matmul.error,
                     "conv_peak_gflops": s.conv.peak / 1e9, "conv_fit_error": s.conv.error,
                     "dram_gbs": s.bandwidth.largest / 1e9, "cache_gbs": max(s.bandwidth.rates) / 1e9,
                     "borrowed": s.borrowed})
    return rows
