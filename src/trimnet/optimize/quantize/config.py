"""``QuantizeConfig``: which precision on which runtime, calibrated how, and what it may cost."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trimnet.errors import ConfigError
from trimnet.precision import Precision

QUANTIZE_CONFIG_VERSION = 1
DYNAMIC_INT8 = "int8-dynamic"  # int8 weights, activations quantized per batch: a method, not a number format
PRECISIONS = (Precision.BF16.value, Precision.FP16.value, Precision.INT8.value, DYNAMIC_INT8)
# the backend a precision runs on when none is named: the one whose tool does it best on a CPU
DEFAULT_BACKEND = {"bf16": "openvino", "fp16": "openvino", "int8": "openvino", "int8-dynamic": "onnxruntime"}


@dataclass(frozen=True)
class QuantizeConfig:
    """Lower ``precision`` on ``backend``, and say what it cost.

    ``calibration``: training samples that calibrate static INT8 activation ranges.
    ``max_accuracy_drop``: absolute test accuracy (0.005 = half a point) the result may
    lose against the fp32 model; more raises ``AccuracyDropError`` and nothing is written.
    ``batch_sizes``: where latency is measured (interleaved with fp32 on the same backend);
    when the lower precision is slower there, the fp32 model is kept unless ``keep_slower``.
    """

    precision: str = "int8"
    backend: str | None = None  # None: DEFAULT_BACKEND[precision]
    calibration: int = 300
    per_channel: bool = True
    fast_bias_correction: bool = False  # NNCF (openvino int8): about 2x quicker to calibrate, a little less accurate
    max_accuracy_drop: float | None = None
    fuse: bool = True  # fold BatchNorm and merge linear chains first (exact; never hurts)
    batch_sizes: tuple[int, ...] = (1, 64)
    keep_slower: bool = False
    bench_time_s: float = 1.0  # measured seconds per batch size (each of fp32 and the candidate)
    threads: int | None = None  # None: torch's current thread count, for every runtime
    seed: int = 0
    version: int = QUANTIZE_CONFIG_VERSION

    def __post_init__(self) -> None:
        # any spelling of a precision ("f16", "bfloat16") is stored as trimnet's ("fp16"); unknown names
        # are left as given, for ``validate`` to refuse with the choices
        if self.precision != DYNAMIC_INT8:
            try:
                object.__setattr__(self, "precision", Precision.parse(self.precision).value)
            except ValueError:
                pass

    @property
    def resolved_backend(self) -> str:
        return self.backend or DEFAULT_BACKEND[self.precision]

    def validate(self) -> "QuantizeConfig":
        if self.version != QUANTIZE_CONFIG_VERSION:
            raise ConfigError(f"quantize config version {self.version} is not supported; this trimnet reads "
                              f"version {QUANTIZE_CONFIG_VERSION}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if self.calibration < 1:
            raise ConfigError(f"calibration must be at least 1 sample; got {self.calibration}")
        if self.max_accuracy_drop is not None and not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise ConfigError(f"max_accuracy_drop is a fraction of accuracy in [0, 1] (0.005 = half a point); "
                              f"got {self.max_accuracy_drop}")
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch_sizes must be positive integers; got {self.batch_sizes}")
        if self.bench_time_s <= 0:
            raise ConfigError(f"bench_time_s must be > 0; got {self.bench_time_s}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1; got {self.threads}")
        return self

    def replace(self, **changes) -> "QuantizeConfig":
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["batch_sizes"] = list(self.batch_sizes)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "QuantizeConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown quantize config keys {unknown}; valid keys: {', '.join(sorted(known))}")
        values = dict(data)
        if "batch_sizes" in values:
            values["batch_sizes"] = tuple(values["batch_sizes"])
        return cls(**values).validate()
