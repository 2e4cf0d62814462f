"""The run directory: ``model.safetensors`` + ``model.json`` (+ ``metrics.json``, ``config.yaml``).

Loading reads tensors and JSON only; no pickle is ever executed. A model the layer spec
can describe is stored as spec + weights and rebuilt exactly (pruned widths included);
any other ``nn.Module`` is stored as a ``torch.export`` program (``model.pt2``). A user's
module built by ``--model file.py:function`` also keeps that reference, its options and its
weights (safetensors): ``load_artifact(path, rebuild=True)`` calls the function again and
loads the weights, giving a trainable, prunable module; the default load never imports
the user's code and returns the program.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from trimnet.data.dataset import Normalization
from trimnet.errors import ArtifactError, ConfigError, ModelError
from trimnet.models.checked import MAX_PARAMS  # a model.json asking for more is corrupt or hostile
from trimnet.files import atomic_path, atomic_write  # noqa: F401  (atomic_write: used by importers too)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

FORMAT = "trimnet.artifact"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "model.json"
PROGRAM = "model.pt2"
METRICS = "metrics.json"
MAX_INPUT_VALUES = 1 << 28  # per sample (a 3 x 9459 x 9459 image); more is a typo
MAX_CLASSES = 1 << 20
TOKENIZER = "tokenizer.json"
TOKENIZER_KEY = "tokenizer_json"  # meta["data"][...] in memory: the tokenizer's JSON, so re-saves carry it


@dataclass
class Artifact:
    """A loaded run directory: the model in eval mode and what it needs to read inputs."""

    path: Path
    model: nn.Module
    meta: dict = field(default_factory=dict)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["in_shape"])

    @property
    def class_names(self) -> list[str]:
        """The classes, in output order; empty for a task without classes (regression)."""
        return list(self.meta.get("class_names") or [])

    @property
    def task(self) -> dict:
        """The task the model was trained for (``{"name": "classification", "metric": "accuracy", ...}``)."""
        return dict(self.meta.get("task") or {"name": "classification", "metric": "accuracy"})

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.path.name

    @property
    def normalization(self) -> Normalization | None:
        norm = self.meta.get("normalization")
        return Normalization.from_dict(norm) if norm else None

    @property
    def metrics(self) -> dict:
        path = self.path / METRICS
        return read_json(path) if path.exists() else {}

    def example_inputs(self, batch: int = 1, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        if hasattr(self.model, "sample_inputs"):  # token ids and the like (models/families)
            return self.model.sample_inputs(batch, g)
        return torch.randn((batch, *self.in_shape), generator=g)

    @property
    def reads_text(self) -> bool:
        """Whether the model takes token ids made by the run's ``tokenizer.json``."""
        return bool(self.meta.get("tokenizer"))

    @property
    def tokenizer(self) -> str | None:
        """The run's ``tokenizer.json`` text (None for a model that does not read text)."""
        if not self.reads_text:
            return None
        return (self.meta.get("data") or {}).get(TOKENIZER_KEY) or _read_tokenizer(
            self.path / self.meta["tokenizer"].get("file", TOKENIZER))

    def encode_text(self, texts: Sequence[str]) -> "np.ndarray":
        """Raw strings -> ``(N, seq_len)`` float32 token ids, padded or truncated as in training."""
        from trimnet.data.tokenizer import encode, load_tokenizer

        if not self.reads_text:
            raise ArtifactError(f"{self.path} was not trained on text (no {TOKENIZER}); pass numeric inputs")
        if isinstance(texts, str):
            texts = [texts]
        return encode(load_tokenizer(self.tokenizer, self.in_shape[0]), list(texts))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs (as in the source files) -> what the model was trained on."""
        norm = self.normalization
        return norm.apply(x.float()) if norm is not None else x.float()


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=float) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing; is this a trimnet run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is truncated or corrupt ({exc}); rebuild it (train or export again)") from None


def save_artifact(
    model: nn.Module,
    out: str | Path,
    *,
    in_shape: Sequence[int],
    class_names: Sequence[str] | None = None,
    normalization: Normalization | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``model`` and its metadata into run directory ``out``; returns the directory.

    ``class_names`` may be left out for a task without classes; ``extra["task"]`` (the
    task's description) says what the outputs mean, and ``num_classes`` then counts outputs.
    """
    from safetensors.torch import save as st_save

    from trimnet import __version__
    from trimnet.models.registry import to_spec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu()
    extra = dict(extra or {})
    tokenizer = None
    if isinstance(extra.get("data"), dict) and extra["data"].get(TOKENIZER_KEY):
        extra["data"] = dict(extra["data"])
        tokenizer = extra["data"].pop(TOKENIZER_KEY)  # kept as tokenizer.json, not inside model.json
    meta: dict = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": out.name,
        "arch": getattr(model, "arch", type(model).__name__),
        "in_shape": list(in_shape),
        "num_classes": len(class_names) if class_names else _outputs(model, extra),
        "class_names": list(class_names or []),
        "normalization": normalization.to_dict() if normalization else None,
        "versions": {"trimnet": __version__, "torch": torch.__version__},
        **extra,
    }
    if tokenizer is not None:
        meta["tokenizer"] = {"file": TOKENIZER, "seq_len": int(in_shape[0])}
        atomic_write(out / TOKENIZER, tokenizer)
    try:
        meta["spec"] = to_spec(model)
        meta["weights"] = WEIGHTS
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        atomic_write(out / WEIGHTS, st_save(state, metadata={"format": FORMAT}))
    except ModelError as why:
        meta["spec"] = None
        meta["program"] = PROGRAM
        meta["spec_missing_reason"] = str(why)
        _save_program(model, out / PROGRAM, tuple(in_shape))
        source = getattr(model, "trimnet_source", None)
        if isinstance(source, dict):  # a user's function: rebuildable from its reference + these weights
            meta["source"] = {**source, "in_shape": list(in_shape), "num_classes": meta["num_classes"]}
            meta["weights"] = WEIGHTS
            state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
            atomic_write(out / WEIGHTS, st_save(state, metadata={"format": FORMAT}))
    write_json(out / META, meta)
    if metrics is not None:
        write_json(out / METRICS, metrics)
    return out


