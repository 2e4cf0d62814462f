"""``trimnet eval``: accuracy, per-class precision/recall and the confusion matrix of a run."""

from __future__ import annotations

import argparse

from trimnet.cli.common import add_json_arg, format_table, print_json


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="evaluate a run directory on its test split",
                       description="Evaluate a trained model on the dataset it was trained on (or --data).")
    p.add_argument("run_dir", help="run directory (from trimnet train)")
    p.add_argument("--data", help="evaluate on another dataset source instead (same classes and input shape)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--backend", default="torch", help="runtime to evaluate through (torch, onnxruntime, openvino, ...)")
    p.add_argument("--batch-size", type=int, default=1024)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trimnet as tn

    from trimnet.errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {args.batch_size}")
    artifact = tn.load_artifact(args.run_dir)
    data = tn.load_dataset(args.data) if args.data else None
    if data is not None and (tuple(data.in_shape) != artifact.in_shape
                             or len(data.class_names) != len(artifact.class_names)):
        raise ConfigError(f"--data {args.data} has inputs {tuple(data.in_shape)} and {len(data.class_names)} classes "
                          f"but the model takes {artifact.in_shape} and has {len(artifact.class_names)}; "
                          "pass data shaped like the training data")
    ev = tn.evaluate(artifact, data, split=args.split, backend=args.backend, batch_size=args.batch_size)
    if args.json:
        print_json(ev.to_dict())
        return 0
    print(f"{artifact.path}: {ev.split} accuracy {ev.accuracy:.4f} on {ev.samples} samples "
          f"(loss {ev.loss:.4f}, backend {ev.backend})\n")
    rows = [[name, c["precision"], c["recall"], c["f1"], c["support"]] for name, c in ev.per_class.items()]
    print(format_table(["class", "precision", "recall", "f1", "support"], rows))
    names = list(ev.per_class)
    print("\nconfusion (rows: true, columns: predicted)")
    print(format_table(["true \\ pred", *names], [[n, *row] for n, row in zip(names, ev.confusion)]))
    return 0
