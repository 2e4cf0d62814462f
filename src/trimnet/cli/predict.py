"""``trimnet predict``: class predictions (or a regression model's values) for inputs in a file or folder."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from trimnet.cli.common import add_json_arg, format_table, print_json


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="predict classes for a .npz/.npy/.csv file, an image or a folder of images",
                       description="Inputs are raw (as in the training files); the run's normalization is applied.")
    p.add_argument("run_dir", help="run directory (from trimnet train); with --url, the model's name on the server "
                                   "(a run directory stands for its name)")
    p.add_argument("--input", required=True, help="inputs: .npz (array x), .npy, .csv (features), image, or folder")
    p.add_argument("--label", help="csv: a label column to ignore")
    p.add_argument("--text-column", help="a text model: the CSV column of raw text (default: the training "
                                         "column, else 'text'); a .txt file is one text per line")
    p.add_argument("--out", help="write predictions to this CSV file instead of printing them")
    p.add_argument("--url", help="predict through a running `trimnet serve` (e.g. http://127.0.0.1:8000) "
                                 "instead of loading the model here")
    p.add_argument("--token", help="bearer token for --url (default: $TRIMNET_SERVE_TOKEN)")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trimnet as tn
    from trimnet.artifact import atomic_write
    from trimnet.data.inputs import read_inputs

    if args.out:
        from trimnet.cli.common import check_out_file

        check_out_file(args.out)
    if args.url:
        preds, sources = _remote(args)
    else:
        artifact = tn.load_artifact(args.run_dir)
        if artifact.reads_text:  # raw text, tokenized with the run's tokenizer.json
            from trimnet.data.text import read_texts

            texts, sources = read_texts(args.input, args.text_column or artifact.meta.get("data", {}).get("text"))
            x = artifact.encode_text(texts)
        else:
            x, sources = read_inputs(args.input, artifact.in_shape, args.label)
        preds = tn.predict(artifact, x)
    preds.sources = sources
    rows = preds.to_dict()["predictions"]
    # a regression model predicts values, a classifier classes
    columns = ["value"] if preds.values is not None else ["class", "confidence"]
    if args.out:
        buf = io.StringIO()
        fields = ["index", "source", "value"] if preds.values is not None else [
            "index", "source", "label", "class", "confidence"]
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(Path(args.out), buf.getvalue())
        print(f"wrote {len(rows)} predictions to {args.out}")
    elif args.json:
        print_json(preds.to_dict())
    else:
        print(format_table(["input", *columns], [[r["source"], *(r[c] for c in columns)] for r in rows]))
    return 0


def _remote(args: argparse.Namespace):
    """Predictions from a server: the model's input shape comes from its metadata."""
    import os

    from trimnet.data.inputs import read_inputs
    from trimnet.serve.client import infer_remote, remote_metadata
    from trimnet.serve.config import TOKEN_ENV

    model = Path(args.run_dir).name
    token = args.token or os.environ.get(TOKEN_ENV) or None
    meta = remote_metadata(args.url, model, token=token)
    in_shape = tuple(meta["inputs"][0]["shape"][1:])
    x, sources = read_inputs(args.input, in_shape, args.label)
    return infer_remote(args.url, model, x, token=token), sources
