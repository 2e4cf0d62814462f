"""The headline: what a user gets from trimnet against the alternatives, side by side in one run.

For the digits CNN and the breast_cancer MLP:
  1. the trained original on PyTorch eager;
  2. the original on the best of onnxruntime / openvino fp32 (what exporting alone gives);
  3. Torch-Pruning's L1 magnitude pruner at 50 / 75 / 87.5 %, fine-tuned 5 epochs, or 20 where 5 leave it
     more than half a point below the original on the test split (the search's own two budgets), each on
     its best fp32 backend (the largest ratio within 0.5 test points of the original is marked);
  4. trimnet's winner (`tn.optimize`, target onnxruntime, batch 1).
Batch-1 latency and batch-256 throughput. PyTorch eager is timed first and alone (other runtimes'
threads slow it once they exist in the process); then each runtime in turn times its models in
the same interleaved rounds (``trimnet.bench.rounds``): the median of per-round medians.

    python benchmarks/headline.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import trimnet as tn
from trimnet.bench.env import describe_environment
from trimnet.bench.rounds import rounds
from trimnet.runtime import load_runner
from trimnet.optimize.finetune import FinetuneConfig, finetune
from trimnet.optimize.search import OptimizeConfig, optimize
from trimnet.train.evaluate import accuracy_and_loss

RESULTS = Path(__file__).parent / "results" / "headline.json"
CASES = {"digits-cnn": ("digits", "cnn", {}, 15, 64), "breast_cancer-mlp": ("breast_cancer", "mlp", {}, 30, 32)}
EXPORT_BACKENDS = ["onnxruntime", "openvino"]


def batches(data) -> dict[int, np.ndarray]:
    x = data.x_test.float()
    x256 = x.repeat((256 + len(x) - 1) // len(x), *[1] * (x.dim() - 1))[:256]
    return {1: np.ascontiguousarray(x[:1].numpy()), 256: np.ascontiguousarray(x256.numpy())}


def time_side_by_side(named_runners: list[tuple[str, object]], data, seconds: float) -> dict[str, dict]:
    """Batch-1 p50 (median of per-round medians) and batch-256 samples/s, every runner in the same rounds."""
    out = {name: {} for name, _ in named_runners}
    runners = [r for _, r in named_runners]
    for batch, x in batches(data).items():
        timed = rounds(runners, x, seconds=seconds, slice_s=0.1)
        for (name, _), t in zip(named_runners, timed):
            ms = statistics.median(t)
            out[name]["batch1_p50_ms" if batch == 1 else "batch256_samples_per_s"] = ms if batch == 1 else 256e3 / ms
    return out


def torch_pruning_l1(model, data, ratio: float, epochs: int):
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    pruner = tp.pruner.MagnitudePruner(model, data.x_train[:2], importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=ratio, ignored_layers=[model[-1]])
    pruner.step()
    finetune(model, data, FinetuneConfig(epochs=epochs, distill=False))
    return model.cpu().eval()


def run_case(name: str, quick: bool, seconds: float, log) -> dict:
    source, arch, options, epochs, batch = CASES[name]
    data = tn.load_dataset(source)
    torch.manual_seed(0)
    model = tn.create_model(arch, data.in_shape, data.num_classes, **options)
    tn.train(model, data, tn.TrainConfig(epochs=epochs, batch_size=batch))
    model.eval()
    acc0 = accuracy_and_loss(model, data.x_test, data.y_test)[0]
    log(f"{name}: trained, test accuracy {acc0:.4f}")
    example = data.x_test[:1].float()
    # PyTorch eager first and alone: once onnxruntime's or OpenVINO's worker threads exist in the
    # process (the search below creates them), PyTorch's own calls get slower on two cores
    eager_runner = load_runner("torch", model, example, check=False)
    eager = time_side_by_side([("eager", eager_runner)], data, seconds)["eager"]
    eager_runner.close()
    rows = [{"what": "original, PyTorch eager", "backend": "torch", "test_accuracy": acc0, **eager}]

    ft_epochs, retry_epochs = 5, 20
    tp_models = []
    for ratio in ([0.5, 0.75] if quick else [0.5, 0.75, 0.875]):
        # the same fine-tune budgets the search has: 5 epochs, and 20 for a ratio that misses half a point
        m = torch_pruning_l1(model, data, ratio, ft_epochs)
        acc = accuracy_and_loss(m, data.x_test, data.y_test)[0]
        log(f"  torch-pruning L1 {ratio:.0%}, {ft_epochs} epochs: test accuracy {acc:.4f}")
        if acc < acc0 - 0.005:
            longer = torch_pruning_l1(model, data, ratio, retry_epochs)
            acc_longer = accuracy_and_loss(longer, data.x_test, data.y_test)[0]
            log(f"  torch-pruning L1 {ratio:.0%}, {retry_epochs} epochs: test accuracy {acc_longer:.4f}")
            if acc_longer > acc:
                m, acc = longer, acc_longer
        tp_models.append((ratio, m, acc))

    cfg = OptimizeConfig(finetune_epochs=ft_epochs, finetune_retry_epochs=retry_epochs, criteria=["apoz", "l1"],
                         ratios=[0.5, 0.75] if quick else [0.5, 0.75, 0.875], backends=["openvino"])
    result = optimize(model, data, cfg, progress=lambda m: log("  " + m))
    best = result.best

    # then one runtime at a time, its models in the same interleaved rounds: the original and each
    # Torch-Pruning model (the faster runtime is reported) and, on its runtime, the winner as it
    # ships. Runtimes are not mixed within rounds: on two cores one runtime's spinning worker
    # threads slow the next runtime's calls.
    figs = {}
    for backend in EXPORT_BACKENDS:
        named = [(f"original@{backend}", load_runner(backend, model, example, check=False))]
        named += [(f"tp{ratio}@{backend}", load_runner(backend, m, example, check=False)) for ratio, m, _ in tp_models]
        if best.backend == backend:
            named.append(("winner", result.quantized.runner() if result.quantized is not None
                          else load_runner(backend, result.model, example, check=False)))
        try:
            figs.update(time_side_by_side(named, data, seconds))
        finally:
            for _, r in named:
                r.close()
            del named
            gc.collect()

    def best_backend(prefix: str) -> tuple[str, dict]:
        return max(((b, figs[f"{prefix}@{b}"]) for b in EXPORT_BACKENDS), key=lambda kv: kv[1]["batch256_samples_per_s"])

    backend, fig = best_backend("original")
    rows.append({"what": "original, exported (best fp32 runtime)", "backend": backend, "test_accuracy": acc0, **fig})
    within = [ratio for ratio, _, acc in tp_models if acc >= acc0 - 0.005]
    for ratio, _, acc in tp_models:
        backend, fig = best_backend(f"tp{ratio}")
        rows.append({"what": f"Torch-Pruning L1 {ratio:.0%} (best fp32 runtime)", "backend": backend,
                     "test_accuracy": acc, "ratio": ratio, "within_half_point": ratio in within,
                     "same_accuracy_pick": bool(within) and ratio == within[-1], **fig})
    rows.append({"what": f"trimnet winner: {best.description}", "backend": best.backend,
                 "test_accuracy": result.test_accuracy, **figs["winner"]})
    base = rows[0]
    for r in rows:
        r["batch1_speedup_vs_eager"] = base["batch1_p50_ms"] / r["batch1_p50_ms"]
        r["batch256_speedup_vs_eager"] = r["batch256_samples_per_s"] / base["batch256_samples_per_s"]
    return {"case": name, "rows": rows, "optimize_seconds": result.seconds, "test_samples": len(data.y_test)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer ratios, shorter timing")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    cases = [run_case(name, args.quick, 2.0 if args.quick else 8.0, print) for name in CASES]
    result = {"benchmark": "headline", "threads": 2, "seconds": time.perf_counter() - started,
              "environment": describe_environment(2), "cases": cases}
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
            print(f"| {r['what']} | {r['backend']} | {acc} | {r['batch1_p50_ms']:.3f} | "
                  f"{r['batch256_samples_per_s']:,.0f} | {r['batch1_speedup_vs_eager']:.1f}× | "
                  f"{r['batch256_speedup_vs_eager']:.1f}× |")


if __name__ == "__main__":
    main()
