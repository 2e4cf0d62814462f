"""The hardware catalog: devices with dense peaks per precision, memory, bandwidth, power and a source.

The bundled ``catalog.yaml`` is read first, then any user files (``paths=`` / ``--catalog``,
and the ``TRIMNET_CATALOG`` environment variable, several separated by ``os.pathsep``); a
user entry with a bundled name replaces it. Every entry is checked, and a bad one stops
with the file, the device and the key that is wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from trimnet.errors import ConfigError
from trimnet.precision import Precision

CATALOG_ENV = "TRIMNET_CATALOG"
PRECISIONS = Precision.names()  # ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
KINDS = ("gpu", "cpu", "accelerator")
BYTES_PER_ELEMENT = {p.value: p.bytes for p in Precision}
_ENTRY_KEYS = {"name", "kind", "peak_tflops", "cpu", "memory_gb", "bandwidth_gbs", "tdp_w", "source", "assumption",
               "utilization", "overhead_us", "call_overhead_us", "l2_mb", "interconnect_gbs", "chip", "price_usd_hour"}
_BUILTIN = "built-in catalog.yaml"


@dataclass(frozen=True)
class Device:
    """One catalog device. Rates are per second: ``peak_flops`` in FLOP/s, ``bandwidth`` in bytes/s."""

    key: str
    name: str
    kind: str
    peak_flops: dict[str, float]
    bandwidth: float
    memory_bytes: float | None
    tdp_w: float | None
    source: str
    compute_utilization: float
    memory_utilization: float
    overhead_s: float  # per executed layer
    call_overhead_s: float  # per inference call
    assumption: str = ""
    origin: str = _BUILTIN  # the file the entry came from
    cpu: dict[str, Any] | None = field(default=None, compare=False)
    l2_bytes: float | None = None  # on-chip last-level cache: activations that fit are not charged to DRAM
    interconnect: float | None = None  # bytes/s between devices of a multi-device job (NVLink, PCIe)
    chip: str = ""  # devices on the same chip share fitted efficiencies (a100-40gb and a100-80gb)
    price_usd_hour: float | None = None  # a user's price; ranks recommendations when given
    explicit_utilization: bool = False  # the entry states its own utilization (the datasheet model is used)

    @property
    def family(self) -> str:
        return self.chip or self.key

    def peak(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision``; a ConfigError naming the precisions it has otherwise."""
        precision = check_precision(precision)
        if precision not in self.peak_flops:
            have = ", ".join(p for p in PRECISIONS if p in self.peak_flops)
            raise ConfigError(f"{self.key} has no published {precision} figure; it has: {have}")
        return self.peak_flops[precision]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "kind": self.kind,
                "peak_tflops": {p: v / 1e12 for p, v in self.peak_flops.items()},
                "bandwidth_gbs": self.bandwidth / 1e9,
                "memory_gb": self.memory_bytes / 1e9 if self.memory_bytes is not None else None,
                "tdp_w": self.tdp_w, "utilization": {"compute": self.compute_utilization,
                                                      "memory": self.memory_utilization},
                "overhead_us": self.overhead_s * 1e6, "call_overhead_us": self.call_overhead_s * 1e6,
                "cpu": self.cpu, "l2_mb": self.l2_bytes / 1e6 if self.l2_bytes else None,
                "interconnect_gbs": self.interconnect / 1e9 if self.interconnect else None, "chip": self.chip or None,
                "price_usd_hour": self.price_usd_hour,
                "assumption": self.assumption, "source": self.source, "origin": self.origin}


def check_precision(precision: str | Precision) -> str:
    """``precision`` in trimnet's spelling (``f16`` -> ``fp16``); a ConfigError naming the choices otherwise."""
    return Precision.parse(precision).value


def load_catalog(paths: Iterable[str | Path] | str | Path | None = None, *, env: bool = True) -> dict[str, Device]:
    """The bundled devices plus those in ``paths`` and ``$TRIMNET_CATALOG`` (later files win)."""
    text = resources.files("trimnet.hardware").joinpath("catalog.yaml").read_text(encoding="utf-8")
    devices = parse_catalog(_yaml(text, _BUILTIN), _BUILTIN)
    extra: list[str | Path] = []
    if env and os.environ.get(CATALOG_ENV):
        extra += [p for p in os.environ[CATALOG_ENV].split(os.pathsep) if p]
    if isinstance(paths, (str, Path)):
        paths = [paths]
    extra += list(paths or [])
    for path in extra:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"device catalog {p} does not exist (from --catalog or ${CATALOG_ENV})")
        user = parse_catalog(_yaml(p.read_text(encoding="utf-8"), str(p)), str(p), defaults=_defaults_of(text))
        devices.update(user)
    return devices


def get_device(name: str, catalog: Mapping[str, Device] | None = None) -> Device:
    """A catalog device by key; a ConfigError listing the valid keys otherwise."""
    catalog = load_catalog() if catalog is None else catalog
    if name not in catalog:
        raise ConfigError(f"unknown device {name!r}; choose one of: {', '.join(['local', *sorted(catalog)])} "
                          "(add your own with --catalog FILE.yaml)")
    return catalog[name]


# ---------------------------------------------------------------- parsing and validation

