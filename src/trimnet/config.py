"""Typed, versioned configs: dataclasses that round-trip to dicts and YAML.

Every section is a dataclass; ``from_dict`` rejects unknown keys and wrong types with a
message that lists the valid keys, and ``apply_overrides`` takes CLI-style dotted
overrides (``train.epochs=5``) with values parsed by the field's declared type.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

from trimnet.errors import ConfigError

CONFIG_VERSION = 1
C = TypeVar("C")
MAX_IMAGE_SIZE = 4096  # a side past this is a typo (100000) that would allocate terabytes
MAX_YAML_NODES = 100_000  # a config expands to at most this many values (YAML aliases counted each time)
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


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
    task: str = "classification"  # classification | regression (the label column holds real numbers)
    workers: int = 2  # data.stream: DataLoader worker processes decoding batches (0: in the training process)

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
        if self.image_size is not None and not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ConfigError(f"data.image_size must be between 1 and {MAX_IMAGE_SIZE} pixels; got {self.image_size}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"data.seed must be in [0, 2^32); got {self.seed}")
        if not 0 <= self.workers <= 64:
            raise ConfigError(f"data.workers must be between 0 and 64, not {self.workers}")
        if self.task not in ("classification", "regression"):
            raise ConfigError(f"data.task must be classification or regression, not {self.task!r}")
        if not self.source:
            raise ConfigError("data.source is empty; pass --data digits, csv:PATH, npz:PATH, folder:DIR, ...")


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
        if self.momentum < 0 or self.weight_decay < 0 or self.warmup_epochs < 0 or self.gamma <= 0:
            raise ConfigError("train.momentum, train.weight_decay and train.warmup_epochs must be >= 0, "
                              "train.gamma > 0")
        if self.step_size < 1:
            raise ConfigError(f"train.step_size must be >= 1; got {self.step_size}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"train.seed must be in [0, 2^63); got {self.seed}")
        for name in ("lr", "momentum", "weight_decay", "gamma", "warmup_epochs", "grad_clip"):
            value = getattr(self, name)
            if value is not None and abs(value) > 1e30:  # torch keeps these in float32 (max 3.4e38)
                raise ConfigError(f"train.{name} is {value:g}, past any usable value (at most 1e30)")
        if not DEVICE.match(self.device):
            raise ConfigError(f"train.device {self.device!r} is unknown; choose auto, cpu, cuda, cuda:N or mps")


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
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        close = difflib.get_close_matches(unknown[0], list(fields), n=1)
        hint = f"did you mean {prefix}{close[0]}? " if close else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; {hint}valid keys: "
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
        kind = "an integer" if tp is int else "a number"
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be {kind}; got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number; got {value!r}")
        if tp is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{key} must be an integer; got {value!r}")
        try:
            number = tp(value) if not isinstance(value, str) else tp(float(value)) if tp is float else int(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{key} must be {kind}; got {value!r}") from None
        if tp is float and not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite number; got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string; got {value!r}")
        return str(value)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping; got {value!r}")
        return dict(value)
    if tp is list or origin is list or tp is tuple or origin is tuple:
        # one value where a list is expected is a list of one (--optimize.ratios 0.5, --optimize.criteria apoz);
        # "0.5,0.75" is two
        if isinstance(value, str) and "," in value:
            value = [_scalar(v.strip()) for v in value.split(",") if v.strip()]
        elif isinstance(value, tuple):
            value = list(value)
        elif not isinstance(value, list):
            value = [value]
        args = typing.get_args(tp)
        if args and args[0] is not Ellipsis:
            value = [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(value) if (tp is tuple or origin is tuple) else value
    return value


def _scalar(text: str) -> Any:
    """A YAML scalar (``0.5`` -> 0.5, ``apoz`` -> "apoz")."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def load_yaml(path: str | Path, flag: str = "-c") -> dict:
    """A YAML config file as a dict; ``flag`` is what the user passed it with (for the message)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path given to {flag}")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (UTF-8) YAML file; check the path given to {flag}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; check the path given to {flag}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping (key: value lines) at the top level")
    return data


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` that refuses alias bombs (anchors that expand past ``MAX_YAML_NODES``
    values) before building anything, and reports a syntax error on one line."""
    import yaml

    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            size = _expanded_size(node, {})
            if size > MAX_YAML_NODES:
                raise ConfigError(f"{where} expands to {size:,} values through YAML aliases (at most "
                                  f"{MAX_YAML_NODES:,}); write the values out instead of nesting anchors")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {_yaml_message(exc)}") from None
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"{where} is not valid YAML: {type(exc).__name__}") from None


def _expanded_size(node: Any, memo: dict) -> int:
    """Values ``node`` stands for once every alias is expanded (memoized: the graph is a DAG)."""
    import yaml

    key = id(node)
    if key in memo:
        if memo[key] < 0:
            raise ConfigError("a YAML alias refers to the node that contains it; remove the cycle")
        return memo[key]
    memo[key] = -1
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = min(size, 10 * MAX_YAML_NODES)
    return memo[key]


def _yaml_message(exc: Exception) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def apply_overrides(data: dict, overrides: list[tuple[str, str]]) -> dict:
    """Set dotted keys (``train.epochs``) in a nested dict; values are YAML scalars."""
    data = _deepcopy(data)
    for dotted, raw in overrides:
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"--{dotted} is not a config key; keys look like --train.epochs")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {dotted}: {part} is not a section")
        if isinstance(raw, str):
            try:
                value = parse_yaml(raw, f"--{dotted}")
            except ConfigError as exc:
                if "aliases" in str(exc) or "cycle" in str(exc):
                    raise
                value = raw  # not YAML: the text itself (a path with a colon, say)
            if isinstance(value, (dict, list)) and not raw.lstrip().startswith(("{", "[")):
                value = raw  # "csv:" or "a: b" is text; a mapping or list in a flag is written {..} / [..]
        else:
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

    from trimnet.files import atomic_write

    atomic_write(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
