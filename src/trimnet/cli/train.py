"""``trimnet train``: train a model on a dataset and write a run directory."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from trimnet.cli.common import add_config_args, add_json_arg, format_table, print_json


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="train a model and write a run directory",
                       description="Train a model. Any config key can be set with a dotted flag, "
                                   "e.g. --train.epochs 15 --train.lr 3e-4 --data.seed 1.")
    add_config_args(p)
    add_json_arg(p)
    p.add_argument("--data", help="dataset: digits, breast_cancer, wine, iris, csv:PATH, npz:PATH, folder:DIR, idx:DIR, cifar:DIR")
    p.add_argument("--model", help="registered model name (see --list-models), or your own: "
                                    "path/to/file.py:function or package.module:function")
    p.add_argument("--out", help="run directory to write (default runs/DATA-MODEL)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--list-models", action="store_true", help="list the registered models and exit")
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    from trimnet.config import RunConfig, apply_overrides, from_dict, load_yaml, merge, to_dict

    base = to_dict(RunConfig())
    if args.resume:
        saved = Path(args.resume) / "config.yaml"
        base = merge(base, load_yaml(saved))
    if args.config:
        base = merge(base, load_yaml(args.config))
    shorthand = [(k, v) for k, v in (("data.source", args.data), ("model.name", args.model),
                                      ("out", args.resume or args.out)) if v is not None]
    data = apply_overrides(base, shorthand)
    data = apply_overrides(data, args.overrides)
    cfg = from_dict(RunConfig, data)
    if cfg.out is None:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{Path(cfg.data.source.split(':')[-1]).stem}-{cfg.model.name}")
        cfg.out = str(Path("runs") / slug.strip("-"))
    cfg.validate()
    return cfg



def run(args: argparse.Namespace) -> int:
    import yaml

    from trimnet.config import to_dict
    from trimnet.errors import ConfigError

    if args.list_models:
        from trimnet.models import list_models

        print("\n".join(list_models()))
        return 0
    cfg = resolve_config(args)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    from trimnet.train import distributed

    out = Path(cfg.out)
    # a worker that torchrun restarted after a failure continues from the last checkpoint
    resume = bool(args.resume) or (distributed.restarted() and (out / "checkpoints" / "last.pt").exists())
    taken = (out / "model.json").exists() or (out / "checkpoints").exists()
    if not resume and not args.overwrite and taken and distributed.is_main_process():
        raise ConfigError(f"{out} already holds a run; continue it with --resume {out}, "
                          "pass --overwrite to replace it, or choose another --out")

    import torch

    import trimnet as tn

    data = tn.load_dataset(config=cfg.data)
    torch.manual_seed(cfg.train.seed)
    model = tn.create_model(cfg.model.name, data.in_shape, data.num_classes, **cfg.model.options)
    result = tn.train(model, data, cfg.train, out, resume=resume, run_config=cfg)
    if not distributed.is_main_process():
        return 0
    if args.json:
        print_json({"out": str(out), **result.metrics})
        return 0
    m = result.metrics
    print(format_table(["run", "test accuracy", "best val accuracy", "epochs", "time (s)", "samples/s"],
                       [[str(out), m["test_accuracy"], m["best_val_accuracy"], m["epochs_run"],
                         m["train_time_s"], m["train_samples_per_s"]]]))
    return 0
