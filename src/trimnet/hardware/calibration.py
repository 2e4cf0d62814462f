"""The ``local`` device profile: what calibration measured, the curves fitted to it, and the machine it is of.

Saved as ``local.json`` (``local-cuda.json`` for a GPU) in ``$TRIMNET_CACHE`` (default
``~/.cache/trimnet``) with a description of the machine; a saved profile whose description
differs from this machine (CPU, cores, threads, GPU, library versions) is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trimnet.errors import ConfigError
from trimnet.hardware.attention import AttentionCurve
from trimnet.hardware.curves import ComputeCurve, PassCurve, Rate

CACHE_ENV = "TRIMNET_CACHE"
SCHEMA = "trimnet.hardware.calibration"
VERSION = 2
# machine-description keys that must match for a saved profile to be used; the backends add the
# packages whose versions they depend on (``Backend.versions``: torch, onnxruntime, openvino)
HOST_KEYS = ("device", "cpu", "usable_cores", "threads", "gpu")


def machine_keys() -> tuple[str, ...]:
    return (*HOST_KEYS, *version_keys())


def version_keys() -> tuple[str, ...]:
    """The packages whose versions a calibration records, as the registered backends name them."""
    from trimnet.runtime.backend import all_backends

    return tuple(dict.fromkeys(pkg for b in all_backends() for pkg in b.versions))


@dataclass
class Series:
    """One backend at one dtype: its overheads and fitted curves (see ``curves``)."""

    backend: str
    dtype: str
    call_s: float  # per inference call (runner, bindings, input conversion)
    layer_s: float  # per executed layer beyond its kernel (module dispatch; a graph runtime's: per node)
    matmul: ComputeCurve
    conv: ComputeCurve
    passes: dict[str, PassCurve]  # elementwise, norm, pool, add, gelu, layernorm, dwconv, attention
    precision: str | None = None  # what the runtime reported it ran
    borrowed: str | None = None  # where kernels were not measured on this backend, the series they come from
    attention: AttentionCurve | None = None  # attention's core term by term (``attention``); None: the pass alone

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.dtype}"

    @property
    def bandwidth(self) -> Rate:
        """Bytes/s of a plain elementwise pass, by bytes moved: the memory side of the roofline."""
        return self.passes["elementwise"].rate

    def to_dict(self) -> dict:
        return {"backend": self.backend, "dtype": self.dtype, "call_s": self.call_s, "layer_s": self.layer_s,
                "matmul": self.matmul.to_dict(), "conv": self.conv.to_dict(),
                "passes": {k: v.to_dict() for k, v in self.passes.items()}, "precision": self.precision,
                "borrowed": self.borrowed, "attention": self.attention.to_dict() if self.attention else None}

    @classmethod
    def from_dict(cls, d: dict) -> "Series":
        return cls(d["backend"], d["dtype"], float(d["call_s"]), float(d["layer_s"]),
                   ComputeCurve.from_dict(d["matmul"]), ComputeCurve.from_dict(d["conv"]),
                   {k: PassCurve.from_dict(v) for k, v in d["passes"].items()}, d.get("precision"), d.get("borrowed"),
                   AttentionCurve.from_dict(d["attention"]) if d.get("attention") else None)


@dataclass
class Calibration:
    """The ``local`` device: what was measured on this machine and the curves fitted to it."""

    device: str  # "cpu" or "cuda"
    machine: dict
    created: str
    quick: bool
    seconds: float
    series: dict[str, Series]
    points: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # backend -> why it was not calibrated
    path: str | None = None
    clock: str = "wall"  # what the times are: elapsed ("wall") or this process's CPU time ("cpu")

    @property
    def name(self) -> str:
        return "local" if self.device == "cpu" else "local-cuda"

    def get(self, backend: str, dtype: str) -> Series:
        key = f"{backend}/{dtype}"
        if key not in self.series:
            have = ", ".join(sorted(self.series)) or "(none)"
            why = self.skipped.get(key) or self.skipped.get(backend)
            fix = (f"; run `trimnet hardware calibrate --backends {backend}`" if not why else "")
            raise ConfigError(f"no calibration for {key} on {self.name}" + (f" ({why})" if why else "")
                              + f"; calibrated: {have}{fix}")
        return self.series[key]

    def best_flops(self, backend: str, dtype: str) -> float | None:
        """The highest FLOP/s any calibrated matmul or convolution reached on this series: a measured peak."""
        key = f"{backend}/{dtype}"
        rates = [p["flops"] / p["seconds"] for p in self.points
                 if p["series"] == key and p["op"] in ("matmul", "conv") and p["seconds"] > 0]
        return max(rates) if rates else None

    def bandwidth(self) -> float:
        """Main-memory bandwidth (read + write bytes/s) of PyTorch's largest elementwise pass."""
        first = self.series.get("torch/fp32") or self.series.get("torch-cuda/fp32") or next(iter(self.series.values()))
        return first.bandwidth.largest

    def to_dict(self) -> dict:
        return {"kind": SCHEMA, "version": VERSION, "device": self.device, "machine": self.machine,
                "created": self.created, "quick": self.quick, "seconds": self.seconds,
                "clock": self.clock, "series": {k: s.to_dict() for k, s in self.series.items()},
                "skipped": self.skipped, "points": self.points}

    @classmethod
    def from_dict(cls, d: dict, path: str | None = None) -> "Calibration":
        if d.get("kind") != SCHEMA or d.get("version") != VERSION:
            raise ConfigError(f"{path or 'calibration'} is not a trimnet calibration (version {VERSION}); "
                              "run `trimnet hardware calibrate` again")
        return cls(d["device"], d["machine"], d["created"], bool(d["quick"]), float(d["seconds"]),
                   {k: Series.from_dict(v) for k, v in d["series"].items()}, d.get("points", []),
                   d.get("skipped", {}), path, d.get("clock", "wall"))


