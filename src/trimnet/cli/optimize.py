"""``trimnet optimize``: search pruning, fusion and precision for the fastest model within an accuracy budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from trimnet.cli.common import add_config_args, add_json_arg, format_table, print_config, print_json, section_config


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="find the fastest trimmed model within an accuracy budget",
                       description="Chooses by measured latency on the target backend and batch. "
                                   "Any OptimizeConfig field can be set with --optimize.FIELD VALUE.")
    p.add_argument("run_dir", nargs="?", help="a trained run directory")
    add_config_args(p, _default_config, "optimize.")
    p.add_argument("--max-accuracy-drop", type=float, help="absolute validation accuracy the result may lose (0.005)")
    p.add_argument("--target", help="backend latency is measured on (onnxruntime, openvino, torch, ...)")
    p.add_argument("--batch", type=int, help="batch size latency is measured at")
    p.add_argument("--time-budget", type=float, help="seconds the search may take")
    p.add_argument("--out", help="where the winner and the search cache go (default RUN_DIR-optimized)")
    add_json_arg(p)
    p.set_defaults(func=run)


def _default_config():
    from trimnet.optimize.search import OptimizeConfig

    return OptimizeConfig()


def run(args: argparse.Namespace) -> int:
    import trimnet as tn
    from trimnet.errors import ConfigError
    from trimnet.optimize.search import OptimizeConfig, optimize
    from trimnet.optimize.result import save_winner
    from trimnet.train.evaluate import dataset_of

    # --max-accuracy-drop is short for --optimize.max_accuracy_drop, and so on
    flags = {"max_accuracy_drop": args.max_accuracy_drop, "target_backend": args.target, "batch": args.batch,
             "time_budget_s": args.time_budget}
    cfg = section_config(OptimizeConfig, "optimize", args.config, flags, args.overrides, "optimize")
    if args.print_config:
        print_config(cfg, "optimize")
        return 0
    if not args.run_dir:
        raise ConfigError("pass the run directory to optimize, e.g. trimnet optimize runs/digits-cnn")
    art = tn.load_artifact(args.run_dir, rebuild=True)
    out = Path(args.out or f"{str(args.run_dir).rstrip('/')}-optimized")
    result = optimize(art.model, dataset_of(art), cfg, out=out, progress=None if args.json else print)
    save_winner(result, art, out / "best")
    if args.json:
        print_json({"out": str(out / "best"), **result.to_dict()})
        return 0
    rows = [[c.description, c.val_accuracy, c.macs, c.latency_ms, c.verdict] for c in result.candidates]
    print(format_table(["candidate", "val acc", "MACs", "latency ms", "verdict"], rows))
    print(f"\nwinner: {result.best.description}; {result.speedup or 1:.2f}x faster than the original on "
          f"{cfg.target_backend}; test accuracy {result.test_accuracy:.4f} (original "
          f"{result.original_test_accuracy:.4f}); written to {out / 'best'}")
    return 0
