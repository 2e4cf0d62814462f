"""Typed, versioned configs: dataclasses that round-trip to dicts and YAML.

Every section is a dataclass; ``from_dict`` rejects unknown keys and wrong types with a
message that lists the valid keys, and ``apply_overrides`` takes CLI-style dotted
overrides (``train.epochs=5``) with values parsed by the field's declared type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

from trimnet.errors import ConfigError

CONFIG_VERSION = 1
C = TypeVar("C")


@dataclass
class DataConfig:
    source: str = "digits"
    label: str | None = None  # csv: name of the label column (default: the last one)
    val_split: float = 0.1  # share of the training part held out for validation
    test_split: float = 0.25  # share held out for the final test (ignored if the source has its own)
    seed: int = 0
    image_size: int | None = None  # resize images to this side (folder images, or upsampling)
    text: str | None = None  # csv: the column of raw text (then the samples are token ids)
    seq_len: int = 64  # text: tokens per sample (padded or truncated)
    vocab_size: int = 4096  # text: the most tokens the tokenizer trained on the train split may hold
    tokenizer: str = "bpe"  # text: bpe | wordpiece | a tokenizer.json to reuse instead of training one
    stream: bool = False  # folder:/text: read samples from disk per batch instead of loading them all

    def validate(self) -> None:
        if self.seq_len < 1:
            raise ConfigError(f"data.seq_len must be >= 1; got {self.seq_len}")
        if self.vocab_size < 8:
            raise ConfigError(f"data.vocab_size must be >= 8; got {self.vocab_size}")
        for name in ("val_split", "test_split"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1); got {value}")
        if self.val_split + self.test_split >= 1.0:
            raise ConfigError("data.val_split + data.test_split must leave data to train on")
        if self.image_size is not None and self.image_size < 1:
            raise ConfigError(f"data.image_size must be positive; got {self.image_size}")


@dataclass
class ModelConfig:
    name: str = "cnn"
    options: dict = field(default_factory=dict)  # keyword arguments of the model factory

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("model.name is empty; pass --model NAME (see `trimnet train --list-models`)")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 1024
    optimizer: str = "adam"  # sgd | adam | adamw
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    schedule: str = "none"  # none | cosine | step | onecycle
    step_size: int = 10  # step schedule: epochs between decays
    gamma: float = 0.1  # step schedule: decay factor
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # max global gradient norm
    early_stopping: int = 0  # patience in epochs on validation accuracy; 0 = off
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compile: bool = False  # torch.compile the training step's model (worth it on GPUs, long runs)
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps; 0 = once per epoch
    progress: bool = True  # progress bar (off anyway when not a terminal or CI is set)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1; got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("train.batch_size and train.eval_batch_size must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0; got {self.lr}")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ConfigError(f"train.optimizer {self.optimizer!r} is unknown; choose sgd, adam or adamw")
        if self.schedule not in ("none", "cosine", "step", "onecycle"):
            raise ConfigError(
                f"train.schedule {self.schedule!r} is unknown; choose none, cosine, step or onecycle"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"train.label_smoothing must be in [0, 1); got {self.label_smoothing}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"train.grad_clip must be > 0; got {self.grad_clip}")
        if self.checkpoint_every < 0 or self.early_stopping < 0:
            raise ConfigError("train.checkpoint_every and train.early_stopping must be >= 0")


@dataclass
class RunConfig:
    """What `trimnet train` needs: data, model, training and where to write."""

    version: int = CONFIG_VERSION
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str | None = None

    def validate(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ConfigError(
                f"config version {self.version} is not supported; this trimnet reads version {CONFIG_VERSION}"
            )
        self.data.validate()
        self.model.validate()
        self.train.validate()


# ---------------------------------------------------------------------------- conversion


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[C], data: dict | None, where: str = "") -> C:
    """Build dataclass ``cls`` from a plain dict, checking keys and types."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping; got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; valid keys: "
            + ", ".join(prefix + k for k in fields)
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(hints[name], value, key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{key} must be true or false; got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number; got {value!r}")
        try:
            number = tp(value) if not isinstance(value, str) else tp(float(value)) if tp is float else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be {'an integer' if tp is int else 'a number'}; got {value!r}") from None
        if tp is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{key} must be an integer; got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string; got {value!r}")
        return str(value)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping; got {value!r}")
        return dict(value)
    return value


def load_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path given to -c")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


def apply_overrides(data: dict, overrides: list[tuple[str, str]]) -> dict:
    """Set dotted keys (``train.epochs``) in a nested dict; values are YAML scalars."""
    import yaml

    data = _deepcopy(data)
    for dotted, raw in overrides:
        parts = dotted.split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {dotted}: {part} is not a section")
        try:
            value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        except yaml.YAMLError:
            value = raw
        node[parts[-1]] = value
    return data


def merge(base: dict, update: dict) -> dict:
    """``update`` laid over ``base``, section by section (a model's ``options`` are replaced whole)."""
    out = dict(base)
    for k, v in update.items():
        nested = isinstance(v, dict) and isinstance(out.get(k), dict) and k != "options"
        out[k] = merge(out[k], v) if nested else v
    return out


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


def dump_yaml(cfg: Any, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
