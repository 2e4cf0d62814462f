"""``trimnet run``: the whole path on one config: train, measure, optimize, export, bench, report."""

from __future__ import annotations

import argparse
import sys

from trimnet.cli.common import add_config_args, add_json_arg, format_table, print_json


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="train, profile, optimize, export, benchmark and report, in one go",
                       description="The main job. Without -c it runs the bundled default: the digits CNN. "
                                   "Dotted flags override the config (--optimize.max_accuracy_drop 0.01).")
    add_config_args(p, _default_config)
    add_json_arg(p)
    p.add_argument("--data", help="dataset, short for --data.source (digits, csv:PATH, npz:PATH, folder:DIR, ...)")
    p.add_argument("--model", help="model, short for --model.name (see trimnet train --list-models)")
    p.add_argument("--out", help="run directory (default runs/DATA-MODEL-run); an interrupted run resumes there")
    p.add_argument("--from", dest="train_from", metavar="RUN_DIR", help="start from a trained run instead of training")
    p.set_defaults(func=run)


def _default_config():
    from trimnet.pipeline import PipelineConfig

    return PipelineConfig()


def run(args: argparse.Namespace) -> int:
    import yaml

    from trimnet.config import to_dict
    from trimnet.pipeline import load_pipeline_config, run_pipeline
    from trimnet.report.summary import summary_headers, summary_notes, summary_table

    short = [(k, v) for k, v in (("data.source", args.data), ("model.name", args.model)) if v is not None]
    cfg = load_pipeline_config(args.config, short + args.overrides, out=args.out, train_from=args.train_from)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    from trimnet.cli.common import check_out, new_run_dir

    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.json else (lambda msg: print(msg, flush=True))
    with new_run_dir(check_out(cfg.out)):
        result = run_pipeline(cfg, say=say)
    if args.json:
        print_json({"out": str(result.out), "report": str(result.report) if result.report else None,
                    **{k: result.summary[k] for k in ("original", "winner", "summary_rows", "interference", "stages",
                                          "total_seconds")}})
        return 0
    print()
    print(format_table(summary_headers(result.summary), summary_table(result.summary)))
    print("\n" + "\n".join(summary_notes(result.summary)))
    print(" · ".join(f"{s['name']} {s['seconds']:.1f}s" for s in result.summary["stages"]),
          f"· total {result.summary['total_seconds']:.0f}s")
    print(f"winner: {result.out / 'best'}" + (f"   report: {result.report}" if result.report else ""))
    return 0
