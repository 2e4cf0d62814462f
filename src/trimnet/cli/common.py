"""What the subcommands share: config files, dotted overrides, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from trimnet.errors import ConfigError


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="YAML config file; dotted flags (--train.epochs 5) override it")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def split_overrides(extra: list[str]) -> list[tuple[str, str]]:
    """``["--train.epochs", "5", "--data.seed=1"]`` -> ``[("train.epochs", "5"), ("data.seed", "1")]``."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            raise ConfigError(f"unrecognized argument {arg!r}; see --help (config keys are dotted: --train.epochs 5)")
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


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` -> ``(1, 3, 224, 224)``."""
    try:
        shape = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ConfigError(f"input shape {text!r} is not like 1x3x224x224") from None
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"input shape {text!r} must be positive integers like 1x3x224x224")
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
