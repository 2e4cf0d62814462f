"""How far to trust an estimate: the predictor's measured error, read from the benchmark's results.

``benchmarks/latency_prediction.py`` compares predicted with measured latency on this
machine and writes ``latency_prediction.json``; it is looked for in ``$TRIMNET_PREDICTION_RESULTS``,
then ``$TRIMNET_CACHE/latency_prediction.json``, then the source checkout's
``benchmarks/results/``. Without one the error is "unknown", and every estimate says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULTS_ENV = "TRIMNET_PREDICTION_RESULTS"
KIND = "trimnet.hardware.latency_prediction"


def results_paths() -> list[Path]:
    from trimnet.hardware.calibration import cache_dir

    paths = []
    if os.environ.get(RESULTS_ENV):
        paths.append(Path(os.environ[RESULTS_ENV]).expanduser())
    paths.append(cache_dir() / "latency_prediction.json")
    paths.append(Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "latency_prediction.json")
    return paths


def predictor_error(machine: dict | None = None) -> dict[str, Any]:
    """The share of benchmark configurations within 10 % / 20 % and the median absolute error, or "unknown"."""
    for path in results_paths():
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            summary = data["summary"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            continue
        if data.get("kind") != KIND:
            continue
        measured_on = data.get("machine", {})
        out = {"status": "measured", "within_10": summary.get("within_10"), "within_20": summary.get("within_20"),
               "median_abs_error": summary.get("median_abs_error"), "configurations": summary.get("configurations"),
               "measured_on": measured_on.get("cpu"), "threads": measured_on.get("threads"),
               "measured": data.get("created"), "source": str(path)}
        if machine is not None:
            same = all(measured_on.get(k) == machine.get(k) for k in ("cpu", "usable_cores", "threads"))
            out["same_machine"] = same
        return out
    return {"status": "unknown",
            "reason": "no latency_prediction.json found; run benchmarks/latency_prediction.py to measure the "
                      "predictor's error on this machine"}


def describe_error(error: dict[str, Any]) -> str:
    """One line for tables: how far estimates of this kind have been from measurements."""
    if error.get("status") != "measured":
        return "predictor error on this machine: unknown (" + error.get("reason", "not measured") + ")"
    line = (f"predictor error measured on {error.get('measured_on')} ({error.get('threads')} threads), "
            f"{error.get('configurations')} configurations: {_pct(error.get('within_10'))} within ±10 %, "
            f"{_pct(error.get('within_20'))} within ±20 %, median |error| {_pct(error.get('median_abs_error'))}")
    if error.get("same_machine") is False:
        line += " (a different machine from this one)"
    return line


def _pct(v: Any) -> str:
    return f"{100 * v:.0f} %" if isinstance(v, (int, float)) else "?"
