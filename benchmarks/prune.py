"""Structured pruning side by side: trimnet (APoZ and L1, distillation) against Torch-Pruning's
own L1 magnitude pruner, with the same fine-tuning budget.

For each model: train it, then prune the trained weights at several channel ratios with

- ``trimnet apoz+kd``: ``trimnet.optimize.prune`` with APoZ, fine-tuned with distillation;
- ``trimnet l1+kd``: the same pipeline ranking by filter L1 norm (isolates the criterion);
- ``trimnet apoz`` (75 % only): APoZ fine-tuned on labels alone (isolates distillation);
- ``..., round_to 1`` where Torch-Pruning's widths are not multiples of 8 (it does not
  round by default), so (nearly) the same widths are compared too;
- ``torch-pruning l1``: ``tp.pruner.MagnitudePruner`` with ``MagnitudeImportance(p=1)``,
  its defaults otherwise, fine-tuned on labels alone with the same optimizer, epochs and
  batch size (``trimnet.optimize.finetune`` with ``distill=False``).

Reported: test accuracy before and after fine-tuning, MACs (batch 1), parameters, and eager
PyTorch latency at batch 256 and 1, measured interleaved (every architecture once per round,
in a shuffled order; models of equal widths share one measurement), median over rounds,
speedups against the unpruned model.

    python benchmarks/prune.py                  # ~5 minutes on 2 idle cores
    python benchmarks/prune.py --quick          # fewer ratios, shorter training: a smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("CI", "1")  # no progress bars

import torch  # noqa: E402
from torch import nn  # noqa: E402

import trimnet as tn  # noqa: E402
from trimnet.optimize.finetune import FinetuneConfig, finetune  # noqa: E402
from trimnet.optimize.prune import PruneConfig, prune  # noqa: E402
from trimnet.train.evaluate import accuracy_and_loss  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "prune.json"


def accuracy(model: nn.Module, data) -> float:
    return accuracy_and_loss(model, data.x_test, data.y_test)[0]


def macs_of(model: nn.Module, x: torch.Tensor) -> int:
    return int(tn.profile(model, x[:1]).macs)


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def torch_pruning_l1(model: nn.Module, data, ratio: float, ft: FinetuneConfig) -> tuple[nn.Module, float]:
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    pruner = tp.pruner.MagnitudePruner(model, data.x_train[:2], importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=ratio, ignored_layers=[model[-1]])
    pruner.step()
    pruned = accuracy(model, data)
    finetune(model, data, FinetuneConfig(**{**ft.__dict__, "distill": False}))
    return model.cpu().eval(), pruned


def interleaved_latency(models: dict[str, nn.Module], x: torch.Tensor, rounds: int, round_s: float = 0.04,
                        seed: int = 0) -> dict[str, dict[str, float]]:
    """Median and p90 ms per call; each round runs every model for about ``round_s``, shuffled."""
    rng = random.Random(seed)
    reps, samples = {}, {name: [] for name in models}
    with torch.inference_mode():
        for name, m in models.items():
            m.eval()
            for _ in range(3):
                m(x)
            t0 = time.perf_counter()
            m(x)
            reps[name] = max(1, int(round_s / max(time.perf_counter() - t0, 1e-6)))
        names = list(models)
        for _ in range(rounds):
            rng.shuffle(names)
            for name in names:
                m, n = models[name], reps[name]
                t0 = time.perf_counter()
                for _ in range(n):
                    m(x)
                samples[name].append((time.perf_counter() - t0) / n * 1e3)
    out = {}
    for name, s in samples.items():
        s = sorted(s)
        out[name] = {"p50": statistics.median(s), "p90": s[min(len(s) - 1, int(0.9 * len(s)))]}
    return out


def architecture(model: nn.Module) -> str:
    return json.dumps(tn.to_spec(model), sort_keys=True)


def run_method(model: nn.Module, data, method: str, ratio: float, ft: FinetuneConfig, round_to: int):
    """(pruned model, accuracy right after pruning) for one method."""
    if method == "torch-pruning l1":
        return torch_pruning_l1(model, data, ratio, ft)
    criterion = "l1" if "l1" in method else "apoz"
    cfg = PruneConfig(criterion=criterion, ratio=ratio, round_to=round_to,
                      finetune=FinetuneConfig(**{**ft.__dict__, "distill": "+kd" in method}))
    res = prune(model, data, cfg)
    return res.model, res.record.accuracy["pruned"]


def run_model(label: str, data, arch: str, options: dict, epochs: int, plan: list[tuple[float, str, int]],
              ft: FinetuneConfig, rounds: int, log) -> dict:
    """``plan``: (ratio, method, round_to) rows; round_to applies to trimnet's methods."""
    torch.manual_seed(0)
    model = tn.create_model(arch, data.in_shape, data.num_classes, **options)
    t0 = time.perf_counter()
    tn.train(model, data, tn.TrainConfig(epochs=epochs, progress=False))
    train_s = time.perf_counter() - t0
    model.eval()
    x1 = data.x_test[:1]
    base = {"accuracy": accuracy(model, data), "macs": macs_of(model, x1), "params": params_of(model),
            "train_s": round(train_s, 1)}
    log(f"{label}: trained {epochs} epochs in {train_s:.0f}s, test accuracy {base['accuracy']:.4f}, "
        f"{base['macs']:,} MACs")
    rows, archs = [], {architecture(model): model}
    for ratio, method, round_to in plan:
        t0 = time.perf_counter()
        pruned, acc_pruned = run_method(model, data, method, ratio, ft, round_to)
        seconds = time.perf_counter() - t0
        key = architecture(pruned)
        archs.setdefault(key, pruned)
        row = {"method": method if round_to == 8 or "trimnet" not in method else f"{method}, round_to {round_to}",
               "ratio": ratio, "accuracy_pruned": acc_pruned, "accuracy": accuracy(pruned, data),
               "macs": macs_of(pruned, x1), "params": params_of(pruned), "seconds": round(seconds, 1),
               "widths": [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
                          for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))], "arch": key}
        rows.append(row)
        log(f"  {row['method']} @ {ratio:.0%}: accuracy {acc_pruned:.4f} -> {row['accuracy']:.4f}, "
            f"{row['macs']:,} MACs ({seconds:.0f}s)")
    # Models of the same widths run the same kernels: each architecture is timed once, all of
    # them interleaved, so equal shapes get equal figures and the noise is shared fairly.
    names = {key: f"arch{i}" for i, key in enumerate(archs)}
    latency = {}
    for batch in (256, 1):
        x = data.x_test[:batch] if len(data.x_test) >= batch else data.x_test.repeat(
            (batch + len(data.x_test) - 1) // len(data.x_test), *[1] * (data.x_test.dim() - 1))[:batch]
        latency[batch] = interleaved_latency({names[k]: m for k, m in archs.items()}, x, rounds)
    unpruned = names[architecture(model)]
    base["latency_ms"] = {str(b): latency[b][unpruned] for b in latency}
    for row in rows:
        name = names[row.pop("arch")]
        row["latency_ms"] = {str(b): latency[b][name] for b in latency}
        row["speedup"] = {str(b): latency[b][unpruned]["p50"] / latency[b][name]["p50"] for b in latency}
    return {"model": label, "arch": arch, "options": options, "dataset": data.name, "in_shape": list(data.in_shape),
            "train_epochs": epochs, "finetune": ft.__dict__, "base": base, "rows": rows}


def table(result: dict) -> str:
    b = result["base"]
    lines = [f"**{result['model']}** — unpruned: {b['accuracy']:.2%}, {b['macs'] / 1e6:.3f} M MACs, "
             f"{b['params']:,} params, batch 256 {b['latency_ms']['256']['p50']:.2f} ms, "
             f"batch 1 {b['latency_ms']['1']['p50']:.3f} ms", "",
             "| channels removed | method | acc. pruned | acc. fine-tuned | MACs (M) | params | b256 ms | b256 speedup "
             "| b1 ms | b1 speedup |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['ratio']:.0%} | {r['method']} | {r['accuracy_pruned']:.2%} | **{r['accuracy']:.2%}** | "
                     f"{r['macs'] / 1e6:.3f} | {r['params']:,} | {r['latency_ms']['256']['p50']:.2f} | "
                     f"{r['speedup']['256']:.1f}× | {r['latency_ms']['1']['p50']:.3f} | {r['speedup']['1']:.1f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer ratios and epochs: a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, as REFERENCE.md)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON results file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)

    q = args.quick
    kd, l1, plain, tp = "trimnet apoz+kd", "trimnet l1+kd", "trimnet apoz", "torch-pruning l1"

    def rows(ratios, methods, extra=()):
        return [(r, m, 8) for r in ratios for m in methods] + list(extra)

    digits = tn.load_dataset("digits")
    # at 90 % Torch-Pruning keeps int(64 * 0.1) = 6 channels where trimnet rounds to 8: a row
    # with round_to 1 compares (nearly) the same widths
    cnn_plan = rows([0.75], [kd, l1, plain, tp]) if q else (
        rows([0.5], [kd, l1, tp]) + rows([0.75], [kd, l1, plain, tp]) + rows([0.9], [kd, l1, tp], [(0.9, kd, 1)]))
    results = [run_model("digits CNN", digits, "cnn", {}, 4 if q else 15, cnn_plan,
                         FinetuneConfig(epochs=2 if q else 5, batch_size=16), 5 if q else 25, log)]
    if not q:
        digits16 = tn.load_dataset("digits", image_size=16)
        results.append(run_model("resnet20, digits 16×16", digits16, "resnet20", {}, 10,
                                 rows([0.5, 0.75], [kd, tp], [(0.75, kd, 1), (0.75, l1, 1)]),
                                 FinetuneConfig(epochs=5), 15, log))
        cancer = tn.load_dataset("breast_cancer")
        results.append(run_model("breast_cancer MLP", cancer, "mlp", {}, 15,
                                 rows([0.5, 0.75, 0.9], [kd, l1, tp]), FinetuneConfig(epochs=5, batch_size=16),
                                 25, log))
    import torch_pruning

    seconds = round(time.perf_counter() - started)
    report = {"benchmark": "prune", "quick": q, "threads": args.threads, "seconds": seconds,
              "environment": {"python": platform.python_version(), "torch": torch.__version__,
                              "torch_pruning": torch_pruning.__version__, "machine": platform.machine(),
                              "cpus": os.cpu_count()},
              "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n\n".join(table(r) for r in results))
    print(f"\n{report['seconds']} s in all, {args.threads} threads; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
