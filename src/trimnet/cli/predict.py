"""``trimnet predict``: class predictions for inputs in a file or folder."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from trimnet.cli.common import add_json_arg, format_table, print_json


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="predict classes for a .npz/.npy/.csv file, an image or a folder of images",
                       description="Inputs are raw (as in the training files); the run's normalization is applied.")
    p.add_argument("run_dir", help="run directory (from trimnet train)")
    p.add_argument("--input", required=True, help="inputs: .npz (array x), .npy, .csv (features), image, or folder")
    p.add_argument("--label", help="csv: a label column to ignore")
    p.add_argument("--out", help="write predictions to this CSV file instead of printing them")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trimnet as tn
    from trimnet.artifact import atomic_write
    from trimnet.data.inputs import read_inputs

    artifact = tn.load_artifact(args.run_dir)
    x, sources = read_inputs(args.input, artifact.in_shape, args.label)
    preds = tn.predict(artifact, x)
    preds.sources = sources
    rows = preds.to_dict()["predictions"]
    if args.out:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["index", "source", "label", "class", "confidence"])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(Path(args.out), buf.getvalue())
        print(f"wrote {len(rows)} predictions to {args.out}")
    elif args.json:
        print_json(preds.to_dict())
    else:
        print(format_table(["input", "class", "confidence"], [[r["source"], r["class"], r["confidence"]] for r in rows]))
    return 0
