"""What the subcommands share: config files, dotted overrides, JSON output."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Sequence

from trimnet.errors import ConfigError

FLAG_STYLE = ("Flags: every config key is a dotted flag (--train.epochs 5, --optimize.max_accuracy_drop 0.01); "
              "the most used also have a short dashed form (--max-accuracy-drop, --out). Dashes and underscores "
              "are interchangeable in both.")


class LazyChoices:
    """argparse ``choices`` read from a registry on first use, so that building the parser imports nothing."""

    def __init__(self, names: Callable[[], Sequence[str]]):
        self._names = names

    def __contains__(self, value: object) -> bool:
        return value in self._names()

    def __iter__(self):
        return iter(self._names())


class TrimnetParser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the closest command or flag, and the config
    keys with their defaults at the end of ``--help``."""

    config_keys: Callable[[], list[tuple[str, Any]]] | None = None

    def error(self, message: str):  # noqa: D401  (argparse's hook)
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            close = difflib.get_close_matches(match.group(1), choices, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            message = f"{message.split(':', 1)[0]}: unknown {match.group(1)!r}; {hint}choose from {', '.join(choices)}"
        raise ConfigError(f"{self.prog}: {message}; see {self.prog} --help")

    def format_help(self) -> str:
        text = super().format_help()
        if self.config_keys is None:
            return text
        keys = self.config_keys()
        width = max((len(k) for k, _ in keys), default=0) + 4
        lines = [f"  --{k:<{width - 2}}{_show(v)}" for k, v in keys]
        return text + "\nconfig keys (--KEY VALUE, or in the -c file; default shown):\n" + "\n".join(lines) + "\n"


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v)) if v else "[]"
    if isinstance(v, dict):
        return json.dumps(v) if v else "{}"
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def flatten_config(cfg: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A config dataclass as (dotted key, default) pairs, sections first-level-deep like the YAML."""
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.extend(flatten_config(value, f"{key}."))
        elif f.name != "version":
            out.append((key, value))
    return out


def add_config_args(parser: argparse.ArgumentParser, config: Callable[[], Any] | None = None,
                    prefix: str = "") -> None:
    """``-c`` and ``--print-config``; ``config`` (a callable returning the default config, run only
    for ``--help``) lists the dotted keys and their defaults in the help."""
    parser.add_argument("-c", "--config", help="YAML config file; dotted flags (--train.epochs 5) override it")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    if config is not None:
        parser.config_keys = lambda: flatten_config(config(), prefix)


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def split_overrides(extra: list[str], known: list[str] = ()) -> list[tuple[str, str]]:
    """``["--train.epochs", "5", "--data.seed=1"]`` -> ``[("train.epochs", "5"), ("data.seed", "1")]``.

    ``known``: the command's flags and config keys, to suggest the closest to a typo."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            flag = arg.split("=", 1)[0]
            close = [k for k in known if flag.startswith("--") and k.endswith("." + flag[2:].replace("-", "_"))]
            close = close or (difflib.get_close_matches(flag, list(known), n=1) if flag.startswith("-") else [])
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"unrecognized argument {arg!r}; {hint}see --help (config keys are dotted: "
                              "--train.epochs 5)")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        else:
            if i + 1 >= len(extra):
                raise ConfigError(f"{arg} needs a value")
            value = extra[i + 1]
            i += 1
        out.append((key, value))
        i += 1
    return out


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=_default)
    sys.stdout.write("\n")


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def normalize_flags(argv: list[str]) -> list[str]:
    """One flag style, two spellings: ``--max_accuracy_drop`` is ``--max-accuracy-drop`` and
    ``--optimize.max-accuracy-drop`` is ``--optimize.max_accuracy_drop``. Values are left alone."""
    out = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            name = name.replace("-", "_") if "." in name else name.replace("_", "-")
            arg = f"--{name}{eq}{value}"
        out.append(arg)
    return out


MAX_INPUT_ELEMENTS = 1 << 31  # one input batch past this (8 GiB of float32) is a typo, not a model


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` -> ``(1, 3, 224, 224)``."""
    try:
        shape = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ConfigError(f"input shape {text!r} is not like 1x3x224x224") from None
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"input shape {text!r} must be positive integers like 1x3x224x224")
    elements = math.prod(shape)
    if elements > MAX_INPUT_ELEMENTS:
        raise ConfigError(f"input shape {text!r} is {elements:,} values per batch (at most {MAX_INPUT_ELEMENTS:,}); "
                          "check the dimensions")
    return shape


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain, aligned text table (numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in rows) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _numeric(v: Any) -> bool:
    """Numbers, blanks and figures with a unit ("99.33 %", "24.7x", "77 KiB") align right."""
    return v is None or isinstance(v, (int, float)) or (isinstance(v, str) and v[:1].isdigit())


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def section_config(cls: type, section: str, path: str | None, flags: dict[str, Any],
                   overrides: list[tuple[str, str]], command: str) -> Any:
    """One config section (``optimize``, ``bench``, ...) from defaults, then the ``-c`` file (the
    section of a full config, or the section's keys alone), then short flags, then ``--SECTION.KEY``."""
    from trimnet.config import apply_overrides, from_dict, load_yaml, merge, to_dict

    data = to_dict(cls())
    if path:
        loaded = load_yaml(path)
        data = merge(data, loaded.get(section, {}) if isinstance(loaded.get(section), dict) else loaded)
    data.update({k: v for k, v in flags.items() if v is not None})
    others = [k for k, _ in overrides if not k.startswith(f"{section}.")]
    if others:
        raise ConfigError(f"trimnet {command} takes {section}.* keys only (got --{others[0]}); "
                          f"see trimnet {command} --help")
    data = apply_overrides(data, [(k.split(".", 1)[1], v) for k, v in overrides])
    cfg = from_dict(cls, data, section)
    validated = cfg.validate()
    return validated if validated is not None else cfg


def print_config(cfg: Any, section: str | None = None) -> None:
    import yaml

    from trimnet.config import to_dict

    data = to_dict(cfg)
    print(yaml.safe_dump({section: data} if section else data, sort_keys=False), end="")


def check_out(path: str | os.PathLike, flag: str = "--out") -> Path:
    """An output directory that can be made: not a file, not under a file, on a writable disk.
    Checked before any data loads, so a typo fails in a second, not after an hour."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; choose a directory for the run")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path} lies under {parent}, which is a file; choose another {flag}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {parent} is not writable (read-only or no permission); "
                          f"choose another {flag}")
    return path


@contextlib.contextmanager
def new_run_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Remove the run directory again if the command that created it fails before it holds
    anything worth keeping (a checkpoint to resume from); nothing half-written is left."""
    path = Path(path)
    existed = path.exists()
    try:
        yield path
    except BaseException:
        if not existed and path.is_dir() and not any(path.rglob("last.pt")):
            shutil.rmtree(path, ignore_errors=True)
        raise


def check_out_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """An output file whose directory can be made and written (checked before the work)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; name a file")
    check_out(path.parent, flag)
    return path