def _yaml(text: str, origin: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {str(exc).splitlines()[0]}") from None


def _defaults_of(builtin_text: str) -> dict:
    return (_yaml(builtin_text, _BUILTIN) or {}).get("defaults", {})


def parse_catalog(data: Any, origin: str, defaults: Mapping | None = None) -> dict[str, Device]:
    """Validate a loaded catalog document (``{"version": 1, "devices": {...}}``)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("devices"), Mapping) or not data["devices"]:
        raise ConfigError(f"{origin}: a device catalog is a mapping with a non-empty 'devices:' mapping "
                          "of name -> entry (see docs/hardware.md)")
    version = data.get("version", 1)
    if version != 1:
        raise ConfigError(f"{origin}: catalog version {version!r} is not supported; this trimnet reads version 1")
    merged = {**(defaults or {}), **(data.get("defaults") or {})}
    out = {}
    for key, entry in data["devices"].items():
        if not isinstance(key, str) or not key or key == "local" or any(c.isspace() or c == "," for c in key):
            raise ConfigError(f"{origin}: device name {key!r} must be a non-empty word without spaces or commas "
                              "('local' is the calibrated machine)")
        out[key] = _parse_entry(key, entry, origin, merged)
    return out


def _parse_entry(key: str, entry: Any, origin: str, defaults: Mapping) -> Device:
    where = f"{origin}: device {key!r}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping of fields")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_ENTRY_KEYS))}")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}; got {kind!r}")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where} needs a 'source:' (the datasheet name or URL its figures come from)")
    if ("peak_tflops" in entry) == ("cpu" in entry):
        raise ConfigError(f"{where} needs exactly one of 'peak_tflops:' or 'cpu:' (cores, clock_ghz, flop_per_cycle)")
    peaks = _cpu_peaks(entry["cpu"], where) if "cpu" in entry else _peaks(entry["peak_tflops"], where, "peak_tflops")
    base = defaults.get(kind, {}) if kind in defaults else {}
    util = {**base.get("utilization", {}), **(entry.get("utilization") or {})}
    for part in ("compute", "memory"):
        value = util.get(part, 0.5)
        if not _number(value) or not 0 < value <= 1:
            raise ConfigError(f"{where}: utilization.{part} must be in (0, 1]; got {value!r}")
    return Device(
        key=key,
        name=str(entry.get("name") or key),
        kind=kind,
        peak_flops=peaks,
        bandwidth=_positive(entry.get("bandwidth_gbs"), where, "bandwidth_gbs", required=True) * 1e9,
        memory_bytes=_opt(_positive(entry.get("memory_gb"), where, "memory_gb"), 1e9),
        tdp_w=_positive(entry.get("tdp_w"), where, "tdp_w"),
        source=" ".join(source.split()),
        compute_utilization=float(util.get("compute", 0.5)),
        memory_utilization=float(util.get("memory", 0.5)),
        overhead_s=_nonneg(entry.get("overhead_us", base.get("overhead_us", 0)), where, "overhead_us") / 1e6,
        call_overhead_s=_nonneg(entry.get("call_overhead_us", base.get("call_overhead_us", 0)), where,
                                "call_overhead_us") / 1e6,
        assumption=" ".join(str(entry.get("assumption") or "").split()),
        origin=origin,
        cpu=dict(entry["cpu"]) if "cpu" in entry else None,
        l2_bytes=_opt(_positive(entry.get("l2_mb"), where, "l2_mb"), 1e6),
        interconnect=_opt(_positive(entry.get("interconnect_gbs"), where, "interconnect_gbs"), 1e9),
        chip=str(entry.get("chip") or ""),
        price_usd_hour=_positive(entry.get("price_usd_hour"), where, "price_usd_hour"),
        explicit_utilization="utilization" in entry,
    )


def _peaks(value: Any, where: str, field_name: str, scale: float = 1e12) -> dict[str, float]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{where}: {field_name} must map precisions ({', '.join(PRECISIONS)}) to numbers")
    out = {}
    for precision, v in value.items():
        if precision not in PRECISIONS:
            raise ConfigError(f"{where}: {field_name} has unknown precision {precision!r}; "
                              f"known: {', '.join(PRECISIONS)}")
        out[precision] = _positive(v, where, f"{field_name}.{precision}", required=True) * scale
    return out


def _cpu_peaks(cpu: Any, where: str) -> dict[str, float]:
    """cores x clock x FLOP per cycle per core, per precision."""
    if not isinstance(cpu, Mapping):
        raise ConfigError(f"{where}: cpu must be a mapping with cores, clock_ghz and flop_per_cycle")
    cores = _positive(cpu.get("cores"), where, "cpu.cores", required=True)
    clock = _positive(cpu.get("clock_ghz"), where, "cpu.clock_ghz", required=True)
    per_cycle = _peaks(cpu.get("flop_per_cycle"), where, "cpu.flop_per_cycle", scale=1.0)
    return {p: cores * clock * 1e9 * v for p, v in per_cycle.items()}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive(v: Any, where: str, name: str, *, required: bool = False) -> float | None:
    if v is None and not required:
        return None
    if not _number(v) or v <= 0:
        raise ConfigError(f"{where}: {name} must be a positive number; got {v!r}")
    return float(v)


def _nonneg(v: Any, where: str, name: str) -> float:
    if not _number(v) or v < 0:
        raise ConfigError(f"{where}: {name} must be a number >= 0; got {v!r}")
    return float(v)


def _opt(v: float | None, scale: float) -> float | None:
    return None if v is None else v * scale
