"""``recommend(profile, target_latency=..., target_throughput=...)``: which devices meet a target, at which batch.

Every catalog device (and ``local`` when calibrated) is estimated at a ladder of batch
sizes. Against a latency target the largest batch that still meets it is chosen (the most
throughput within the target); against a throughput target, the smallest batch that
reaches it (the least latency); against both, the smallest batch that meets both. A batch
whose weights and activations do not fit the device's memory does not count.

A catalog estimate carries the error measured against held-out published figures for its chip
(``error["band"]``, the 90th percentile of |predicted/measured - 1|): a target counts as met
only when it is met at the pessimistic edge of that band (latency x (1 + band), throughput /
(1 + band)); one met only inside the band is reported as such, not as met. Devices that meet
the target are ranked by cost: the catalog's price per hour where it states one, else power
(TDP), then by the smallest headroom (the least over-provisioned of equal-cost devices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from trimnet.errors import ConfigError, TrimnetError
from trimnet.hardware.accuracy import predictor_error
from trimnet.hardware.catalog import Device, get_device, load_catalog
from trimnet.hardware.estimate import Estimate, estimate

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class Candidate:
    device: str
    device_name: str
    meets: bool
    batch: int | None = None
    latency_s: float | None = None
    throughput: float | None = None
    headroom: float | None = None  # how far past the target (>= 1 when met)
    min_latency_s: float | None = None  # at the smallest batch
    max_throughput: float | None = None  # at the largest batch that fits
    memory: dict[str, Any] | None = None
    tdp_w: float | None = None
    utilization: float | None = None
    reason: str | None = None  # why it does not meet the target
    band: float | None = None  # the estimate's uncertainty: +- this share (from the measured error)
    price_usd_hour: float | None = None
    runtime: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Recommendation:
    target_latency_s: float | None
    target_throughput: float | None
    precision: str | None
    candidates: list[Candidate]
    message: str
    assumptions: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> list[Candidate]:
        return [c for c in self.candidates if c.meets]

    def to_dict(self) -> dict[str, Any]:
        return {"target_latency_s": self.target_latency_s, "target_throughput": self.target_throughput,
                "precision": self.precision, "message": self.message, "assumptions": self.assumptions,
                "error": self.error, "candidates": [c.to_dict() for c in self.candidates]}


def recommend(profile, *, target_latency: float | None = None, target_throughput: float | None = None,
              precision: str | None = None, devices: Sequence[str] | None = None,
              batches: Sequence[int] = DEFAULT_BATCHES, catalog: Mapping[str, Device] | None = None,
              include_local: bool = True, backend: str | None = None, runtime: str = "tensorrt",
              effective_seq: int | None = None) -> Recommendation:
    """Rank devices that meet ``target_latency`` (seconds) and/or ``target_throughput`` (samples/s).

    ``runtime`` and ``effective_seq`` are passed to ``estimate`` for catalog devices.
    """
    if target_latency is None and target_throughput is None:
        raise ConfigError("give a target: target_latency (seconds, e.g. --target-latency 5ms) and/or "
                          "target_throughput (samples/s, e.g. --target-throughput 2000/s)")
    for name, value in (("target_latency", target_latency), ("target_throughput", target_throughput)):
        if value is not None and not value > 0:
            raise ConfigError(f"{name} must be positive; got {value}")
    ladder = sorted({int(b) for b in batches})
    if not ladder or ladder[0] < 1:
        raise ConfigError(f"batch sizes must be positive integers; got {list(batches)}")
    catalog = load_catalog() if catalog is None else catalog
    names = list(devices) if devices else sorted(catalog)
    if include_local and not devices:
        names.append("local")
    for name in names:
        if name not in ("local", "local-cuda"):
            get_device(name, catalog)  # a bad name fails here, listing the valid ones
    error = predictor_error()
    candidates = []
    for name in names:
        try:
            local = name.startswith("local")
            ests = [estimate(profile, name, precision, b, catalog=catalog, error=error if local else None,
                             backend=backend if local else None,
                             **({} if local else {"runtime": runtime, "effective_seq": effective_seq})) for b in ladder]
        except TrimnetError as exc:
            if name == "local" and not devices:
                continue  # not calibrated here: leave it out of an unrequested comparison
            candidates.append(Candidate(name, catalog[name].name if name in catalog else name, False, reason=str(exc)))
            continue
        dev = catalog.get(name)
        cand = _choose(ests, target_latency, target_throughput, dev.tdp_w if dev else None, _band(ests[0]))
        cand.price_usd_hour = dev.price_usd_hour if dev else None
        cand.runtime = ests[0].assumptions.get("runtime") if dev else ests[0].backend
        candidates.append(cand)
    candidates.sort(key=_rank)
    return Recommendation(target_latency, target_throughput, precision, candidates,
                          _message(candidates, target_latency, target_throughput, precision),
                          {"batches": ladder, "precision": precision or "the model's (fp32)", "runtime": runtime,
                           "catalog": "efficiency curves fitted to published measurements (benchmarks/published/); "
                                      "a target is met only at the pessimistic edge of each estimate's error band",
                           "ranking": "price per hour where the catalog states one, else TDP watts"},
                          error)


def _band(e: Estimate) -> float:
    """The share an estimate may be off by (0 where no error was measured against published figures)."""
    band = e.error.get("band") if e.error.get("against") == "published" else None
    return float(band) if isinstance(band, (int, float)) else 0.0


def _choose(ests: list[Estimate], target_latency: float | None, target_throughput: float | None,
            tdp: float | None, band: float = 0.0) -> Candidate:
    first = ests[0]
    fitting = [e for e in ests if e.memory.get("fits") is not False]
    base = dict(device=first.device, device_name=first.device_name, tdp_w=tdp, min_latency_s=first.latency_s,
                max_throughput=max((e.throughput for e in fitting), default=None), band=band)
    if not fitting:
        return Candidate(meets=False, reason=f"batch {first.batch} needs {first.memory['total_bytes'] / 1e9:.1f} GB; "
                                             f"the device has {first.memory['device_bytes'] / 1e9:.0f} GB", **base)

    def ok(e: Estimate, margin: float) -> bool:
        return ((target_latency is None or e.latency_s * (1 + margin) <= target_latency)
                and (target_throughput is None or e.throughput / (1 + margin) >= target_throughput))

    good = [e for e in fitting if ok(e, band)]
    inside = [e for e in fitting if ok(e, 0.0)]
    if not good and inside:
        e = inside[-1] if target_throughput is None else inside[0]
        return Candidate(meets=False, batch=e.batch, latency_s=e.latency_s, throughput=e.throughput,
                         headroom=_headroom(e, target_latency, target_throughput), memory=e.memory,
                         utilization=e.utilization,
                         reason=f"meets the target only inside its ±{100 * band:.0f} % error band "
                                f"(estimate {e.latency_s * 1e3:.3g} ms, {e.throughput:.4g} samples/s at batch {e.batch})",
                         **base)
    if not good:
        best = fitting[0] if target_throughput is None else max(fitting, key=lambda e: e.throughput)
        why = []
        if target_latency is not None and first.latency_s > target_latency:
            why.append(f"{first.latency_s * 1e3:.3g} ms at batch {first.batch} (target {target_latency * 1e3:.3g} ms)")
        if target_throughput is not None:
            why.append(f"at most {base['max_throughput']:.4g} samples/s (target {target_throughput:.4g}/s)")
        if not why:
            why.append("no batch size meets both targets at once")
        return Candidate(meets=False, batch=best.batch, latency_s=best.latency_s, throughput=best.throughput,
                         headroom=_headroom(best, target_latency, target_throughput), memory=best.memory,
                         utilization=best.utilization, reason="; ".join(why), **base)
    chosen = good[-1] if target_throughput is None else good[0]
    return Candidate(meets=True, batch=chosen.batch, latency_s=chosen.latency_s, throughput=chosen.throughput,
                     headroom=_headroom(chosen, target_latency, target_throughput), memory=chosen.memory,
                     utilization=chosen.utilization, **base)


def _headroom(e: Estimate, target_latency: float | None, target_throughput: float | None) -> float:
    ratios = []
    if target_latency is not None:
        ratios.append(target_latency / e.latency_s)
    if target_throughput is not None:
        ratios.append(e.throughput / target_throughput)
    return min(ratios)


def _rank(c: Candidate) -> tuple:
    if c.meets:
        # at equal cost the least over-provisioned device (the smallest headroom) first
        return (0, c.price_usd_hour is None, c.price_usd_hour or 0.0, c.tdp_w is None, c.tdp_w or 0.0,
                c.headroom or 0.0)
    return (1, c.headroom is None, -(c.headroom or 0.0))


def _message(candidates: list[Candidate], target_latency: float | None, target_throughput: float | None,
             precision: str | None) -> str:
    parts = []
    if target_latency is not None:
        parts.append(f"latency <= {target_latency * 1e3:.4g} ms")
    if target_throughput is not None:
        parts.append(f"throughput >= {target_throughput:.4g} samples/s")
    target = " and ".join(parts) + f" at {precision or 'the model precision'}"
    met = [c for c in candidates if c.meets]
    if not met:
        close = [c for c in candidates if c.headroom is not None]
        if not close:
            return f"No device meets {target}."
        best = max(close, key=lambda c: c.headroom or 0)
        return (f"No device meets {target}. The closest is {best.device}: {best.reason} "
                f"({best.headroom:.2f}x of the target).")
    cheapest = met[0]
    cost = (f", ${cheapest.price_usd_hour:g}/h" if cheapest.price_usd_hour else
            f", {cheapest.tdp_w:g} W" if cheapest.tdp_w else "")
    band = f", ±{100 * cheapest.band:.0f} % band" if cheapest.band else ""
    return (f"{len(met)} of {len(candidates)} devices meet {target} at the pessimistic edge of their error band. "
            f"Cheapest: {cheapest.device} (batch {cheapest.batch}, {cheapest.headroom:.2f}x headroom{band}{cost}).")
