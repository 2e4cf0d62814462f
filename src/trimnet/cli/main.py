"""The ``trimnet`` command: one module per subcommand, each thin over the Python API.

Exit codes: 0 success, 2 user error (one-line message, no traceback), 1 a bug.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

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
    "completion": "completion",
}


def build_parser():
    from trimnet import __version__
    from trimnet.cli.common import FLAG_STYLE, TrimnetParser

    parser = TrimnetParser(prog="trimnet", description="Train, measure, trim, prove and deploy neural networks.",
                           epilog=FLAG_STYLE)
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
    parser.subcommands = sub.choices
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:  # before building the parser: no subcommand module is imported
        from trimnet import __version__

        print(f"trimnet {__version__}")
        return 0
    try:
        with warnings.catch_warnings():
            if not {"-v", "--verbose"} & set(argv):  # libraries' warnings are for -v; a user sees trimnet's lines
                warnings.simplefilter("ignore")
            return _main(argv)
    except TrimnetError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        from trimnet.files import disk_error

        clean = disk_error(exc)
        if clean is None:
            raise
        print(f"error: {clean}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; use a smaller model, batch size or input (see --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    from trimnet.cli.common import normalize_flags, split_overrides

    parser = build_parser()
    # dotted config keys are taken out first, so that their values are never read as positionals
    argv, dotted = _take_dotted(normalize_flags(argv))
    args, extra = parser.parse_known_args(argv)
    # our progress at INFO; other libraries' INFO chatter (onnxruntime's quantizer, NNCF) stays off the screen
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("trimnet").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.command is None:
        parser.print_help()
        print("error: no command given; choose one of the commands above, e.g. trimnet run", file=sys.stderr)
        return 2
    try:
        args.overrides = split_overrides(extra, _known_flags(parser.subcommands[args.command])) + dotted
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `trimnet ... | head`: the reader left; not an error
        sys.stderr.close()
        return 0


def _take_dotted(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """``[..., "--train.epochs", "5", ...]`` -> the rest, and ``[("train.epochs", "5")]``."""
    from trimnet.errors import ConfigError

    rest, pairs, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg[2:].split("=", 1)[0]
        if arg.startswith("--") and "." in name:
            if "=" in arg:
                pairs.append((name, arg.split("=", 1)[1]))
            elif i + 1 < len(argv):
                pairs.append((name, argv[i + 1]))
                i += 1
            else:
                raise ConfigError(f"{arg} needs a value, like {arg} 5")
            i += 1
            continue
        rest.append(arg)
        i += 1
    return rest, pairs


def _known_flags(sub) -> list[str]:
    flags = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    if sub.config_keys is not None:
        flags += [f"--{k}" for k, _ in sub.config_keys()]
    return flags


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