def _outputs(model: nn.Module, extra: dict | None) -> int:
    """The number of outputs of a model without class names (from its task description, else its own)."""
    task = (extra or {}).get("task") or {}
    return int(task.get("outputs") or getattr(model, "num_classes", 0) or 0)


def _save_program(model: nn.Module, path: Path, in_shape: tuple[int, ...]) -> None:
    was_training = model.training
    model.eval()
    example = torch.randn((2, *in_shape))
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    except Exception as exc:  # torch.export raises many types; the user needs the operator it names
        raise ArtifactError(
            f"{type(model).__name__} cannot be described by a layer spec and torch.export failed on it: "
            f"{str(exc).splitlines()[0]}; build it from trimnet layers or make it exportable"
        ) from None
    finally:
        model.train(was_training)
    with atomic_path(path) as tmp:
        torch.export.save(program, str(tmp))


def load_artifact(path: str | Path, *, rebuild: bool = False) -> Artifact:
    """Load a run directory written by ``save_artifact`` (or ``trimnet train``).

    ``rebuild``: a user's module recorded by reference is built again by importing its
    file (running that code, as ``--model`` did) and given the saved weights.
    """
    from trimnet.models.registry import from_spec

    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path} is not a directory; pass a run directory such as runs/digits-cnn")
    meta = read_json(path / META)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{path / META} is not a trimnet model description; is this a trimnet run directory?")
    check_meta(meta, path / META)
    if meta.get("spec") is None:
        model = _rebuild(path, meta) if rebuild and meta.get("source") else None
        if model is None:
            model = _load_program(_inside(path, meta.get("program", PROGRAM), "program", path / META))
    else:
        build = lambda: from_spec(meta["spec"], arch=meta.get("arch", "custom"),  # noqa: E731
                                  in_shape=meta["in_shape"],
                                  num_classes=meta.get("num_classes", len(meta.get("class_names") or [])))
        try:
            with torch.device("meta"):  # sizes first, without allocating: a spec may ask for 10^12 weights
                params = sum(p.numel() for p in build().parameters())
            if params > MAX_PARAMS:
                raise ArtifactError(f"{path / META}: the model spec asks for {params:,} parameters (at most "
                                    f"{MAX_PARAMS:,}); the file is corrupt, rebuild it")
            model = build()
        except ArtifactError:
            raise
        except ModelError as exc:
            raise ArtifactError(f"{path / META}: the model spec is invalid: {exc}") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
            raise ArtifactError(f"{path / META}: the model spec is invalid ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}); rebuild it") from None
        weights = _inside(path, meta.get("weights", WEIGHTS), "weights", path / META)
        model.load_state_dict(_load_weights(weights, model))
        model.eval()  # an exported program was traced in eval mode already (and refuses .eval())
    if meta.get("tokenizer"):
        record = meta["tokenizer"]
        if not isinstance(record, dict):
            raise ArtifactError(f"{path / META}: tokenizer must be a record like {{\"file\": \"{TOKENIZER}\"}}; "
                                f"got {_short(record)}")
        file = _inside(path, record.get("file", TOKENIZER), "tokenizer", path / META)
        meta.setdefault("data", {})[TOKENIZER_KEY] = _read_tokenizer(file)
    return Artifact(path=path, model=model, meta=meta)


