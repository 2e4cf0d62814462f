"""Render ``report.html`` from ``summary.json``: Jinja2 template, matplotlib figures inlined."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trimnet.errors import ArtifactError, require

SUMMARY = "summary.json"
REPORT = "report.html"


def render(summary: dict[str, Any]) -> str:
    jinja2 = require("jinja2", "report")
    require("matplotlib", "report")
    from trimnet.report.plots import all_figures

    env = jinja2.Environment(loader=jinja2.PackageLoader("trimnet.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.2f} %"
    from trimnet.report.summary import format_metric, metric_name

    metric = summary.get("metric", "accuracy")
    # the task's metric: accuracy in %, a regression's error as MAE (the budget in the metric's units)
    env.filters["score"] = lambda v: format_metric(v, metric) or "-"
    env.filters["drop"] = lambda v: "-" if v is None else (f"{100 * v:.2f} %" if metric == "accuracy" else f"{v:.4g}")
    env.globals["metric"] = metric_name(metric)
    env.filters["ms"] = lambda v: "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")
    return env.get_template("report.html.j2").render(s=summary, fig=all_figures(summary))


def build_report(run_dir: str | Path) -> Path:
    """(Re)build ``report.html`` in ``run_dir`` from its ``summary.json``; returns the path."""
    from trimnet.artifact import atomic_write, read_json

    run_dir = Path(run_dir)
    if not (run_dir / SUMMARY).exists():
        raise ArtifactError(f"{run_dir} has no {SUMMARY}; it is written by `trimnet run` (or `trimnet optimize`)")
    summary = read_json(run_dir / SUMMARY)
    path = run_dir / REPORT
    atomic_write(path, render(summary))
    return path


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    v = int(v)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.2f} {unit}"
    return str(v)


def dumps(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, default=float) + "\n"
