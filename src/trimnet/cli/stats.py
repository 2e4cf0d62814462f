"""``trimnet stats``: activation statistics of a trained model, per activation and channel."""

from __future__ import annotations

import argparse

from trimnet.cli.common import add_json_arg, format_table, print_json


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="activation statistics: how often each channel fires; never-active units",
                       description="Run calibration inputs through a trained model and report, for every "
                                   "activation (ReLU, GELU, ...), per channel: the average percentage of zeros "
                                   "(APoZ), mean and max output, the share of samples it fires on, and the "
                                   "channels that never fire. GELU/SiLU never output exact zeros: a unit fires "
                                   "when its output exceeds --threshold (default 0, i.e. a positive input).")
    p.add_argument("run_dir", help="run directory (from trimnet train)")
    p.add_argument("--samples", type=int, default=1024, help="calibration samples (default 1024)")
    p.add_argument("--split", default="train", choices=["train", "val", "test"], help="split to read (default train)")
    p.add_argument("--threshold", type=float, default=0.0, help="a unit fires when its output exceeds this (default 0)")
    p.add_argument("--batch-size", type=int, default=256, help="calibration batch size (default 256)")
    p.add_argument("--per-channel", action="store_true", help="with --json: include every channel's figures")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trimnet as tn
    from trimnet.errors import DataError
    from trimnet.optimize.stats import activation_stats
    from trimnet.train.evaluate import dataset_of

    import math

    if not math.isfinite(args.threshold):
        raise DataError(f"--threshold must be a finite number (a unit fires above it); got {args.threshold}")
    art = tn.load_artifact(args.run_dir)
    if not art.meta.get("data"):
        raise DataError(f"{art.path} records no dataset to calibrate on; use trimnet.optimize.stats.activation_stats "
                        "(model, inputs) from Python")
    stats = activation_stats(art.model, dataset_of(art), samples=args.samples, batch_size=args.batch_size,
                             threshold=args.threshold, split=args.split)
    report = {"run": str(art.path), "split": args.split, **stats.to_dict(per_channel=args.per_channel)}
    if args.json:
        print_json(report)
        return 0
    print(format_report(report))
    return 0


def format_report(report: dict) -> str:
    rows = [[s["name"], s["type"], s["source"] or "-", s["channels"], s["apoz"], s["never_active"], s["mean"],
             s["max"], s["fire_rate"]] for s in report["sites"]]
    lines = [f"{report['run']}: {report['samples']} {report['split']} samples, a unit fires when its output "
             f"> {report['threshold']:g}", ""]
    if not rows:
        lines.append("no activation modules (ReLU, GELU, SiLU, ...) to measure")
        return "\n".join(lines)
    lines.append(format_table(["activation", "type", "after", "channels", "APoZ", "never active", "mean", "max",
                               "fires on"], rows))
    lines.append("")
    lines.append(f"never-active units: {report['never_active']} of {report['channels']}")
    for s in report["sites"]:
        dead = s["never_active_channels"]
        if dead:
            shown = ", ".join(str(i) for i in dead[:16]) + (", ..." if len(dead) > 16 else "")
            lines.append(f"  {s['name']} (after {s['source'] or '-'}): {shown}")
    return "\n".join(lines)
