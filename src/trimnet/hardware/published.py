"""The published-results regression set: measured figures from MLPerf logs and vendor tables.

``benchmarks/published/figures.yaml`` holds each figure with its source address (a file at a
fixed commit), the model, precision, batch, runtime, device and mode. ``load_figures()`` reads
and checks it; ``split()`` divides it into the figures the efficiency curves are fitted on and
the held-out ones they are judged on, by a hash of each figure's id (never by its value);
``workload(model, seq)`` is the trimnet profile of the model a figure names.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from trimnet.errors import ConfigError

FIGURES_PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "published" / "figures.yaml"
MODELS = {  # key -> (zoo model, encoder width, depth, heads); resnet50 takes 3x224x224 images
    "resnet50": ("resnet50", None, None, None),
    "bert-base": ("bert_base_encoder", 768, 12, 12),
    "bert-large": ("bert_base_encoder", 1024, 24, 16),
}
METRICS = ("latency_ms", "throughput")
MODES = ("inference", "training")
OFFLINE_BATCH = 256  # MLPerf Offline logs state no batch: their time is per this many samples, made at the best batch
HOLDOUT_EVERY = 3  # one figure in three (by id hash) is held out


@dataclass(frozen=True)
class Figure:
    id: str
    device: str
    model: str
    precision: str
    batch: int | None
    runtime: str
    mode: str
    metric: str
    value: float
    source: str
    where: str
    seq: int | None = None
    gpus: int = 1
    accumulation: int = 1
    dataset: str | None = None

    @property
    def model_batch(self) -> int:
        """The stated batch, else the samples an Offline time is counted per (``fitted.predict`` picks its batch)."""
        return self.batch if self.batch is not None else OFFLINE_BATCH

    @property
    def seconds_per_batch(self) -> float:
        """Measured seconds per batch per device (throughput figures converted at ``model_batch``)."""
        if self.metric == "latency_ms":
            return self.value / 1e3
        return self.model_batch * self.gpus / self.value

    @property
    def held_out(self) -> bool:
        return int(hashlib.sha1(self.id.encode()).hexdigest(), 16) % HOLDOUT_EVERY == 0


def load_figures(path: str | Path | None = None) -> list[Figure]:
    """Every figure in the regression set, checked; a ConfigError naming the bad entry otherwise."""
    import yaml

    p = Path(path) if path else FIGURES_PATH
    if not p.is_file():
        raise ConfigError(f"published figures {p} not found (they ship in a source checkout's benchmarks/published/)")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    fields = {f.name for f in dataclasses.fields(Figure)}
    out, seen = [], set()
    for i, entry in enumerate(data.get("figures") or []):
        where = f"{p}: figure {i} ({entry.get('id', '?')})"
        unknown = set(entry) - fields
        if unknown:
            raise ConfigError(f"{where} has unknown field(s) {', '.join(sorted(unknown))}")
        try:
            fig = Figure(**entry)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if fig.id in seen:
            raise ConfigError(f"{where}: duplicate id")
        seen.add(fig.id)
        if fig.model not in MODELS or fig.metric not in METRICS or fig.mode not in MODES:
            raise ConfigError(f"{where}: model must be one of {', '.join(MODELS)}, metric one of {', '.join(METRICS)}, "
                              f"mode one of {', '.join(MODES)}")
        if not fig.source.startswith("https://") or not fig.value > 0:
            raise ConfigError(f"{where} needs an https source address and a positive value")
        if fig.model != "resnet50" and not fig.seq:
            raise ConfigError(f"{where}: a BERT figure needs its sequence length (seq)")
        out.append(fig)
    return out


def split(figures: list[Figure]) -> tuple[list[Figure], list[Figure]]:
    """(fitted on, held out): one in ``HOLDOUT_EVERY`` by a hash of the id, so the choice cannot follow the values."""
    return [f for f in figures if not f.held_out], [f for f in figures if f.held_out]


@lru_cache(maxsize=None)
def workload(model: str, seq: int | None = None, training: bool = False):
    """The profile (batch 1) of a regression-set model. BERT stacks are profiled one block deep and repeated."""
    from trimnet.models.registry import create_model
    from trimnet.profile import profile

    if model not in MODELS:
        raise ConfigError(f"unknown published-set model {model!r}; choose one of: {', '.join(MODELS)}")
    zoo, dim, depth, heads = MODELS[model]
    if dim is None:
        return profile(create_model(zoo, (3, 224, 224), 1000), (1, 3, 224, 224), training=training)
    if not seq:
        raise ConfigError(f"{model} needs a sequence length")
    one = profile(create_model(zoo, (seq, dim), 2, depth=1, heads=heads), (1, seq, dim), training=training)
    return repeat_block(one, depth)


def repeat_block(prof, depth: int):
    """A depth-1 encoder profile with its block ("0.0.*") repeated ``depth`` times; totals scaled to match."""
    block = [layer for layer in prof.layers if layer.name.startswith("0.0")]
    rest = [layer for layer in prof.layers if not layer.name.startswith("0.0")]
    layers = list(rest[:1])  # the model row and the stack, if recorded
    for d in range(depth):
        layers += [dataclasses.replace(layer, name=f"0.{d}" + layer.name[3:]) for layer in block]
    layers += rest[1:]
    extra = depth - 1
    sums: dict[str, Any] = {}
    for key in ("macs", "flops", "backward_macs", "backward_flops"):
        sums[key] = getattr(prof, key) + extra * sum(getattr(layer, key) for layer in block)
    block_params = sum(layer.params for layer in block)
    block_bytes = sum(layer.weight_bytes for layer in block)
    params = prof.params + extra * block_params
    param_bytes = {k: v + extra * block_bytes * v / max(sum(prof.param_bytes.values()), 1)
                   for k, v in prof.param_bytes.items()}
    return dataclasses.replace(prof, layers=layers, params=params, trainable_params=params,
                               param_bytes={k: int(v) for k, v in param_bytes.items()}, **sums)


def profile_for(fig: Figure):
    return workload(fig.model, fig.seq)
