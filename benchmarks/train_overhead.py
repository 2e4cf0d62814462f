"""trimnet's training throughput against a minimal hand-written PyTorch loop.

Same model, data, batch size, optimizer and epochs; the two run interleaved (A B A B ...)
so that noise on a shared machine hits both alike, and the reported figure is the median
of the per-pair ratios. trimnet's side includes everything ``tn.train`` does (input
check, per-step NaN check, accuracy bookkeeping, final test evaluation).

    python benchmarks/train_overhead.py [--repeats 5] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

import trimnet as tn

CASES = {
    "digits-cnn": ("digits", "cnn", {}),
    "digits-mlp": ("digits", "mlp", {"hidden": [256, 128]}),
    "breast_cancer-mlp": ("breast_cancer", "mlp", {}),
}


def hand_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int,
              lr: float) -> tuple[float, list[float]]:
    """Wall time of the whole loop and of each epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    model.train()
    per_epoch = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        per_epoch.append(time.perf_counter() - t0)
    return time.perf_counter() - start, per_epoch


def trimnet_loop(model: nn.Module, data, epochs: int, batch: int, lr: float) -> tuple[float, list[float]]:
    start = time.perf_counter()
    result = tn.train(model, data, tn.TrainConfig(epochs=epochs, batch_size=batch, lr=lr, progress=False))
    return time.perf_counter() - start, [row["time_s"] for row in result.history]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_overhead.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for case, (source, arch, options) in CASES.items():
        data = tn.load_dataset(source, val_split=0.0)  # no per-epoch validation: the same work on both sides
        n = len(data.y_train) * args.epochs
        ratios, epoch_ratios, hand_sps, ours_sps = [], [], [], []
        for r in range(args.repeats + 1):
            torch.manual_seed(r)
            m1 = tn.create_model(arch, data.in_shape, data.num_classes, **options)
            m2 = tn.create_model(arch, data.in_shape, data.num_classes, **options)
            m2.load_state_dict(m1.state_dict())
            t_hand, e_hand = hand_loop(m1, data.x_train, data.y_train, args.epochs, args.batch, 1e-3)
            t_ours, e_ours = trimnet_loop(m2, data, args.epochs, args.batch, 1e-3)
            if r == 0:
                continue  # warm-up pair
            ratios.append(t_hand / t_ours)
            epoch_ratios.extend(a / b for a, b in zip(e_hand, e_ours))
            hand_sps.append(n / t_hand)
            ours_sps.append(n / t_ours)
        row = {"case": case, "samples_per_epoch": len(data.y_train), "epochs": args.epochs, "batch": args.batch,
               "hand_samples_per_s": statistics.median(hand_sps), "trimnet_samples_per_s": statistics.median(ours_sps),
               "ratio_median": statistics.median(ratios), "epoch_ratio_median": statistics.median(epoch_ratios),
               "ratios": ratios}
        results.append(row)
        print(f"{case:20s} hand {row['hand_samples_per_s']:9.0f}/s  trimnet {row['trimnet_samples_per_s']:9.0f}/s  "
              f"ratio {row['ratio_median']:.3f}  per-epoch ratio {row['epoch_ratio_median']:.3f}")
    out = {"benchmark": "train_overhead", "threads": args.threads, "repeats": args.repeats,
           "torch": torch.__version__, "machine": platform.processor() or platform.machine(), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("\n| model | samples/epoch | hand loop (samples/s) | trimnet (samples/s) | whole call, ratio | "
          "per epoch, ratio |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['samples_per_epoch']} | {r['hand_samples_per_s']:.0f} | "
              f"{r['trimnet_samples_per_s']:.0f} | {r['ratio_median']:.3f} | {r['epoch_ratio_median']:.3f} |")


if __name__ == "__main__":
    main()
