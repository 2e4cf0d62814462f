"""The headline: what a user gets from trimnet against the alternatives, side by side in one run.

For the digits CNN and the breast_cancer MLP:
  1. the trained original on PyTorch eager;
  2. the original on the best of onnxruntime / openvino fp32 (what exporting alone gives);
  3. Torch-Pruning's L1 magnitude pruner (same fine-tuning epochs) at 50 / 75 / 87.5 %, each on its
     best fp32 backend (the largest ratio within 0.5 test points of the original is marked);
  4. trimnet's winner (`tn.optimize`, target onnxruntime, batch 1).
Batch-1 latency (p50) and batch-256 throughput, measured with trimnet's bench harness.

    python benchmarks/headline.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch

import trimnet as tn
from trimnet.bench.config import BenchConfig
from trimnet.bench.harness import BackendSpec, measure_runner
from trimnet.optimize.finetune import FinetuneConfig, finetune
from trimnet.optimize.search import OptimizeConfig, optimize
from trimnet.train.evaluate import accuracy_and_loss

RESULTS = Path(__file__).parent / "results" / "headline.json"
CASES = {"digits-cnn": ("digits", "cnn", {}, 15, 64), "breast_cancer-mlp": ("breast_cancer", "mlp", {}, 30, 32)}
EXPORT_BACKENDS = ["onnxruntime", "openvino"]


def measure(model, data, backends, bench: BenchConfig) -> dict[str, dict]:
    """Per backend: p50 ms at batch 1 and samples/s at batch 256."""
    x = data.x_test
    x256 = x.repeat((256 + len(x) - 1) // len(x), *[1] * (x.dim() - 1))[:256]
    out = {}
    for backend in backends:
        res = tn.benchmark(model, x256, backends=[backend], batch_sizes=[1, 256], config=bench)
        ok = {m.batch: m for m in res.results if m.status == "ok"}
        if 1 in ok and 256 in ok:
            out[backend] = {"batch1_p50_ms": ok[1].latency_ms["p50"], "batch256_samples_per_s": ok[256].throughput}
    return out


def best_of(measured: dict[str, dict]) -> tuple[str, dict]:
    return max(measured.items(), key=lambda kv: kv[1]["batch256_samples_per_s"])


def runner_figures(runner, backend: str, data, bench: BenchConfig) -> dict:
    x = data.x_test
    x256 = x.repeat((256 + len(x) - 1) // len(x), *[1] * (x.dim() - 1))[:256]
    m1 = measure_runner(runner, x[:1].numpy(), bench, BackendSpec.parse(backend))
    m256 = measure_runner(runner, x256.numpy(), bench, BackendSpec.parse(backend))
    return {"batch1_p50_ms": m1.latency_ms["p50"], "batch256_samples_per_s": m256.throughput}


def torch_pruning_l1(model, data, ratio: float, epochs: int):
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    pruner = tp.pruner.MagnitudePruner(model, data.x_train[:2], importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=ratio, ignored_layers=[model[-1]])
    pruner.step()
    finetune(model, data, FinetuneConfig(epochs=epochs, distill=False))
    return model.cpu().eval()


def run_case(name: str, quick: bool, bench: BenchConfig, log) -> dict:
    source, arch, options, epochs, batch = CASES[name]
    data = tn.load_dataset(source)
    torch.manual_seed(0)
    model = tn.create_model(arch, data.in_shape, data.num_classes, **options)
    tn.train(model, data, tn.TrainConfig(epochs=epochs, batch_size=batch))
    model.eval()
    acc0 = accuracy_and_loss(model, data.x_test, data.y_test)[0]
    log(f"{name}: trained, test accuracy {acc0:.4f}")
    rows = []
    eager = measure(model, data, ["torch"], bench)["torch"]
    rows.append({"what": "original, PyTorch eager", "backend": "torch", "test_accuracy": acc0, **eager})
    backend, fig = best_of(measure(model, data, EXPORT_BACKENDS, bench))
    rows.append({"what": "original, exported (best fp32 runtime)", "backend": backend, "test_accuracy": acc0, **fig})

    ft_epochs = 5
    tp_rows = []
    for ratio in ([0.5, 0.75] if quick else [0.5, 0.75, 0.875]):
        m = torch_pruning_l1(model, data, ratio, ft_epochs)
        acc = accuracy_and_loss(m, data.x_test, data.y_test)[0]
        log(f"  torch-pruning L1 {ratio:.0%}: test accuracy {acc:.4f}")
        backend, fig = best_of(measure(m, data, EXPORT_BACKENDS, bench))
        tp_rows.append({"what": f"Torch-Pruning L1 {ratio:.0%} (best fp32 runtime)", "backend": backend,
                        "test_accuracy": acc, "ratio": ratio, **fig})
    # the one "at the same accuracy": the largest ratio within 0.5 points of the original
    within = [r for r in tp_rows if r["test_accuracy"] >= acc0 - 0.005]
    for r in tp_rows:
        r["within_half_point"] = r in within
        r["same_accuracy_pick"] = bool(within) and r is within[-1]
    rows += tp_rows

    cfg = OptimizeConfig(finetune_epochs=ft_epochs, criteria=["apoz", "l1"],
                         ratios=[0.5, 0.75] if quick else [0.5, 0.75, 0.875], backends=["openvino"])
    result = optimize(model, data, cfg, progress=lambda m: log("  " + m))
    best = result.best
    if result.quantized is not None:
        with result.quantized.runner() as runner:
            fig = runner_figures(runner, best.backend, data, bench)
    else:
        fig = measure(result.model, data, [best.backend], bench)[best.backend]
    rows.append({"what": f"trimnet winner: {best.description}", "backend": best.backend,
                 "test_accuracy": result.test_accuracy, **fig})
    base = rows[0]
    for r in rows:
        if r.get("batch1_p50_ms"):
            r["batch1_speedup_vs_eager"] = base["batch1_p50_ms"] / r["batch1_p50_ms"]
            r["batch256_speedup_vs_eager"] = r["batch256_samples_per_s"] / base["batch256_samples_per_s"]
    return {"case": name, "rows": rows, "optimize_seconds": result.seconds,
            "test_samples": len(data.y_test)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer ratios, shorter timing")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(2)
    bench = BenchConfig(min_time_s=0.5 if args.quick else 1.5, max_time_s=5.0, threads=2)
    started = time.perf_counter()
    cases = [run_case(name, args.quick, bench, print) for name in CASES]
    result = {"benchmark": "headline", "threads": 2, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "seconds": time.perf_counter() - started,
              "cases": cases}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for case in cases:
        print(f"\n**{case['case']}** ({case['test_samples']} test samples)\n")
        print("| model | runtime | test accuracy | batch-1 p50 (ms) | batch-256 samples/s | batch-1 vs eager | batch-256 vs eager |")
        print("|---|---|---|---|---|---|---|")
        for r in case["rows"]:
            acc = f"{100 * r['test_accuracy']:.2f} %" if r["test_accuracy"] is not None else "-"
            if r.get("same_accuracy_pick"):
                acc += " (largest ratio within 0.5 pt)"
            if r.get("batch1_p50_ms"):
                print(f"| {r['what']} | {r['backend']} | {acc} | {r['batch1_p50_ms']:.3f} | "
                      f"{r['batch256_samples_per_s']:,.0f} | {r['batch1_speedup_vs_eager']:.1f}× | "
                      f"{r['batch256_speedup_vs_eager']:.1f}× |")
            else:
                print(f"| {r['what']} | - | {acc} | - | - | - | - |")


if __name__ == "__main__":
    main()