@dataclass(frozen=True)
class ResolvedModel:
    """What "a model, an ``Artifact`` or a run directory" comes to, for the functions that take any of them."""

    module: Any  # an artifact's model, or the module given (wrapped, with ``adapt``)
    artifact: Artifact | None = None  # the artifact it came from; None for a module given as is
    in_shape: tuple[int, ...] | None = None  # one sample's; None where the module records none


ACCEPTS = "an nn.Module, an Artifact or a run directory"


def resolve_model(model: Any, *, verb: str | None = None, accepts: str = ACCEPTS,
                  adapt: bool = False) -> ResolvedModel:
    """``model`` (an ``nn.Module``, an ``Artifact`` or a run directory, loaded here) with its artifact
    and input shape. With ``verb``, anything that is not a module raises ``ConfigError`` ("cannot
    fuse a dict; pass ``accepts``"); without, it comes back as the module, for the caller to judge.
    ``adapt`` wraps a transformers classifier given as is so that every step takes it."""
    if isinstance(model, (str, Path)):
        model = load_artifact(model)
    if isinstance(model, Artifact):
        return ResolvedModel(model.model, model, model.in_shape)
    if verb is not None and not isinstance(model, nn.Module):
        raise ConfigError(f"cannot {verb} a {type(model).__name__}; pass {accepts}")
    if adapt:
        from trimnet.models.families import as_module

        model = as_module(model)
    shape = getattr(model, "in_shape", None)
    return ResolvedModel(model, None, tuple(shape) if shape else None)


def check_meta(meta: dict, where: Path) -> None:
    """The values of model.json, checked before anything is built from them."""
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ArtifactError(f"{where}: format_version must be a whole number; got {version!r}; rebuild the file")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{where.parent} was written by a newer trimnet (format {version}); upgrade trimnet")
    task = meta.get("task")
    if task is not None and not (isinstance(task, dict) and isinstance(task.get("name", ""), str)):
        raise ArtifactError(f"{where}: task must be a record like {{\"name\": \"classification\"}}; got {_short(task)}")
    needs_classes = (task or {}).get("name", "classification") == "classification"
    for key in ("in_shape", "class_names") if needs_classes else ("in_shape",):
        if key not in meta:
            raise ArtifactError(f"{where} lacks {key!r}; the file is incomplete, rebuild it")
    shape = meta["in_shape"]
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 4
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
        raise ArtifactError(f"{where}: in_shape must be 1 to 4 positive integers like [1, 28, 28]; got {shape!r}")
    values = math.prod(shape)
    if values > MAX_INPUT_VALUES:
        raise ArtifactError(f"{where}: in_shape {shape} is {values:,} values per sample (at most "
                            f"{MAX_INPUT_VALUES:,}); the file is corrupt, rebuild it")
    names = meta.get("class_names", [])
    if not isinstance(names, list) or (needs_classes and not names) or len(names) > MAX_CLASSES:
        raise ArtifactError(f"{where}: class_names must be a non-empty list of names; got {_short(names)}")
    if not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names):
        raise ArtifactError(f"{where}: class_names must hold names (strings); got {_short(names)}")
    num = meta.get("num_classes", len(names))
    if isinstance(num, bool) or not isinstance(num, int) or (names and num != len(names)) or not 1 <= num <= MAX_CLASSES:
        raise ArtifactError(f"{where}: num_classes is {num!r} but class_names has {len(names)} names; "
                            "the file is corrupt, rebuild it")
    norm = meta.get("normalization")
    if norm is not None and not _valid_norm(norm, shape):
        raise ArtifactError(f"{where}: normalization must be null or {{\"mean\": [...], \"std\": [...], \"axis\": 1}} "
                            f"with one finite mean and positive std per channel of {shape}; got {_short(norm)}")
    data = meta.get("data")
    if data is not None:
        from trimnet.config import DataConfig, from_dict
        from trimnet.errors import ConfigError

        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: data must be the dataset record or null; got {_short(data)}")
        try:
            from_dict(DataConfig, {k: v for k, v in data.items() if k in DataConfig.__dataclass_fields__},
                      "data").validate()
        except ConfigError as exc:
            raise ArtifactError(f"{where}: the dataset record is invalid ({exc}); rebuild the file") from None
    for key in ("name", "arch"):
        if key in meta and not isinstance(meta[key], str):
            raise ArtifactError(f"{where}: {key} must be a string; got {_short(meta[key])}")
    if meta.get("spec") is not None and not isinstance(meta["spec"], (dict, list)):
        raise ArtifactError(f"{where}: spec must be a layer description or null; got {_short(meta['spec'])}")


