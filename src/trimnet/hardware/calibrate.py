"""Calibrate this machine: achieved FLOP/s per kernel shape and dtype, bandwidth, and backend overheads.

``calibrate()`` times the operations of ``measure`` on every backend that runs here (PyTorch
fp32 and bf16 kernels; onnxruntime; OpenVINO f32 and, where the CPU runs it, bf16; on request
torch.compile's call overhead: what each backend's ``CalibrationPlan`` says), fits the curves of ``curves``, and saves the result
as the ``local`` device profile in ``$TRIMNET_CACHE`` (default ``~/.cache/trimnet``) with a
description of the machine. A saved profile whose machine description differs from this
machine (CPU, threads, versions) is refused: calibrate again.
"""

from __future__ import annotations

import datetime as _dt
import logging
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

from trimnet.errors import ConfigError, TrimnetError
from trimnet.hardware import measure, onnx_graphs
from trimnet.hardware.attention import fit_attention
from trimnet.hardware.calibration import Calibration, Series, describe_machine, save_calibration
from trimnet.hardware.curves import fit_compute, fit_pass
from trimnet.precision import Precision
from trimnet.runtime.backend import CalibrationPlan

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- measuring

def calibrate(*, quick: bool = False, device: str = "auto", threads: int | None = None,
              backends: Sequence[str] | None = None, dtypes: Sequence[str] | None = None, save: bool = True,
              path: str | Path | None = None, point_seconds: float | None = None, clock: str = "wall") -> Calibration:
    """Measure this machine (30-60 s; ``quick``: 10-20 s) and save it as the ``local`` device.

    ``device``: "cpu", "cuda" or "auto" (cuda when present). ``backends`` limits which are
    calibrated (default: every one usable here), ``dtypes`` which of fp32 / bf16. ``point_seconds`` is the time spent per
    measured operation per round (default 0.05, quick 0.02). ``clock="cpu"`` times in this process's
    CPU time, with one thread: on a machine other processes load, it measures what the machine does
    when quiet (wall-clock latency there is longer by however much the load takes).
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
    if clock not in measure.CLOCKS:
        raise ConfigError(f"clock must be one of {', '.join(measure.CLOCKS)}; got {clock!r}")
    if clock == "cpu" and (threads != 1 or device != "cpu"):
        raise ConfigError("clock='cpu' measures one CPU thread's work: use it with threads=1 on device cpu")
    ops = measure.QUICK_OPS if quick else measure.FULL_OPS
    seconds = point_seconds if point_seconds is not None else (0.02 if quick else 0.05)
    rounds = 1 if quick else 2
    plan = calibration_plan(device, backends)
    if dtypes is not None:
        bad = [d for d in dtypes if d not in measure.DTYPES]
        if bad:
            raise ConfigError(f"cannot calibrate dtype(s) {', '.join(bad)}; choose from: {', '.join(measure.DTYPES)}")
        plan = [p for p in plan if p[1] in dtypes]
    start = time.perf_counter()
    cal = Calibration(device, describe_machine(device, threads),
                      _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), quick, 0.0, {}, clock=clock)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="trimnet-calibrate-") as tmp:
            for backend, dtype, options, how in plan:
                why = _why_not(backend)
                if why is not None:
                    cal.skipped[backend] = why
                    continue
                try:
                    series, points = _calibrate_series(backend, dtype, options, how, ops, seconds, rounds,
                                                       threads, Path(tmp), cal)
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


Step = tuple[str, str, dict, CalibrationPlan]  # (backend, dtype, runner options, its plan)


def calibration_plan(device: str = "cpu", backends: Sequence[str] | None = None) -> list[Step]:
    """What calibrating ``device`` measures, in order, as the registered backends' ``CalibrationPlan`` say:
    every backend calibrated by default, or those named in ``backends``."""
    from trimnet.runtime.backend import all_backends

    planned = [b for b in all_backends() if b.calibration is not None and b.calibration.device == device]
    if backends is not None:
        known = sorted(b.name for b in planned)
        unknown = [b for b in backends if b not in known]
        if unknown:
            raise ConfigError(f"cannot calibrate backend(s) {', '.join(unknown)} on {device}; choose from: "
                              f"{', '.join(known)}")
    chosen = [b for b in planned if (b.calibration.by_default if backends is None else b.name in backends)]
    # the ones calibrated only on request come last: they borrow kernels from a default one
    chosen.sort(key=lambda b: not b.calibration.by_default)
    return [(b.name, Precision.parse(dtype).value, dict(options), b.calibration)
            for b in chosen for dtype, options in b.calibration.dtypes]



def _why_not(backend: str) -> str | None:
    from trimnet.runtime import get_backend

    return get_backend(backend).why_not()


def _calibrate_series(backend: str, dtype: str, options: dict, how: CalibrationPlan, ops: list[measure.Op],
                      seconds: float, rounds: int, threads: int, tmp: Path,
                      cal: Calibration) -> tuple[Series | None, list[dict]]:
    log.info("calibrating %s/%s", backend, dtype)
    if how.measure == "overhead":
        return _overhead_series(backend, dtype, how.borrows, threads, seconds, cal), []
    if how.measure not in ("kernels", "graph"):
        raise ConfigError(f"backend {backend!r} asks to be calibrated by {how.measure!r}; "
                          "a CalibrationPlan measures 'kernels', 'graph' or 'overhead'")
    precision = None
    if how.measure == "kernels":
        if dtype == "bf16" and how.device == "cpu" and not _native_bf16(cal.machine):
            ops = measure.QUICK_OPS  # emulated bf16 is slow: the short list is enough to show it
        calls = [measure.torch_op(op, dtype, how.device) for op in ops]
        times = _rounds(calls, seconds, rounds, cal.clock)
    else:
        opts = {**options, "threads": threads}
        tiny, precision = onnx_graphs.onnx_time(backend, opts, "tiny", tmp, seconds * 2, cal.clock)
        if dtype != Precision.FP32 and not _runs_at(precision, dtype):
            cal.skipped[f"{backend}/{dtype}"] = f"this CPU runs {backend} at {precision}, not {dtype}"
            return None, []
        times, tiny, node_s = _onnx_times(backend, opts, ops, tmp, seconds, rounds, tiny, cal.clock)
    points = [{"series": f"{backend}/{dtype}", "op": op.kind, "shape": list(op.shape), "gemm": list(op.gemm()),
               "flops": op.flops, "bytes": op.bytes(dtype), "amount": op.amount(dtype), "seconds": t}
              for op, t in zip(ops, times)]
    series = _fit(backend, dtype, points, precision)
    if how.measure == "kernels":
        base = cal.series.get(f"{backend}/fp32")
        if base is not None:
            series.call_s, series.layer_s = base.call_s, base.layer_s
        else:
            series.call_s, series.layer_s = _module_overheads(backend, threads, seconds, cal.clock)
    else:
        series.call_s, series.layer_s = tiny, node_s
    return series, points


def _onnx_times(backend: str, opts: dict, ops: list[measure.Op], tmp: Path, seconds: float, rounds: int,
                tiny: float, clock: str) -> tuple[list[float], float, float]:
    """Each op's own time on a graph runtime, the call overhead of a one-node graph, and the cost of a node.

    A shape-keeping convolution or matmul is timed as the slope of a chain of copies, which leaves
    out the layout conversions a lone node pays at the graph's input and output (a model pays them
    once); the others are timed alone, less the call overhead of a one-node graph (``tiny``), which
    is timed again in the same interleaved rounds (the lower of the two): a call overhead timed
    apart, under another moment's load, would be subtracted from every lone op. That leaves out
    the dispatch of one node per op, which a model pays for each of its nodes: the cost of a node
    is the slope of a chain of ``CHAIN_LENGTH`` tiny ones (the series' ``layer_s``).
    """
    repeat, n = measure.CHAIN_REPEAT, measure.CHAIN_LENGTH
    graphs = [(op, 1) for op in ops] + [(op, repeat) for op in ops if op.chains] + [("tiny", 1), ("tiny", n)]
    runners = []
    try:
        for op, n in graphs:
            runners.append(onnx_graphs.onnx_runner(backend, opts, op, tmp, n))
        raw = dict(zip(graphs, _rounds([(lambda r=r, x=x: r.run(x)) for r, x in runners], seconds, rounds, clock)))
    finally:
        for r, _ in runners:
            r.close()
    tiny = min(tiny, raw[("tiny", 1)])
    node_s = max((raw[("tiny", n)] - raw[("tiny", 1)]) / (n - 1), 0.0)
    times = []
    for op in ops:
        alone = raw[(op, 1)]
        own = (raw[(op, repeat)] - alone) / (repeat - 1) if op.chains else alone - tiny
        times.append(max(own, 0.02 * alone))
    return times, tiny, node_s


def _module_overheads(backend: str, threads: int, seconds: float, clock: str) -> tuple[float, float]:
    """(per call, per layer) of PyTorch modules: a chain of varied tiny layers run whole through the
    runner, against the same operators each timed alone; per layer, the difference is module dispatch
    and the colder caches and branch predictors of a model's longer code path."""
    first, second = (measure.torch_module_times(backend, threads, seconds * 2, clock) for _ in range(2))
    t = {k: min(first[k], second[k]) for k in first}  # load only ever adds time
    n = measure.CHAIN_LENGTH
    per_layer = ((t[f"whole_{n}"] - t["whole_1"]) - (t[f"alone_{n}"] - t["alone_1"])) / (n - 1)
    call = t["whole_1"] - t["alone_1"] - per_layer
    return max(call, 0.0), max(per_layer, 0.0)


def _runs_at(reported: str | None, dtype: str) -> bool:
    """Whether the precision a runner reports it ran (OpenVINO's ``bf16``, ``f32``) is ``dtype``."""
    try:
        return reported is not None and Precision.parse(reported) == Precision.parse(dtype)
    except ValueError:
        return False


def _native_bf16(machine: dict) -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & set(machine.get("flags") or ()))


