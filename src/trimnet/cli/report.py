"""``trimnet report``: (re)build report.html from a run directory's summary.json."""

from __future__ import annotations

import argparse


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="(re)build report.html of a `trimnet run` directory")
    p.add_argument("run_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trimnet.report import build_report

    print(build_report(args.run_dir))
    return 0