def _valid_norm(norm: Any, shape: list[int]) -> bool:
    import math

    if not isinstance(norm, dict) or not {"mean", "std"} <= set(norm):
        return False
    axis = norm.get("axis", 1)
    if not isinstance(axis, int) or isinstance(axis, bool) or not 1 <= axis <= len(shape):
        return False
    mean, std = norm["mean"], norm["std"]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  for v in (*mean, *std)) if isinstance(mean, list) and isinstance(std, list) else False
    return (numbers and len(mean) == len(std) and len(mean) in (1, shape[axis - 1])
            and all(v > 0 for v in std))


def _inside(run: Path, name: Any, key: str, where: Path) -> Path:
    """A file named by model.json, which must lie inside the run directory (never /etc/passwd)."""
    if not isinstance(name, str) or not name:
        raise ArtifactError(f"{where}: {key} must be a file name in the run directory; got {_short(name)}")
    file = (run / name).resolve()
    if not file.is_relative_to(run.resolve()):
        raise ArtifactError(f"{where}: {key} {name!r} points outside the run directory; "
                            "model.json may only name files beside it")
    return file


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_tokenizer(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{file} is missing; model.json says the model reads text tokenized by it; "
                            "train the model again") from None
    except UnicodeDecodeError:
        raise ArtifactError(f"{file} is corrupt (not UTF-8 JSON); train the model again") from None


def _rebuild(path: Path, meta: dict) -> nn.Module | None:
    """The user's function called again with the saved weights; None when they no longer fit it
    (a pruned copy has other widths), and the program is loaded instead."""
    from trimnet.models.user import create

    src = meta["source"]
    model = create(src["reference"], src["in_shape"], src["num_classes"], **src.get("options", {}))
    try:
        model.load_state_dict(_load_weights(_inside(path, meta.get("weights", WEIGHTS), "weights", path / META), model))
    except ArtifactError:
        return None
    return model.eval()


def _load_weights(file: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    try:
        state = st_load(file.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"{file} is missing; the run directory is incomplete, train or save it again") from None
    except (SafetensorError, ValueError, OSError) as exc:
        raise ArtifactError(f"{file} is truncated or corrupt ({exc}); train or save the model again") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ArtifactError(
            f"{file} does not match the model spec (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "the weights and model.json come from different models"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ArtifactError(
                f"{file}: {key} has shape {tuple(tensor.shape)} but the spec needs {tuple(expected[key].shape)}"
            )
    return state


def _load_program(file: Path) -> nn.Module:
    if not file.exists():
        raise ArtifactError(f"{file} is missing; the run directory is incomplete, save the model again")
    import logging

    # torch.export logs its own traceback of a failed load as a warning; the error below says it in one line
    quiet = logging.getLogger("torch.export")
    was = quiet.disabled
    quiet.disabled = True
    try:
        return torch.export.load(str(file)).module()
    except Exception as exc:  # a corrupt zip surfaces as several error types
        raise ArtifactError(f"{file} is truncated or corrupt ({type(exc).__name__}); save the model again") from None
    finally:
        quiet.disabled = was
