"""``train_time``: how long training takes on each device, from its total FLOPs over achievable FLOP/s.

Total FLOPs come from a training profile (forward + backward per sample x samples x epochs,
the optimizer step excluded) or are given outright (``total_flops=2e19`` for "20 exaFLOPs of
training"). The achievable rate is the FLOP/s the model's forward pass reaches on the device
at the profiled batch (``estimate``: datasheet peak x utilization, memory-bound layers and
overheads included), on the assumption that the backward pass runs as efficiently; with no
profile, peak x the device's assumed utilization.

Where efficiency curves fitted to published training figures ship (``fitted.json``), a catalog
device's step is estimated by them instead: three forward passes at the fitted training
efficiency, an optimizer pass over the weights and, with ``gpus`` > 1, a ring all-reduce of
the gradients over the device's interconnect (the part the fit found not hidden behind the
backward pass), once every ``accumulation`` micro-batches. Its ``error`` is the held-out
error of published training figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from trimnet.errors import ConfigError
from trimnet.hardware.accuracy import predictor_error
from trimnet.hardware.catalog import Device, check_precision, get_device, load_catalog
from trimnet.hardware.estimate import estimate, profile_dtype, published_error
from trimnet.hardware.fitted import build_works, load_params, seconds


@dataclass
class TrainingTime:
    device: str
    device_name: str
    precision: str
    total_flops: float
    achievable_flops: float
    utilization: float  # achievable / peak
    tdp_w: float | None
    basis: str  # how achievable_flops was obtained
    gpus: int = 1
    step_s: float | None = None  # seconds per optimizer step (fitted model)
    allreduce_s: float | None = None  # of which gradient all-reduce
    error: dict[str, Any] | None = None

    @property
    def seconds(self) -> float:
        return self.total_flops / self.achievable_flops

    @property
    def energy_kwh(self) -> float | None:
        """At the device's TDP for the whole run: an upper-bound power proxy, not a measurement."""
        return self.tdp_w * self.gpus * self.seconds / 3.6e6 if self.tdp_w else None

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "device_name": self.device_name, "precision": self.precision,
                "total_flops": self.total_flops, "achievable_flops": self.achievable_flops,
                "utilization": self.utilization, "seconds": self.seconds, "hours": self.seconds / 3600,
                "days": self.seconds / 86400, "tdp_w": self.tdp_w, "energy_kwh_at_tdp": self.energy_kwh,
                "basis": self.basis, "gpus": self.gpus, "step_s": self.step_s, "allreduce_s": self.allreduce_s,
                "error": self.error}


def train_time(profile=None, *, samples: int | None = None, epochs: int = 1, total_flops: float | None = None,
               devices: Sequence[str] | None = None, precision: str | None = None, batch: int | None = None,
               catalog: Mapping[str, Device] | None = None, gpus: int = 1,
               accumulation: int = 1) -> list[TrainingTime]:
    """Training time per device, fastest first. Give a training profile and ``samples``, or ``total_flops``.

    ``batch``: the training batch size per device the achievable rate is estimated at (default:
    the profile's); ``gpus``: data-parallel devices (catalog devices); ``accumulation``: micro-
    batches per optimizer step (and all-reduce).
    """
    if not isinstance(gpus, int) or gpus < 1:
        raise ConfigError(f"gpus must be a positive integer; got {gpus!r}")
    if not isinstance(accumulation, int) or accumulation < 1:
        raise ConfigError(f"accumulation must be a positive integer; got {accumulation!r}")
    catalog = load_catalog() if catalog is None else catalog
    if total_flops is None:
        if profile is None or samples is None:
            raise ConfigError("give total_flops (e.g. --total-flops 2e19), or a model profile and the number of "
                              "samples (--samples N --epochs E)")
        total_flops = float(profile.training_flops(samples, epochs))
    elif not total_flops > 0:
        raise ConfigError(f"total_flops must be positive; got {total_flops}")
    precision = check_precision(precision or (profile_dtype(profile) if profile is not None else "fp32"))
    names = list(devices) if devices else sorted(catalog)
    error = predictor_error()
    rows = []
    for name in names:
        if name in ("local", "local-cuda"):
            if profile is None:
                raise ConfigError(f"{name} needs a model profile (its speed is measured per kernel shape, "
                                  "not a single peak)")
            est = estimate(profile, name, precision, batch, error=error)
            rows.append(TrainingTime(name, est.device_name, precision, total_flops, est.achieved_flops,
                                     est.utilization, None, f"calibrated forward pass at batch {est.batch}"))
            continue
        dev = get_device(name, catalog)
        if devices is None and precision not in dev.peak_flops:
            continue  # an unrequested device without this precision: left out
        peak = dev.peak(precision)
        params = load_params()
        if profile is not None and params is not None and not dev.explicit_utilization:
            b = batch or profile.batch
            step = seconds(build_works(profile, b, precision), dev, precision, "torch-eager", params, training=True,
                           gpus=gpus, accumulation=accumulation)
            per_sample = (profile.flops + (profile.backward_flops or 2 * profile.flops)) / max(profile.batch, 1)
            rate = per_sample * b * gpus / step.seconds
            rows.append(TrainingTime(name, dev.name, precision, total_flops, rate, rate / (peak * gpus), dev.tdp_w,
                                     f"fitted training step at batch {b} per device"
                                     + (f", {gpus} devices, all-reduce over {dev.interconnect / 1e9:g} GB/s"
                                        if gpus > 1 and dev.interconnect else f", {gpus} devices" if gpus > 1 else ""),
                                     gpus, step.seconds, step.extra.get("allreduce_s"),
                                     published_error(params, dev, training=True)))
            continue
        if gpus > 1:
            raise ConfigError(f"gpus > 1 needs a model profile and the fitted curves; {name} has neither")
        if profile is not None:
            est = estimate(profile, name, precision, batch, catalog=catalog, error=error, runtime="eager")
            rows.append(TrainingTime(name, dev.name, precision, total_flops, est.achieved_flops, est.utilization,
                                     dev.tdp_w, f"forward pass at batch {est.batch}: peak x "
                                                f"{dev.compute_utilization:g} compute, x {dev.memory_utilization:g} "
                                                "bandwidth, plus overheads, nothing fused"))
        else:
            rate = peak * dev.compute_utilization
            rows.append(TrainingTime(name, dev.name, precision, total_flops, rate, dev.compute_utilization,
                                     dev.tdp_w, f"peak x {dev.compute_utilization:g} assumed utilization"))
    rows.sort(key=lambda r: r.seconds)
    return rows
