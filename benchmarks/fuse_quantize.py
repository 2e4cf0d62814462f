"""Fusion and lower precision, side by side: eager vs fused eager vs each runtime at fp32 / bf16 / int8.

Two models: the digits CNN (trained here: 15 epochs of ``tn.train``, test accuracy per
configuration) and ResNet-18 at 224x224 (random weights, speed only). Configurations are
timed in two groups, PyTorch first (eager, fused eager, fused bf16), then the runtimes
(onnxruntime and OpenVINO at fp32, bf16, int8): onnxruntime's and OpenVINO's worker threads,
once they exist in the process, slow PyTorch's next calls by up to 2x on two cores. Within
a group, configurations run round-robin: each round runs about 50 ms of every
configuration, in a rotating order, so load on a shared machine hits all of them alike; a
latency is the median over rounds, a speedup within a group the median of per-round
ratios, across groups the ratio of medians. Eager fusion is also measured A/B on one
thread (immune to another process taking a core). Quantized models come from
``tn.quantize`` (NNCF for OpenVINO INT8, ``quantize_static`` QDQ for onnxruntime INT8),
fused ones from ``tn.fuse``.

    python benchmarks/fuse_quantize.py [--threads 2] [--epochs 15] [--budget 8] [--skip-resnet]

Targets (issue): fusion alone makes eager >= 1.2x faster on both models; the best
precision + backend on digits keeps accuracy within 0.5 points and is >= 2x faster than
the same model on OpenVINO fp32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

import trimnet as tn
from trimnet.bench.env import describe_environment
from trimnet.data.dataset import Dataset, Normalization
from trimnet.optimize import QuantizeConfig, fuse, quantize
from trimnet.optimize.fuse.runtime_report import quiet_export_logs
from trimnet.optimize.quantize.torch_lowp import LowPrecision
from trimnet.runtime import load_runner
from trimnet.runtime.export import export_onnx_file

RESULTS = Path(__file__).parent / "results" / "fuse_quantize.json"


@dataclass
class Config:
    name: str
    backend: str
    precision: str  # asked for
    run: Callable[[np.ndarray], np.ndarray]
    ran: str = ""  # what the runtime reports running
    accuracy: float | None = None
    note: str = ""
    close: Callable[[], None] = lambda: None
    rounds: dict[int, list[float]] = field(default_factory=dict)  # batch -> per-round median ms


def runner_config(name: str, backend: str, precision: str, runner, note: str = "") -> Config:
    ran = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(runner.precision, runner.precision)
    return Config(name, backend, precision, runner.run, ran=ran, note=note, close=runner.close)


def torch_configs(model: nn.Module, fused: nn.Module, graph_only: nn.Module, example: torch.Tensor,
                  threads: int) -> list[Config]:
    """Eager, fused eager (all passes), fused eager in bf16, and the graph passes without ``act_fuse``."""
    out = [
        runner_config("eager", "torch", "fp32", load_runner("torch", model, example, check=False, threads=threads)),
        runner_config("eager, fused", "torch", "fp32", load_runner("torch", fused, example, check=False, threads=threads)),
        runner_config("eager, fused", "torch", "bf16",
                      load_runner("torch", LowPrecision(fused, torch.bfloat16).eval(), example, check=False,
                                  threads=threads)),
        runner_config("eager, BN folded only (no act_fuse)", "torch", "fp32",
                      load_runner("torch", graph_only, example, check=False, threads=threads)),
    ]
    out[2].ran = "bf16"
    return out


def runtime_configs(model: nn.Module, fused: nn.Module, data: Dataset, threads: int, calibration: int, tmp: Path,
                    bench_batches: tuple[int, ...], fast_calibration: bool) -> tuple[list[Config], dict]:
    """onnxruntime and OpenVINO at fp32 (the fused export), bf16 (OpenVINO's hint) and INT8 (``tn.quantize``)."""
    example = data.x_test[:2].float()
    with quiet_export_logs():
        onnx_path = export_onnx_file(fused, tmp / "fused.onnx", example)
    out = [
        runner_config("onnxruntime", "onnxruntime", "fp32",
                      load_runner("onnxruntime", None, example, exported=onnx_path, check=False, threads=threads)),
        runner_config("openvino", "openvino", "fp32",
                      load_runner("openvino", None, example, exported=onnx_path, check=False, threads=threads,
                                  precision="f32")),
        runner_config("openvino", "openvino", "bf16",
                      load_runner("openvino", None, example, exported=onnx_path, check=False, threads=threads,
                                  precision="bf16")),
    ]
    quantized = {}
    for backend in ("onnxruntime", "openvino"):
        cfg = QuantizeConfig("int8", backend=backend, calibration=calibration, keep_slower=True, threads=threads,
                             batch_sizes=bench_batches[:1], bench_time_s=0.2, fast_bias_correction=fast_calibration)
        t0 = time.perf_counter()
        result = quantize(model, data, cfg)
        print(f"   {backend} int8 built in {time.perf_counter() - t0:.0f} s: {result.summary()}", flush=True)
        quantized[backend] = {"seconds": time.perf_counter() - t0, "summary": result.summary(),
                              "parity": {k: result.parity.get(k) for k in ("sqnr_db", "max_rel", "passed")},
                              "int8_layers": result.details.get("int8_layers"), "layers": result.details.get("layers")}
        runner = result.runner(threads=threads)
        out.append(Config(backend, backend, "int8", runner.run, ran="int8", close=runner.close,
                          note=f"{result.details['int8_layers']}/{result.details['layers']} layers int8"))
    return out, {"quantize": quantized}


def accuracy(run: Callable, x: torch.Tensor, y: torch.Tensor) -> float:
    preds = [run(np.ascontiguousarray(x[i:i + 256].numpy())).argmax(1) for i in range(0, len(x), 256)]
    return float((np.concatenate(preds) == y.numpy()).mean())


def round_robin(configs: list[Config], x: np.ndarray, budget_s: float, min_rounds: int = 3) -> None:
    """Time every configuration on ``x`` in rotating rounds until ``budget_s`` is spent (at least ``min_rounds``).

    A round runs each configuration for about 50 ms (at least one call) and records the
    median call. A configuration more than 10x slower than the median one (PyTorch bf16
    emulated on a CPU without bf16 instructions) is timed in the first round only, so that
    it does not eat the budget of the others.
    """
    calls, warm = {}, {}
    for c in configs:
        c.run(x)  # first call: lazy allocation, kernel selection, compilation
        t0 = time.perf_counter()
        c.run(x)  # a warm call sizes the rounds and spots the very slow ones
        warm[id(c)] = time.perf_counter() - t0
        calls[id(c)] = max(1, min(10, int(0.05 / max(warm[id(c)], 1e-6))))
    typical = statistics.median(warm.values())
    slow = {id(c) for c in configs if warm[id(c)] > 10 * typical}
    start, r = time.perf_counter(), 0
    while r < min_rounds or (time.perf_counter() - start < budget_s and r < 200):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for c in order:
            if r > 0 and id(c) in slow:
                continue
            times = []
            for _ in range(calls[id(c)]):
                t0 = time.perf_counter_ns()
                c.run(x)
                times.append((time.perf_counter_ns() - t0) / 1e6)
            c.rounds.setdefault(len(x), []).append(statistics.median(times))
        r += 1


def ratio(a: Config, b: Config, batch: int) -> float:
    """Median over rounds of a's latency / b's latency (> 1: b is faster); rounds both took part in."""
    return statistics.median(x / y for x, y in zip(a.rounds[batch], b.rounds[batch]))


def time_group(configs: list[Config], data: Dataset, batches: tuple[int, ...], budget_s: float,
               with_accuracy: bool) -> None:
    if with_accuracy:
        for c in configs:
            c.accuracy = accuracy(c.run, data.x_test, data.y_test)
    for batch in batches:
        reps = -(-batch // len(data.x_test))
        x = np.ascontiguousarray(data.x_test.repeat(reps, *[1] * (data.x_test.dim() - 1))[:batch].numpy())
        print(f"   timing batch {batch}: {', '.join(f'{c.name} {c.precision}' for c in configs)} "
              f"(~{budget_s:.0f} s)", flush=True)
        round_robin(configs, x, budget_s)
    for c in configs:
        c.close()


def speedup(a: Config, b: Config, batch: int, paired: bool) -> float:
    """a's latency / b's: paired rounds within a group, medians across groups."""
    if paired:
        return ratio(a, b, batch)
    return statistics.median(a.rounds[batch]) / statistics.median(b.rounds[batch])


def run_model(label: str, model: nn.Module, data: Dataset, batches: tuple[int, ...], threads: int, calibration: int,
              budget_s: float, with_accuracy: bool) -> dict:
    """PyTorch configurations are timed first, alone in the process: onnxruntime's spinning workers and
    OpenVINO's threads, once they exist, slow PyTorch's next calls by up to 2x on two cores."""
    print(f"\n== {label}", flush=True)
    t0 = time.perf_counter()
    fused = fuse(model, example_inputs=data.x_test[:2].float(), inputs=data.x_test[:16]).model
    info: dict = {"fuse_s": time.perf_counter() - t0}
    graph_only = fuse(model, ["drop_identity", "bn_fold", "linear_merge"], example_inputs=data.x_test[:2].float()).model
    group_a = torch_configs(model, fused, graph_only, data.x_test[:2].float(), threads)
    time_group(group_a, data, batches, budget_s, with_accuracy)
    info["fusion_speedup_eager_1_thread"] = fusion_one_thread(model, fused, data, batches)
    with tempfile.TemporaryDirectory(prefix="trimnet-fq-") as tmp:
        # random-weight ResNet-18 is timed only: NNCF's fast bias correction halves its calibration time
        group_b, more = runtime_configs(model, fused, data, threads, calibration, Path(tmp), batches,
                                        fast_calibration=not with_accuracy)
        info.update(more)
        time_group(group_b, data, batches, budget_s, with_accuracy)
    configs = group_a + group_b
    eager, fused_c = group_a[0], group_a[1]
    ov32 = next(c for c in group_b if c.name == "openvino" and c.precision == "fp32")
    rows = []
    for c in configs:
        rows.append({"config": c.name, "backend": c.backend, "precision": c.precision, "ran": c.ran, "note": c.note,
                     "accuracy": c.accuracy,
                     "latency_ms": {b: statistics.median(c.rounds[b]) for b in batches},
                     "speedup_vs_eager": {b: speedup(eager, c, b, c in group_a) for b in batches},
                     "speedup_vs_openvino_fp32": {b: speedup(ov32, c, b, c in group_b) for b in batches},
                     "rounds": {b: len(c.rounds[b]) for b in batches}})
    out = {"model": label, "batches": list(batches), "configs": rows, **info,
           "fusion_speedup_eager": {b: ratio(eager, fused_c, b) for b in batches}}
    if with_accuracy:
        base = eager.accuracy
        ok = [r for r in rows if r["precision"] != "fp32" and r["accuracy"] is not None and base - r["accuracy"] <= 0.005]
        best = {b: max(ok, key=lambda r: r["speedup_vs_openvino_fp32"][b], default=None) for b in batches}
        out["best_lower_precision"] = {b: None if r is None else {
            "config": f"{r['config']} {r['precision']}", "accuracy": r["accuracy"],
            "speedup_vs_openvino_fp32": r["speedup_vs_openvino_fp32"][b]} for b, r in best.items()}
    return out


def fusion_one_thread(model: nn.Module, fused: nn.Module, data: Dataset, batches: tuple[int, ...]) -> dict[int, float]:
    """Eager before/after fusion, A/B interleaved on one thread (``trimnet.bench.compare``).

    On a shared 2-core machine, PyTorch's two-thread eager latency jumps by 10-100x whenever
    another process takes a core (its parallel regions wait for the descheduled thread);
    one thread is immune to that, so this figure is the steady one."""
    from trimnet.bench import BenchConfig, compare

    cfg = BenchConfig(threads=1, min_iters=5, min_time_s=2.0, max_time_s=15.0, warmup_max_s=1.0)
    res = compare(model, fused, data.x_test[:max(batches)].float(), backend_a="torch", batch_sizes=list(batches),
                  config=cfg)
    return {r.batch: 1.0 / r.ratio for r in res.results}


def digits_cnn(epochs: int, threads: int) -> tuple[nn.Module, Dataset, float]:
    data = tn.load_dataset("digits")
    torch.manual_seed(0)
    model = tn.create_model("cnn", data.in_shape, data.num_classes)
    t0 = time.perf_counter()
    tn.train(model, data, tn.TrainConfig(epochs=epochs, progress=False))
    return model.eval(), data, time.perf_counter() - t0


def resnet18_case() -> tuple[nn.Module, Dataset]:
    torch.manual_seed(0)
    model = tn.create_model("resnet18", (3, 224, 224), 1000)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():  # trained-looking BN statistics (fusion folds them either way)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    x = torch.randn(96, 3, 224, 224, generator=g)
    y = torch.randint(0, 1000, (96,), generator=g)
    data = Dataset(name="random-224", x_train=x[:64], y_train=y[:64], x_val=x[:0], y_val=y[:0], x_test=x[64:],
                   y_test=y[64:], class_names=[str(i) for i in range(1000)], kind="image",
                   normalization=Normalization(mean=[0.0] * 3, std=[1.0] * 3))
    return model.eval(), data


def table(result: dict) -> str:
    b = result["batches"]
    head = ["configuration", "runs in", "test acc."] + [f"batch {x} ms" for x in b] + \
        [f"x eager b{x}" for x in b] + [f"x OV fp32 b{x}" for x in b]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["configs"]:
        acc = "–" if r["accuracy"] is None else f"{r['accuracy'] * 100:.2f} %"
        cells = [f"{r['config']} {r['precision']}", r["ran"] + (f" ({r['note']})" if r["note"] else ""), acc]
        cells += [f"{r['latency_ms'][x]:.3g}" for x in b]
        cells += [f"{r['speedup_vs_eager'][x]:.2f}" for x in b]
        cells += [f"{r['speedup_vs_openvino_fp32'][x]:.2f}" for x in b]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--calibration", type=int, default=512, help="digits calibration samples (ResNet-18: 64)")
    ap.add_argument("--budget", type=float, default=8.0, help="seconds of round-robin timing per batch size")
    ap.add_argument("--skip-resnet", action="store_true")
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--digits-run", help="use this trained digits run instead of training one (for quick reruns)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results, train_s = [], 0.0
    if args.digits_run and not args.skip_digits:
        from trimnet.train.evaluate import dataset_of

        art = tn.load_artifact(args.digits_run)
        model, data = art.model, dataset_of(art)
    elif not args.skip_digits:
        model, data, train_s = digits_cnn(args.epochs, args.threads)
        print(f"trained the digits CNN in {train_s:.1f} s", flush=True)
    if not args.skip_digits:
        results.append(run_model("digits CNN", model, data, (1, 256), args.threads, args.calibration, args.budget,
                                 True))
    if not args.skip_resnet:
        r18, r18_data = resnet18_case()
        results.append(run_model("ResNet-18 224", r18, r18_data, (1, 32), args.threads, 64, args.budget * 2, False))
    out = {"benchmark": "fuse_quantize", "threads": args.threads, "epochs": args.epochs, "train_s": train_s,
           "seconds": time.perf_counter() - start, "environment": describe_environment(args.threads),
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    for r in results:
        print(f"\n### {r['model']} ({args.threads} threads, median ms; speedups: median of per-round ratios within "
              "a group (PyTorch; runtimes), ratio of medians across)\n")
        print(table(r))
        fusion = ", ".join(f"batch {b}: {v:.2f}x" for b, v in r["fusion_speedup_eager"].items())
        one = ", ".join(f"batch {b}: {v:.2f}x" for b, v in r["fusion_speedup_eager_1_thread"].items())
        print(f"\nfusion alone, eager: {fusion}; on 1 thread (A/B interleaved): {one} (target >= 1.2x)")
        for b, best in (r.get("best_lower_precision") or {}).items():
            if best:
                print(f"best lower precision within 0.5 points, batch {b}: {best['config']} at "
                      f"{best['accuracy'] * 100:.2f} %, {best['speedup_vs_openvino_fp32']:.2f}x openvino fp32 "
                      "(target >= 2x)")
    print(f"\ntotal {out['seconds']:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
