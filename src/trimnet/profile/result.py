"""What ``trimnet.profile`` returns: a ``Profile`` with one ``LayerProfile`` per module that ran."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trimnet.errors import ConfigError


@dataclass(frozen=True)
class LayerProfile:
    """One module's own work (its children are rows of their own).

    ``flops`` and the three byte counts are what a roofline estimate needs: arithmetic
    intensity is FLOPs per byte moved, weights plus input and output activations.
    """

    name: str  # module path as in state_dict keys; "" is the model itself
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    flops: int
    weight_bytes: int  # parameters and buffers read, once per call
    input_bytes: int  # activations its operators read
    output_bytes: int  # activations its operators wrote
    calls: int = 1
    backward_macs: int = 0
    backward_flops: int = 0

    @property
    def activation_bytes(self) -> int:
        return self.input_bytes + self.output_bytes

    @property
    def bytes(self) -> int:
        """All bytes moved: weights + input + output activations."""
        return self.weight_bytes + self.activation_bytes

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: FLOPs per byte moved (0 when nothing moved)."""
        return self.flops / self.bytes if self.bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        d["activation_bytes"] = self.activation_bytes
        d["intensity"] = round(self.intensity, 4)
        return d


@dataclass(frozen=True)
class OperatorProfile:
    """One aten operator over the whole run."""

    name: str
    calls: int
    macs: int
    flops: int
    backward_calls: int = 0
    backward_macs: int = 0
    backward_flops: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Profile:
    """Exact operator-level counts for one forward (and, in training, backward) pass.

    ``macs`` and ``flops`` are the forward pass at the profiled batch; ``backward_*`` are
    zero unless ``training``. Per-sample figures divide by ``batch``.
    """

    model: str
    inputs: list[tuple[int, ...]]
    batch: int
    training: bool
    tensors: str  # "fake" (no arithmetic done) or "real"
    macs: int
    flops: int
    params: int
    trainable_params: int
    backward_macs: int = 0
    backward_flops: int = 0
    layers: list[LayerProfile] = field(default_factory=list)
    operators: dict[str, OperatorProfile] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)
    param_bytes: dict[str, int] = field(default_factory=dict)
    buffer_bytes: dict[str, int] = field(default_factory=dict)
    peak_activation_bytes: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    outputs: list[tuple[int, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    modules: dict[str, tuple[int, int, int, int]] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- totals

    @property
    def total_macs(self) -> int:
        return self.macs + self.backward_macs

    @property
    def total_flops(self) -> int:
        """Forward + backward (just forward when not profiled for training)."""
        return self.flops + self.backward_flops

    @property
    def total_param_bytes(self) -> int:
        return sum(self.param_bytes.values())

    def per_sample(self) -> dict[str, float]:
        """Forward, backward and total work for one sample of the batch."""
        b = max(self.batch, 1)
        return {
            "macs": self.macs / b,
            "flops": self.flops / b,
            "backward_macs": self.backward_macs / b,
            "backward_flops": self.backward_flops / b,
            "total_flops": self.total_flops / b,
        }

    def training_flops(self, samples: int, epochs: int = 1) -> int:
        """FLOPs to train for ``epochs`` over ``samples`` examples (forward + backward, no optimizer)."""
        if not self.training:
            raise ConfigError("training compute needs a training profile; profile with training=True (--training)")
        if samples < 1 or epochs < 1:
            raise ConfigError(f"samples and epochs must be >= 1; got samples={samples}, epochs={epochs}")
        return round(self.total_flops * samples * epochs / max(self.batch, 1))

    # ---------------------------------------------------------------- views

    def by_operator(self) -> dict[str, OperatorProfile]:
        """Per aten operator, most FLOPs first."""
        ops = sorted(self.operators.values(), key=lambda o: (-(o.flops + o.backward_flops), o.name))
        return {o.name: o for o in ops}

    def by_module(self, depth: int | None = None) -> dict[str, dict[str, int]]:
        """Totals per module path including its children, down to ``depth`` dots ("" is the model)."""
        out: dict[str, dict[str, int]] = {}
        for name, (macs, flops, bmacs, bflops) in self.modules.items():
            parts = name.split(".") if name else []
            for i in range(0, len(parts) + 1):
                if depth is not None and i > depth:
                    break
                key = ".".join(parts[:i])
                agg = out.setdefault(key, {"macs": 0, "flops": 0, "backward_macs": 0, "backward_flops": 0})
                agg["macs"] += macs
                agg["flops"] += flops
                agg["backward_macs"] += bmacs
                agg["backward_flops"] += bflops
        return out

    def table(self, max_rows: int | None = None) -> str:
        from trimnet.profile.report import table

        return table(self, max_rows=max_rows)

    def to_dict(self) -> dict[str, Any]:
        from trimnet.profile.report import to_dict

        return to_dict(self)

    def __str__(self) -> str:
        return self.table()