def _rounds(calls: list, seconds: float, rounds: int, clock: str) -> list[float]:
    """Each call timed in ``rounds`` interleaved passes; the fastest pass is kept (noise only adds)."""
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, fn in enumerate(calls):
            best[i] = min(best[i], measure.time_call(fn, seconds, clock=clock))
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
    attention = of("attention")
    return Series(backend, dtype, 0.0, 0.0, curves["matmul"], curves["conv"], passes, precision,
                  attention=fit_attention([tuple(p["shape"]) for p in attention], [p["seconds"] for p in attention]))


def _overhead_series(backend: str, dtype: str, borrows: str | None, threads: int, seconds: float,
                     cal: Calibration) -> Series | None:
    """A backend that runs another's GEMM and convolution kernels (torch.compile runs PyTorch's): what it
    changes is the call overhead, timed on a tiny chain; the kernels are those of the series it borrows."""
    base = cal.series.get(borrows) if borrows else None
    if base is None:
        cal.skipped[backend] = f"needs the {borrows} calibration for its kernels"
        return None
    module = measure.torch_module_times(backend, threads, seconds * 2, cal.clock)
    call_s = max(module["whole_1"] - module["alone_1"], 0.0)
    return Series(backend, dtype, call_s, 0.0, base.matmul, base.conv, base.passes,
                  precision=Precision.parse(dtype).element, borrowed=borrows, attention=base.attention)
