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
    add_config_args(p, _default_config)
    add_json_arg(p)
    p.add_argument("--data", help="dataset: digits, breast_cancer, wine, iris, csv:PATH, npz:PATH, folder:DIR, idx:DIR, cifar:DIR")
    p.add_argument("--model", help="registered model name (see --list-models), or your own: "
                                    "path/to/file.py:function or package.module:function")
    p.add_argument("--out", help="run directory to write (default runs/DATA-MODEL)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--list-models", action="store_true", help="list the registered models and exit")
    p.set_defaults(func=run)


def _default_config():
    from trimnet.config import RunConfig

    return RunConfig()


def resolve_config(args: argparse.Namespace):
    from trimnet.config import RunConfig, apply_overrides, from_dict, load_yaml, merge, to_dict

    base = to_dict(RunConfig())
    if args.resume:
        from trimnet.errors import ConfigError

        if not Path(args.resume).is_dir():
            raise ConfigError(f"--resume {args.resume} is not a run directory; pass the --out of the run to continue")
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"{args.resume} holds no config.yaml, so it is not a run trimnet train started; "
                              "start it without --resume")
        base = merge(base, load_yaml(saved, flag="--resume"))
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
    import logging

    from trimnet.cli.common import check_out, new_run_dir
    from trimnet.files import clean_stale
    from trimnet.train import distributed
    from trimnet.train.checkpoint import LAST

    out = check_out(cfg.out, "--resume" if args.resume else "--out")
    has_checkpoint = (out / "checkpoints" / LAST).exists()
    # a worker that torchrun restarted after a failure continues from the last checkpoint
    resume = bool(args.resume) or (distributed.restarted() and has_checkpoint)
    if resume and not has_checkpoint:
        # killed before its first checkpoint: nothing to continue, so it starts from the beginning
        logging.getLogger("trimnet").info("%s holds no checkpoint yet; training starts from the beginning", out)
        resume = False
    taken = (out / "model.json").exists() or has_checkpoint
    if not args.resume and not resume and not args.overwrite and taken and distributed.is_main_process():
        raise ConfigError(f"{out} already holds a run; continue it with --resume {out}, "
                          "pass --overwrite to replace it, or choose another --out")
    if distributed.is_main_process():  # what a killed writer left behind
        clean_stale(out, ("config.yaml", "model.json", "model.safetensors", "model.pt2", "metrics.json",
                          "metrics.jsonl", "metrics.csv"))
        clean_stale(out / "checkpoints", (LAST,))

    import torch

    import trimnet as tn
    from trimnet.models.checked import create_checked

    with new_run_dir(out):
        data = tn.load_dataset(config=cfg.data)
        torch.manual_seed(cfg.train.seed)
        model = create_checked(cfg.model.name, data.in_shape, data.num_classes, **cfg.model.options)
        result = tn.train(model, data, cfg.train, out, resume=resume, run_config=cfg)
    if not distributed.is_main_process():
        return 0
    if args.json:
        print_json({"out": str(out), **result.metrics})
        return 0
    m = result.metrics
    metric = m.get("metric", "accuracy")
    # a "higher is better" metric such as neg_mae is shown as the error it negates
    sign, shown = (-1, metric[4:].upper()) if metric.startswith("neg_") else (1, metric)

    def value(key: str) -> float | None:
        return None if m.get(key) is None else sign * m[key]

    print(format_table(["run", f"test {shown}", f"best val {shown}", "epochs", "time (s)", "samples/s"],
                       [[str(out), value(f"test_{metric}"), value(f"best_val_{metric}"), m["epochs_run"],
                         m["train_time_s"], m["train_samples_per_s"]]]))
    return 0
