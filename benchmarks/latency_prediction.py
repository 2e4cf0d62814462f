"""How well does ``trimnet.hardware.estimate`` predict latency on this machine?

Calibrates the machine (single operations and tiny layer chains only: no zoo model is run
during calibration), then, for every (model, batch, backend) configuration below, predicts
the latency from the model's profile and measures it with the benchmark harness
(``trimnet.bench.benchmark``, median latency). Measurements are repeated in ``--rounds``
interleaved rounds (every configuration once per round) and the median of the rounds'
medians is kept, so a burst of load from other processes moves one round, not the result.

A second, load-independent check (``--cpu-check``, on by default) repeats both sides in this
process's CPU time with one thread: calibration and measurement then leave out whatever other
processes take of the cores, and show what the predictor does on a quiet machine.

    .venv/bin/python benchmarks/latency_prediction.py            # ~3-5 min; writes results/latency_prediction.json
    .venv/bin/python benchmarks/latency_prediction.py --threads 1 --rounds 3
    .venv/bin/python benchmarks/latency_prediction.py --models cnn resnet20 --no-cpu-check

Reports the share of configurations within ±10 % and ±20 % and the median absolute error,
overall and per backend, and prints markdown tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import trimnet as tn
from trimnet.bench import BenchConfig, benchmark
from trimnet.bench.env import load_average
from trimnet.hardware import estimate
from trimnet.hardware.accuracy import KIND
from trimnet.hardware.calibrate import calibrate
from trimnet.hardware.calibration import describe_machine, load_calibration, summary
from trimnet.hardware.measure import time_call
from trimnet.runtime import load_runner
from trimnet.runtime.export import export_onnx_file

# model -> (input shape without batch, classes, batch sizes, backends)
CONFIGS = {
    "cnn": ((1, 8, 8), 10, (1, 32, 256), ("torch", "onnxruntime", "openvino")),
    "mlp": ((64,), 10, (1, 256), ("torch", "onnxruntime", "openvino")),
    "lenet5": ((1, 32, 32), 10, (1, 64), ("torch", "onnxruntime", "openvino")),
    "resnet20": ((3, 32, 32), 10, (1, 16), ("torch", "onnxruntime", "openvino")),
    "mobilenetv2": ((3, 96, 96), 10, (1,), ("torch", "onnxruntime", "openvino")),
    "resnet18": ((3, 224, 224), 1000, (1,), ("torch", "onnxruntime", "openvino")),
    "transformer": ((3, 32, 32), 10, (1, 16), ("torch", "onnxruntime", "openvino")),
}
ONNX_BACKENDS = ("onnxruntime", "openvino")
OUT = Path(__file__).parent / "results" / "latency_prediction.json"


def configurations(models: list[str], backends: list[str]):
    for name in models:
        shape, _, batches, usable = CONFIGS[name]
        for backend in [b for b in usable if b in backends]:
            for batch in batches:
                yield name, shape, batch, backend


def measure_round(models: dict, use: list[str], cfg: BenchConfig) -> dict[tuple, tuple[float, float]]:
    """(p50, min) per (model, batch, backend) from the benchmark harness, every configuration once."""
    out = {}
    for name, (model, x, onnx_path) in models.items():
        _, _, batches, backends = CONFIGS[name]
        backends = [b for b in backends if b in use]
        results = []
        if any(b not in ONNX_BACKENDS for b in backends):
            results.append(benchmark(model, x, backends=[b for b in backends if b not in ONNX_BACKENDS],
                                     batch_sizes=list(batches), config=cfg))
        if any(b in ONNX_BACKENDS for b in backends):
            results.append(benchmark(onnx_path, x, backends=[b for b in backends if b in ONNX_BACKENDS],
                                     batch_sizes=list(batches), config=cfg))
        for res in results:
            for m in res.results:
                if m.status == "ok":
                    out[(name, m.batch, m.backend)] = (m.latency_ms["p50"], m.latency_ms["min"])
    return out


def cpu_time_check(models: dict, profiles: dict, args) -> dict:
    """Calibrate and measure in CPU time with one thread: what the predictor does without other load."""
    torch.set_num_threads(1)
    cal = calibrate(threads=1, clock="cpu", save=False, backends=args.backends, dtypes=["fp32"])
    rows = []
    for name, (model, x1, onnx_path) in models.items():
        for backend in [b for b in CONFIGS[name][3] if b in args.backends]:
            exported = onnx_path if backend in ONNX_BACKENDS else None
            runner = load_runner(backend, None if exported else model, x1, check=False, exported=exported, threads=1)
            try:
                for batch in CONFIGS[name][2]:
                    x = np.random.default_rng(0).standard_normal((batch, *x1.shape[1:])).astype(np.float32)
                    meas = time_call(lambda: runner.run(x), 0.3, clock="cpu") * 1e3
                    pred = estimate(profiles[name], "local", batch=batch, backend=backend, calibration=cal,
                                    error={}).latency_s * 1e3
                    rows.append({"model": name, "input_shape": [batch, *x1.shape[1:]], "batch": batch,
                                 "backend": backend, "predicted_ms": pred, "measured_ms": meas, "error": pred / meas - 1})
            finally:
                runner.close()
    return {"clock": "cpu", "threads": 1, "calibration": {"seconds": cal.seconds, "series": summary(cal)},
            "summary": stats([abs(r["error"]) for r in rows]),
            "by_backend": by_backend(rows), "configurations": rows}


def stats(errors: list[float]) -> dict:
    return {"configurations": len(errors), "within_10": sum(e <= 0.10 for e in errors) / len(errors),
            "within_20": sum(e <= 0.20 for e in errors) / len(errors), "median_abs_error": statistics.median(errors)}


def by_backend(rows: list[dict]) -> dict:
    return {b: stats([abs(r["error"]) for r in rows if r["backend"] == b]) for b in sorted({r["backend"] for r in rows})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--backends", nargs="*", default=["torch", "onnxruntime", "openvino"],
                    choices=["torch", "onnxruntime", "openvino"])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick-calibration", action="store_true")
    ap.add_argument("--reuse-calibration", action="store_true", help="use the saved local calibration")
    ap.add_argument("--no-cpu-check", dest="cpu_check", action="store_false", help="skip the CPU-time check")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    load_before = load_average()
    if args.reuse_calibration:
        cal = load_calibration("cpu", threads=args.threads)
    else:
        cal = calibrate(quick=args.quick_calibration, threads=args.threads, save=False, backends=args.backends)
    print(f"calibrated in {cal.seconds:.0f} s ({'quick' if cal.quick else 'full'}); load average {load_average()}")

    models, profiles = {}, {}
    cpu_check = None
    with tempfile.TemporaryDirectory(prefix="latency-prediction-") as tmp:
        for name in args.models:
            shape, classes, _, _ = CONFIGS[name]
            torch.manual_seed(0)
            model = tn.create_model(name, in_shape=shape, num_classes=classes).eval()
            x = torch.randn(1, *shape)
            models[name] = (model, x, export_onnx_file(model, Path(tmp) / f"{name}.onnx", x))
            profiles[name] = tn.profile(model, (1, *shape))
        cfg = BenchConfig(threads=args.threads, min_time_s=0.3, max_time_s=1.0, warmup_max_s=1.0, min_iters=10)
        rounds = []
        for r in range(args.rounds):
            rounds.append(measure_round(models, args.backends, cfg))
            print(f"round {r + 1}/{args.rounds} done at {time.perf_counter() - start:.0f} s; load {load_average()}")
        load_after = load_average()
        if args.cpu_check:
            cpu_check = cpu_time_check(models, profiles, args)
            print(f"CPU-time check done at {time.perf_counter() - start:.0f} s")

    rows = []
    for name, shape, batch, backend in configurations(args.models, args.backends):
        key = (name, batch, backend)
        measured = [rd[key][0] for rd in rounds if key in rd]
        if not measured:
            continue
        fastest = min(rd[key][1] for rd in rounds if key in rd)
        est = estimate(profiles[name], "local", batch=batch, backend=backend, calibration=cal, error={})
        meas = statistics.median(measured)
        pred = est.latency_s * 1e3
        rows.append({"model": name, "input_shape": [batch, *shape], "batch": batch, "backend": backend,
                     "predicted_ms": pred, "measured_ms": meas, "measured_rounds_ms": measured,
                     "measured_min_ms": fastest, "error": pred / meas - 1, "error_vs_min": pred / fastest - 1,
                     "bound": est.bound, "flops": est.flops,
                     "time_split_ms": {k: v * 1e3 for k, v in est.time_split().items()}})

    result = {
        "kind": KIND, "version": 1, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine("cpu", args.threads), "load_average_before": load_before,
        "load_average_after": load_after, "seconds": time.perf_counter() - start, "rounds": args.rounds,
        "calibration": {"quick": cal.quick, "seconds": cal.seconds, "created": cal.created, "series": summary(cal)},
        "summary": stats([abs(r["error"]) for r in rows]),
        "summary_vs_min": stats([abs(r["error_vs_min"]) for r in rows]),
        "by_backend": by_backend(rows),
        "configurations": rows,
        "cpu_time_check": cpu_check,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(rows, result))
    print(f"\nwrote {args.out} in {result['seconds']:.0f} s")


def _pct(s: dict) -> str:
    return (f"{s['configurations']} configurations, {100 * s['within_10']:.0f} % within ±10 %, "
            f"{100 * s['within_20']:.0f} % within ±20 %, median |error| {100 * s['median_abs_error']:.1f} %")


def markdown(rows: list[dict], result: dict) -> str:
    cpu = {(r["model"], r["batch"], r["backend"]): r for r in (result["cpu_time_check"] or {}).get("configurations", [])}
    head = "| model | input | backend | predicted ms | measured ms (p50) | error | fastest ms |"
    sep = "|---|---|---|---|---|---|---|"
    if cpu:
        head += " CPU-time: predicted ms | measured ms | error |"
        sep += "---|---|---|"
    lines = [head, sep]
    for r in rows:
        shape = "x".join(str(d) for d in r["input_shape"])
        line = (f"| {r['model']} | {shape} | {r['backend']} | {r['predicted_ms']:.3g} | {r['measured_ms']:.3g} | "
                f"{100 * r['error']:+.0f} % | {r['measured_min_ms']:.3g} |")
        c = cpu.get((r["model"], r["batch"], r["backend"]))
        if c:
            line += f" {c['predicted_ms']:.3g} | {c['measured_ms']:.3g} | {100 * c['error']:+.0f} % |"
        lines.append(line)
    lines += ["", f"wall clock, against the median: {_pct(result['summary'])}",
              f"wall clock, against the fastest call: {_pct(result['summary_vs_min'])}"]
    lines += [f"- {b}: {_pct(s)}" for b, s in result["by_backend"].items()]
    if result["cpu_time_check"]:
        c = result["cpu_time_check"]
        lines.append(f"CPU time, one thread: {_pct(c['summary'])}")
        lines += [f"- {b}: {_pct(s)}" for b, s in c["by_backend"].items()]
    lines.append(f"load average before {result['load_average_before']}, after {result['load_average_after']}; "
                 f"{result['machine']['threads']} threads")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
