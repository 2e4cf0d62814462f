"""How far to trust an estimate: the predictor's measured error, read from the benchmark's results.

``benchmarks/latency_prediction.py`` compares predicted with measured latency on this
machine and writes ``latency_prediction.json``; it is read from ``$TRIMNET_PREDICTION_RESULTS``
when that is set, else from ``$TRIMNET_CACHE/latency_prediction.json`` or the source checkout's
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

    if os.environ.get(RESULTS_ENV):  # an explicit choice: only that file
        return [Path(os.environ[RESULTS_ENV]).expanduser()]
    paths = [cache_dir() / "latency_prediction.json"]
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
               "load_average": data.get("load_average_before"), "measured": data.get("created"),
               "source": str(path)}
        cpu = (data.get("cpu_time_check") or {}).get("summary")
        if cpu:  # the same comparison in CPU time, one thread: what other processes' load cannot move
            out["cpu_time"] = {k: cpu.get(k) for k in ("within_10", "within_20", "median_abs_error", "configurations")}
        if machine is not None:
            out["same_machine"] = all(measured_on.get(k) == machine.get(k) for k in ("cpu", "usable_cores"))
            out["same_threads"] = measured_on.get("threads") == machine.get("threads")
        return out
    return {"status": "unknown",
            "reason": "no latency_prediction.json found; run benchmarks/latency_prediction.py to measure the "
                      "predictor's error on this machine"}


def describe_error(error: dict[str, Any]) -> str:
    """One line for tables: how far estimates of this kind have been from measurements."""
    if error.get("against") == "published":
        if error.get("status") != "measured":
            return "error against published measurements: unknown (" + error.get("reason", "not measured") + ")"
        return (f"error against {error.get('basis')} ({error.get('scope')}): {_pct(error.get('within_20'))} within "
                f"±20 %, {_pct(error.get('within_2x'))} within 2x, median |error| {_pct(error.get('median_abs_error'))}; "
                f"uncertainty band ±{_pct(error.get('band'))} (90th percentile)")
    if error.get("status") != "measured":
        return "predictor error on this machine: unknown (" + error.get("reason", "not measured") + ")"
    load = error.get("load_average")
    line = (f"predictor error measured on {error.get('measured_on')} ({error.get('threads')} threads"
            + (f", load average {load[0]:g}" if load else "") + f"), {error.get('configurations')} configurations: "
            f"{_pct(error.get('within_10'))} within ±10 %, {_pct(error.get('within_20'))} within ±20 %, "
            f"median |error| {_pct(error.get('median_abs_error'))}")
    cpu = error.get("cpu_time")
    if cpu:
        line += (f"; in CPU time (one thread, unaffected by load): {_pct(cpu.get('within_20'))} within ±20 %, "
                 f"median |error| {_pct(cpu.get('median_abs_error'))}")
    if error.get("same_machine") is False:
        line += " (a different machine from this one)"
    elif error.get("same_threads") is False:
        line += " (at a different thread count from this estimate's)"
    return line


def _pct(v: Any) -> str:
    return f"{100 * v:.0f} %" if isinstance(v, (int, float)) else "?"
