"""The ``trimnet`` command: one module per subcommand, each thin over the Python API.

Exit codes: 0 success, 2 user error (one-line message, no traceback), 1 a bug.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from trimnet.errors import TrimnetError

# subcommand -> module in trimnet.cli; a module registers its parser with ``add_parser``
COMMANDS = {
    "run": "run",
    "train": "train",
    "eval": "evaluate",
    "predict": "predict",
    "profile": "profile",
    "export": "export",
    "bench": "bench",
    "fuse": "fuse",
    "quantize": "quantize",
    "serve": "serve",
    "hardware": "hardware",
    "optimize": "optimize",
    "report": "report",
    "prune": "prune",
    "stats": "stats",
}


def build_parser() -> argparse.ArgumentParser:
    from trimnet import __version__

    parser = argparse.ArgumentParser(prog="trimnet", description="Train, measure, trim, prove and deploy neural networks.")
    parser.add_argument("--version", action="version", version=f"trimnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(f"trimnet.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"trimnet.cli.{module}":
                raise
            continue  # a subcommand not built yet
        mod.add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # our progress at INFO; other libraries' INFO chatter (onnxruntime's quantizer, NNCF) stays off the screen
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("trimnet").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        from trimnet.cli.common import split_overrides

        args.overrides = split_overrides(extra)
        return int(args.func(args) or 0)
    except TrimnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `trimnet ... | head`: the reader left; not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
