"""Text classification end to end: a spam filter on a generated spam/ham CSV.

The CSV (2,400 messages by default, about 15 % spam, generated here from a fixed seed; no
download) is read with ``csv:... --data.text text --data.label label``: a BPE tokenizer is
trained on its training split and every message becomes 48 token ids. The zoo's
``text_transformer`` is trained on it, then ``trimnet.optimize`` searches pruning (whole
attention heads, FFN neurons, residual width; L1, fine-tuned with distillation) and INT8 on
onnxruntime under a one-point accuracy budget.

Reported, all from one run: test accuracy of the original and the winner; batch-1 latency of
the original exported to onnxruntime (fp32) and of the winner, timed side by side in the
search's finalist round (interleaved), and the ratio. Targets: accuracy within 1 point of
the unpruned model, and >= 3x the exported original's batch-1 speed.

    python benchmarks/text.py                       # ~10 minutes on 2 idle cores (20+ when busy)
    python benchmarks/text.py --quick               # smaller model and budget: a smoke run
    python benchmarks/text.py --write-csv messages.csv   # only write the CSV (configs/spam.yaml reads it)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CI", "1")  # no progress bars

RESULTS = Path(__file__).parent / "results" / "text.json"

SPAM = [
    "WINNER!! As a valued customer you have been selected to receive a {prize} reward. Call {num} now",
    "Free entry in a weekly draw to win {prize}. Text WIN to {short} to claim. T&Cs apply",
    "URGENT! Your mobile number has won {prize}. Claim before {day} on {num}",
    "Congratulations you have won a guaranteed {prize}! Reply CLAIM to {short}",
    "You have been chosen for a {prize} bonus, call {num} from a landline. Stop? txt STOP {short}",
    "Hot singles in your area want to meet you tonight, txt DATE to {short} only {price} per msg",
    "Your account is on hold, verify now at {url} or lose access",
    "Cheap loans approved today, no credit check, call {num}",
    "Last chance! {prize} waiting for you, just reply YES to {short}",
    "Get {prize} free with your upgrade, call {num} or visit {url}",
]
HAM = [
    "are we still on for {day}? {smile}",
    "ok I'll be at {place} in {mins} mins",
    "can you pick up {thing} on your way home",
    "sorry I missed your call, can I ring you back {day}",
    "did you see the match last night? {smile}",
    "mum says dinner is at {time}, don't be late",
    "I won the quiz at {place} last night haha",
    "running late, the bus is stuck, be there by {time}",
    "happy birthday!! have a great {day} {smile}",
    "the meeting moved to {time}, text me if that's a problem",
    "call me when you get this, nothing urgent",
    "free for lunch {day}? thinking {place}",
    "got the tickets, it was cheap so don't worry about it",
    "thanks for today, it was great to see you {smile}",
]
FILL = {
    "prize": ["£1000 cash", "£500", "£2000 prize", "holiday to Spain", "new iPhone", "£250 voucher", "cash prize"],
    "num": ["09061701461", "08712300220", "0800 123 4567", "09058095201"],
    "short": ["87121", "85023", "80062", "69669"],
    "price": ["150p", "£1.50", "50p"],
    "url": ["www.claim-now.biz", "bit.ly/verify-acct", "secure-login.co"],
    "day": ["tomorrow", "tonight", "monday", "the weekend", "friday", "later"],
    "place": ["the pub", "work", "the station", "home", "the gym", "uni", "the cafe"],
    "mins": ["5", "10", "15", "20"],
    "thing": ["milk", "bread", "the kids", "my parcel", "some wine"],
    "time": ["6", "7pm", "half 8", "noon"],
    "smile": [":)", "x", "", "lol", "xx", "!"],
}
NOISE = ["ok", "so", "hey", "pls", "u", "2", "now", "today", "yeah", "right", "call", "txt", "free", "win"]


def messages(n: int = 2400, seed: int = 0, spam_share: float = 0.15) -> list[tuple[str, str]]:
    """Deterministic spam/ham messages: templates, filled, with noise words and case changes
    mixed in (spam and ham share words such as 'free', 'call', 'win', 'urgent')."""
    r = random.Random(seed)
    rows = []
    for _ in range(n):
        spam = r.random() < spam_share
        text = r.choice(SPAM if spam else HAM).format(**{k: r.choice(v) for k, v in FILL.items()})
        words = text.split()
        for _ in range(r.randint(0, 3)):
            words.insert(r.randint(0, len(words)), r.choice(NOISE))
        if r.random() < 0.2:
            words = [w.upper() if r.random() < 0.5 else w.lower() for w in words]
        rows.append(("spam" if spam else "ham", " ".join(words)))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        w.writerows(rows)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--messages", type=int, default=2400)
    p.add_argument("--epochs", type=int, help="training epochs (default 6; --quick 3)")
    p.add_argument("--ratios", help="pruning ratios tried, comma-separated (default 0.75,0.875)")
    p.add_argument("--write-csv", metavar="PATH", help="write the generated CSV and stop")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    if args.write_csv:
        write_csv(Path(args.write_csv), messages(args.messages))
        print(f"wrote {args.messages} messages to {args.write_csv}")
        return 0

    import torch

    import trimnet as tn
    from trimnet.bench.env import describe_environment, load_average
    from trimnet.optimize.search import OptimizeConfig, optimize

    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="trimnet-text-"))
    csv_path = write_csv(tmp / "messages.csv", messages(args.messages))
    data = tn.load_dataset(f"csv:{csv_path}", text="text", label="label", seq_len=48, vocab_size=2048)
    model_opts = ({"dim": 64, "depth": 1, "heads": 2} if args.quick else {"dim": 128, "depth": 2, "heads": 4})
    model_opts["vocab_size"] = 2048
    torch.manual_seed(0)
    model = tn.create_model("text_transformer", data.in_shape, data.num_classes, **model_opts)
    t0 = time.perf_counter()
    trained = tn.train(model, data, tn.TrainConfig(epochs=args.epochs or (3 if args.quick else 6), lr=1e-3, batch_size=64,
                                                   progress=False))
    train_s = time.perf_counter() - t0
    cfg = OptimizeConfig(max_accuracy_drop=0.01, target_backend="onnxruntime", criteria=["l1"],
                         ratios=[float(r) for r in args.ratios.split(",")] if args.ratios else
                         [0.5, 0.75] if args.quick else [0.75, 0.875],
                         precisions=["fp32", "int8"], finetune_epochs=2 if args.quick else 4,
                         finetune_retry_epochs=0 if args.quick else 6,
                         time_budget_s=150 if args.quick else 900)
    t0 = time.perf_counter()
    result = optimize(trained.model, data, cfg, progress=lambda m: print("  " + m, file=sys.stderr, flush=True))
    optimize_s = time.perf_counter() - t0
    orig, best = result.original, result.best
    acc_drop = (result.original_test_accuracy or 0) - (result.test_accuracy or 0)
    speedup = orig.latency_ms / best.latency_ms if orig.latency_ms and best.latency_ms else None
    out = {
        "kind": "trimnet.benchmark.text",
        "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python " + " ".join(["benchmarks/text.py", *sys.argv[1:]]),
        "machine": {**describe_environment(), "platform": platform.platform()},
        "load_average_before": load_before, "load_average_after": load_average(),
        "data": {"messages": args.messages, "train": len(data.y_train), "val": len(data.y_val),
                 "test": len(data.y_test), "spam_share": float(data.y_train.float().mean()),
                 "seq_len": 48, "vocab": data.info["vocab"]},
        "model": {"name": "text_transformer", **model_opts, "macs": orig.macs, "params": orig.params},
        "train_seconds": train_s, "optimize_seconds": optimize_s,
        "original": {"test_accuracy": result.original_test_accuracy, "backend": orig.backend,
                     "precision": orig.precision, "latency_ms_batch1": orig.latency_ms, "macs": orig.macs},
        "winner": {"description": best.description, "test_accuracy": result.test_accuracy,
                   "backend": best.backend, "precision": best.precision, "latency_ms_batch1": best.latency_ms,
                   "macs": best.macs, "params": best.params},
        "accuracy_drop_points": 100 * acc_drop,
        "speedup_batch1_vs_exported_original": speedup,
        "targets": {"accuracy_within_1_point": acc_drop <= 0.01,
                    "speedup_at_least_3x": speedup is not None and speedup >= 3.0},
        "candidates": [{"name": c.name, "val_accuracy": c.val_accuracy, "latency_ms": c.latency_ms,
                        "accepted": c.accepted, "verdict": c.verdict} for c in result.candidates],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"original: test acc {100 * result.original_test_accuracy:.2f} %, onnxruntime fp32 batch 1 "
          f"{orig.latency_ms:.3f} ms")
    print(f"winner:   {best.description}: test acc {100 * result.test_accuracy:.2f} %, {best.latency_ms:.3f} ms "
          f"-> {speedup:.2f}x; load average {load_before} -> {out['load_average_after']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
