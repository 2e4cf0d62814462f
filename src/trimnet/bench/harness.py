"""``benchmark``: every (backend, batch size) measured the same way, with the environment beside it.

Per backend: load once (exports to ONNX once for all ONNX-reading backends, checks parity),
then per batch size: one first call (compilation, lazy allocation; reported, not counted),
warm-up until stable, and the measured loop. Threads are pinned to the same count for
every backend. A backend that cannot run here is reported as skipped with the reason.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trimnet.bench.config import BenchConfig
from trimnet.bench.env import describe_environment, load_average, pinned_threads
from trimnet.bench.interference import Watch, auto_threads, spread
from trimnet.bench.memory import PeakMemory
from trimnet.bench.report import Measurement, BenchResult
from trimnet.bench.source import Source, resolve_source
from trimnet.bench.timing import Stats, measure, timed, warm_up
from trimnet.errors import ConfigError, TrimnetError

log = logging.getLogger(__name__)
DEFAULT_BACKENDS = ("torch", "onnxruntime", "openvino")


@dataclass(frozen=True)
class BackendSpec:
    """A backend and its options, written ``name`` or ``name:key=value:key=value``."""

    name: str
    options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ":".join([self.name, *(f"{k}={v}" for k, v in self.options.items())])

    @classmethod
    def parse(cls, text: "str | BackendSpec") -> "BackendSpec":
        if isinstance(text, BackendSpec):
            return text
        name, *pairs = text.strip().split(":")
        options: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ConfigError(f"backend option {pair!r} in {text!r} is not key=value "
                                  "(e.g. openvino:precision=bf16:hint=throughput)")
            options[key] = _scalar(value)
        return cls(name, options)


def _scalar(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return int(value)
    except ValueError:
        return value


def benchmark(
    model_or_path: Any,
    example_inputs: torch.Tensor | None = None,
    *,
    backends: Sequence[str | BackendSpec] = DEFAULT_BACKENDS,
    batch_sizes: Sequence[int] | None = None,
    config: BenchConfig | None = None,
) -> BenchResult:
    """Latency, throughput, achieved FLOP/s and peak memory per (backend, batch size).

    ``model_or_path``: an ``nn.Module``, an ``Artifact``, a run directory, or a .onnx / .xml
    file (ONNX-reading backends only). ``batch_sizes`` defaults to the batch of
    ``example_inputs`` (or 1). Backends may carry options: ``"openvino:precision=bf16"``.
    """
    from trimnet.runtime import get_backend

    cfg = (config or BenchConfig()).validate()
    specs = [BackendSpec.parse(b) for b in backends]
    if not specs:
        raise ConfigError("no backends to measure; pass at least one (see `trimnet bench --list-backends`)")
    for spec in specs:
        get_backend(spec.name)  # an unknown name fails here, before anything is measured
    source = resolve_source(model_or_path, example_inputs, seed=cfg.seed)
    sizes = check_batch_sizes(batch_sizes, len(source.example))
    threads = cfg.threads or auto_threads()
    results: list[Measurement] = []
    environment = describe_environment(threads)
    with pinned_threads(threads), tempfile.TemporaryDirectory(prefix="trimnet-bench-") as tmp:
        exported = shared_export(source, specs, Path(tmp))
        for spec in specs:
            results.extend(_measure_backend(source, spec, sizes, cfg, threads, exported))
    environment["load_average_after"] = load_average()
    # counted after timing: the profiler hooks every module call while it counts
    flops = flops_per_sample(source)
    for m in results:
        if flops and m.p50:
            m.achieved_flops = flops * m.batch / (m.p50 / 1e3)
    return BenchResult(model=source.describe(flops), config=cfg.to_dict(), environment=environment, results=results)


def _measure_backend(source: Source, spec: BackendSpec, sizes: list[int], cfg: BenchConfig, threads: int,
                     exported: Path | None) -> list[Measurement]:
    why = why_not_runnable(source, spec)
    if why is not None:
        log.debug("skipping %s: %s", spec.label, why)
        return [Measurement.skipped(spec.label, spec.name, spec.options, b, why) for b in sizes]
    runner = open_runner(source, spec, threads, exported)
    out = []
    try:
        for batch in sizes:
            log.debug("measuring %s at batch %d", spec.label, batch)
            out.append(measure_runner(runner, source.inputs(batch), cfg, spec, threads))
    finally:
        runner.close()
    return out


def open_runner(source: Source, spec: BackendSpec, threads: int, exported: Path | None):
    """A parity-checked runner for ``spec``, pinned to ``threads`` where the backend takes it."""
    from trimnet.runtime import get_backend, load_runner

    backend = get_backend(spec.name)
    options = dict(spec.options)
    if "threads" in backend.options and "threads" not in options:
        options["threads"] = threads
    if backend.runs_file:  # the given file, else the shared ONNX export where it reads ONNX (else it makes its own)
        options["exported"] = source.exported or (exported if backend.uses_onnx else None)
    return load_runner(spec.name, source.model, source.example, **options)


def measure_runner(runner, x: np.ndarray, cfg: BenchConfig, spec: BackendSpec, threads: int | None = None) -> Measurement:
    """First call, warm-up and measured loop of one runner on one batch.

    The loop is timed again (up to ``cfg.retimes`` times) while its repeats spread wider than
    ``cfg.max_spread``; the steadiest attempt is kept. ``interference`` records the load, the
    cores other processes used meanwhile, the spread and whether the figure was taken busy.
    """
    batch = len(x)
    call, prepared = runner.call, runner.prepare(x)
    info = runner.describe()
    device = info.get("device", "cpu")
    threads = threads or info.get("threads") or torch.get_num_threads()
    attempts = []
    with PeakMemory(device=device) as memory:
        first_ns = timed(lambda: call(prepared))
        warm = warm_up(lambda: call(prepared), cfg)
        for _ in range(cfg.retimes + 1):
            with Watch() as watch:
                stats = Stats.of(measure(lambda: call(prepared), cfg))
            attempts.append((spread(stats.p50, stats.p90), stats, watch))
            if attempts[-1][0] <= cfg.max_spread:
                break
    width, stats, watch = min(attempts, key=lambda a: a[0])
    interference = {**watch.to_dict(threads), "spread": round(width, 3), "steady": width <= cfg.max_spread,
                    "retimed": len(attempts) - 1}
    interference["flagged"] = interference["busy"] or not interference["steady"]
    return Measurement(
        backend=spec.label, name=spec.name, options=dict(spec.options), batch=batch, status="ok",
        latency_ms=stats.latency_ms(), iterations=stats.iterations, measured_s=stats.seconds,
        throughput=batch * stats.iterations / stats.seconds if stats.seconds > 0 else None,
        first_run_ms=first_ns / 1e6, warmup=warm.to_dict(), memory=memory.to_dict(),
        precision=runner.precision, runner=info, parity=_parity_summary(runner.parity),
        interference=interference,
    )


def why_not_runnable(source: Source, spec: BackendSpec) -> str | None:
    """None when ``spec`` can run ``source`` here, else the reason."""
    from trimnet.runtime import get_backend

    backend = get_backend(spec.name)
    why = backend.why_not()
    if why is None and source.exported is not None and source.exported.suffix not in backend.reads:
        what = f"reads {', '.join(backend.reads)} files" if backend.reads else "runs PyTorch modules"
        why = f"{spec.name} {what}, not {source.exported.name}"
    return why


def shared_export(source: Source, specs: list[BackendSpec], tmp: Path) -> Path | None:
    """One ONNX export for every ONNX-reading backend (instead of one each)."""
    from trimnet.runtime import get_backend
    from trimnet.runtime.export import export_onnx_file

    if source.exported is not None or source.model is None:
        return None
    if not any(get_backend(s.name).uses_onnx and get_backend(s.name).why_not() is None for s in specs):
        return None
    start = time.perf_counter()
    path = export_onnx_file(source.model, tmp / "model.onnx", source.example)
    log.debug("exported %s to ONNX in %.1f s", source.name, time.perf_counter() - start)
    return path


def flops_per_sample(source: Source) -> float | None:
    """FLOPs of one sample from ``trimnet.profile`` when it is installed and can count the model."""
    if source.model is None:
        return None
    try:
        from trimnet.profile import profile
    except ImportError:
        return None
    try:
        return float(profile(source.model, source.example[:1]).flops)
    except (TrimnetError, AttributeError, TypeError) as exc:
        log.debug("no FLOP count for %s: %s", source.name, exc)
        return None


def _parity_summary(parity: dict | None) -> dict | None:
    if parity is None:
        return None
    return {k: parity[k] for k in ("passed", "max_abs", "max_rel", "precision")}


def check_batch_sizes(batch_sizes: Sequence[int] | None, default: int) -> list[int]:
    sizes = list(batch_sizes) if batch_sizes else [default]
    bad = [b for b in sizes if not isinstance(b, (int, np.integer)) or b < 1]
    if bad:
        raise ConfigError(f"batch sizes must be positive integers; got {bad}")
    return [int(b) for b in sizes]
