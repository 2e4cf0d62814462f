"""Benchmark results: the JSON schema (``SCHEMA_VERSION``, see docs/bench.md) and readable tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

SCHEMA_VERSION = 1


@dataclass
class Measurement:
    """One (backend, batch size): latency statistics and what ran."""

    backend: str  # label: the name plus options, e.g. "openvino:precision=bf16"
    name: str  # the registry name, e.g. "openvino"
    options: dict
    batch: int
    status: str  # "ok" or "skipped"
    reason: str | None = None  # why skipped
    latency_ms: dict | None = None  # p50 p90 p99 min mean max std
    iterations: int = 0
    measured_s: float = 0.0
    throughput: float | None = None  # samples/s over the measured loop
    achieved_flops: float | None = None  # FLOP/s at the median latency
    first_run_ms: float | None = None
    warmup: dict | None = None
    memory: dict | None = None
    precision: str | None = None  # what the runtime reports it ran
    runner: dict | None = None
    parity: dict | None = None
    interference: dict | None = None  # load, other processes' cores, spread, re-timings; "flagged": read with care

    @classmethod
    def skipped(cls, label: str, name: str, options: dict, batch: int, reason: str) -> "Measurement":
        return cls(backend=label, name=name, options=dict(options), batch=batch, status="skipped", reason=reason)

    def to_dict(self) -> dict:
        return {"backend": self.backend, "backend_name": self.name, "options": self.options, "batch": self.batch,
                "status": self.status, "reason": self.reason, "precision": self.precision,
                "latency_ms": self.latency_ms, "iterations": self.iterations, "measured_s": self.measured_s,
                "throughput_samples_per_s": self.throughput, "achieved_flops": self.achieved_flops,
                "first_run_ms": self.first_run_ms, "warmup": self.warmup, "memory": self.memory,
                "parity": self.parity, "runner": self.runner, "interference": self.interference}

    @property
    def flagged(self) -> bool:
        """Taken while other work competed for the cores, or its repeats spread too wide."""
        return bool((self.interference or {}).get("flagged"))

    @property
    def p50(self) -> float | None:
        return self.latency_ms["p50"] if self.latency_ms else None


@dataclass
class BenchResult:
    model: dict
    config: dict
    environment: dict
    results: list[Measurement] = field(default_factory=list)

    def get(self, backend: str, batch: int) -> Measurement:
        for m in self.results:
            if m.backend == backend and m.batch == batch:
                return m
        raise KeyError(f"no result for backend {backend!r} at batch {batch}")

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "kind": "trimnet.bench", "model": self.model,
                "config": self.config, "environment": self.environment,
                "results": [m.to_dict() for m in self.results]}

    def rows(self) -> tuple[list[str], list[list[str]]]:
        headers = ["backend", "precision", "batch", "p50 ms", "p90 ms", "p99 ms", "min ms", "samples/s",
                   "GFLOP/s", "peak MB", "note"]
        rows = []
        for m in self.results:
            if m.status != "ok":
                rows.append([m.backend, "-", str(m.batch), *["-"] * 7, f"skipped: {m.reason}"])
                continue
            lat = m.latency_ms or {}
            peak = (m.memory or {}).get("peak_rss_bytes")
            note = "; ".join(n for n in ("" if (m.warmup or {}).get("stable", True) else "warm-up did not settle",
                                         interference_note(m.interference)) if n)
            rows.append([m.backend, m.precision or "-", str(m.batch),
                         *(ms(lat[k]) for k in ("p50", "p90", "p99", "min")),
                         _num(m.throughput), _num(m.achieved_flops / 1e9) if m.achieved_flops else "-",
                         f"{peak / 2**20:.0f}" if peak else "-", note])
        return headers, rows

    def table(self) -> str:
        env = self.environment
        title = (f"{self.model['name']} {tuple(self.model['input_shape'])}, {env['threads']} threads, "
                 f"{env['cpu']['name']}" + (f", {env['gpu']['name']}" if env.get("gpu") else ""))
        flagged = [m for m in self.results if m.flagged]
        notes = environment_notes(env)
        if flagged:
            notes.append(f"note: {len(flagged)} of {len(self.results)} figures were taken while other work competed "
                         "for the cores or varied too much between repeats (marked busy/unsteady); measure again on a "
                         "quiet machine, or use --compare for A/B questions")
        return "\n".join([title, format_table(*self.rows()), *notes]).rstrip()

    def markdown(self) -> str:
        return markdown_table(*self.rows())


@dataclass
class PairResult:
    """A vs B at one batch size, measured interleaved."""

    batch: int
    pairs: int
    ratio: float  # median over pairs of latency_B / latency_A; < 1 means B is faster
    ratio_p25: float
    ratio_p75: float
    a_latency_ms: dict
    b_latency_ms: dict

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CompareResult:
    a: dict  # {"model": ..., "backend": ..., "runner": ...}
    b: dict
    config: dict
    environment: dict
    results: list[PairResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "kind": "trimnet.bench.compare", "a": self.a, "b": self.b,
                "config": self.config, "environment": self.environment,
                "results": [r.to_dict() for r in self.results]}

    def table(self) -> str:
        headers = ["batch", "pairs", "A p50 ms", "B p50 ms", "B/A (median of pairs)", "IQR", "verdict"]
        rows = [[str(r.batch), str(r.pairs), ms(r.a_latency_ms["p50"]), ms(r.b_latency_ms["p50"]), f"{r.ratio:.3f}",
                 f"{r.ratio_p25:.3f}-{r.ratio_p75:.3f}", _verdict(r.ratio)] for r in self.results]
        title = f"A = {self.a['label']}\nB = {self.b['label']}\n{self.environment['threads']} threads"
        return "\n".join([title, format_table(headers, rows), *environment_notes(self.environment)]).rstrip()


def environment_notes(env: dict) -> list[str]:
    """Warnings about conditions that inflate timings, for the reader of a table."""
    notes = []
    loads = [x for x in (env.get("load_average"), env.get("load_average_after")) if x]
    cores = (env.get("cpu") or {}).get("usable_cores") or 0
    if loads and cores and max(load[0] for load in loads) > cores:
        notes.append(f"note: the machine was busy (1-minute load up to {max(load[0] for load in loads):.1f} on "
                     f"{cores} cores): timings are inflated and noisy; use --compare for A/B questions")
    if env.get("torch_global_hooks"):
        notes.append("note: global nn.Module hooks are registered in this process; eager PyTorch calls pay for them")
    return notes


def interference_note(info: dict | None) -> str:
    """"busy: 1.8 other cores", "unsteady: p90 2.1x p50", or "" for a clean figure."""
    if not info:
        return ""
    parts = []
    if info.get("busy"):
        others = info.get("others_cores")
        parts.append(f"busy: {others:.1f} cores used by other work" if others is not None else "busy: load above cores")
    if not info.get("steady", True):
        parts.append(f"unsteady: p90 {1 + info.get('spread', 0):.1f}x p50 after {info.get('retimed', 0)} re-timings")
    return "; ".join(parts)


def _verdict(ratio: float) -> str:
    return f"B {1 / ratio:.2f}x faster" if ratio < 1 else f"B {ratio:.2f}x slower" if ratio > 1 else "same"


def ms(value: float) -> str:
    """Milliseconds with about three significant digits and no exponent."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    numeric = [all(_numeric(r[i]) for r in rows) and rows != [] for i in range(len(headers))]

    def line(cells: Sequence[Any]) -> str:
        return "  ".join(str(c).rjust(w) if num else str(c).ljust(w)
                         for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _numeric(text: str) -> bool:
    return text == "-" or text.replace(",", "").replace(".", "", 1).replace("-", "", 1).isdigit()