# ---------------------------------------------------------------- where it lives, and which machine

def cache_dir() -> Path:
    """``$TRIMNET_CACHE``, else ``$XDG_CACHE_HOME/trimnet``, else ``~/.cache/trimnet``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trimnet"


def profile_path(device: str = "cpu") -> Path:
    return cache_dir() / ("local.json" if device == "cpu" else "local-cuda.json")


def describe_machine(device: str = "cpu", threads: int | None = None) -> dict:
    """What a calibration depends on: CPU, cores, threads, GPU, library versions."""
    from trimnet.bench.env import describe_cpu, describe_gpu, package_version

    cpu = describe_cpu()
    gpu = describe_gpu() if device == "cuda" else None
    versions = {pkg: torch.__version__ if pkg == "torch" else package_version(pkg) for pkg in version_keys()}
    return {"device": device, "cpu": cpu["name"], "usable_cores": cpu["usable_cores"],
            "threads": threads or torch.get_num_threads(), "flags": cpu["flags"],
            "gpu": gpu["name"] if gpu else None, **versions, "memory_bytes": _memory_bytes(device)}


def _memory_bytes(device: str) -> int | None:
    """RAM (or the GPU's memory) that a model's weights and activations must fit in."""
    if device == "cuda":
        return int(torch.cuda.get_device_properties(0).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def machine_differences(saved: dict, current: dict) -> list[str]:
    return [f"{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in machine_keys()
            if saved.get(k) != current.get(k)]


def load_calibration(device: str = "cpu", *, path: str | Path | None = None, check: bool = True,
                     threads: int | None = None) -> Calibration:
    """The saved ``local`` profile; a ConfigError when there is none or it is from another machine."""
    p = Path(path) if path is not None else profile_path(device)
    name = "local" if device == "cpu" else "local-cuda"
    if not p.is_file():
        raise ConfigError(f"device {name!r} is not calibrated yet ({p} does not exist); run `trimnet hardware "
                          f"calibrate{'' if device == 'cpu' else ' --device cuda'}` (about a minute; --quick: ~10 s)")
    try:
        cal = Calibration.from_dict(json.loads(p.read_text()), str(p))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{p} is not a readable calibration ({exc}); run `trimnet hardware calibrate` again") from None
    if check:
        diff = machine_differences(cal.machine, describe_machine(cal.device, threads))
        if diff:
            raise ConfigError(f"the calibration in {p} was made on a different machine or setup ({'; '.join(diff)}); "
                              "run `trimnet hardware calibrate` again")
    return cal


def save_calibration(cal: Calibration, path: str | Path | None = None) -> Path:
    p = Path(path) if path is not None else profile_path(cal.device)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(cal.to_dict(), indent=1))
    tmp.replace(p)  # atomic: a reader never sees half a file
    cal.path = str(p)
    return p


def summary(cal: Calibration) -> list[dict[str, Any]]:
    """One row per series: overheads, fitted peaks and bandwidth, for tables."""
    rows = []
    for key, s in cal.series.items():
        rows.append({"series": key, "call_us": s.call_s * 1e6, "layer_us": s.layer_s * 1e6,
                     "matmul_peak_gflops": s.matmul.peak / 1e9, "matmul_fit_error": s.matmul.error,
                     "conv_peak_gflops": s.conv.peak / 1e9, "conv_fit_error": s.conv.error,
                     "dram_gbs": s.bandwidth.largest / 1e9, "cache_gbs": s.bandwidth(1e6) / 1e9,  # 1 MB moved
                     "borrowed": s.borrowed})
    return rows
