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
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from trimnet.data.dataset import Normalization
from trimnet.errors import ArtifactError, ModelError

FORMAT = "trimnet.artifact"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "model.json"
PROGRAM = "model.pt2"
METRICS = "metrics.json"


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
        return torch.randn((batch, *self.in_shape), generator=g)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs (as in the source files) -> what the model was trained on."""
        norm = self.normalization
        return norm.apply(x.float()) if norm is not None else x.float()


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside ``path`` and rename it over: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        **(extra or {}),
    }
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
    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".pt2", dir=path.parent)
    os.close(fd)
    try:
        torch.export.save(program, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(f"{path} was written by a newer trimnet (format {meta['format_version']}); upgrade trimnet")
    needs_classes = (meta.get("task") or {}).get("name", "classification") == "classification"
    for key in ("in_shape", "class_names") if needs_classes else ("in_shape",):
        if key not in meta:
            raise ArtifactError(f"{path / META} lacks {key!r}; the file is incomplete, rebuild it")
    if meta.get("spec") is None:
        model = _rebuild(path, meta) if rebuild and meta.get("source") else None
        if model is None:
            model = _load_program(path / meta.get("program", PROGRAM))
    else:
        try:
            model = from_spec(meta["spec"], arch=meta.get("arch", "custom"), in_shape=meta["in_shape"],
                              num_classes=meta.get("num_classes", len(meta.get("class_names") or [])))
        except ModelError as exc:
            raise ArtifactError(f"{path / META}: the model spec is invalid: {exc}") from None
        model.load_state_dict(_load_weights(path / meta.get("weights", WEIGHTS), model))
        model.eval()  # an exported program was traced in eval mode already (and refuses .eval())
    return Artifact(path=path, model=model, meta=meta)


def _rebuild(path: Path, meta: dict) -> nn.Module | None:
    """The user's function called again with the saved weights; None when they no longer fit it
    (a pruned copy has other widths), and the program is loaded instead."""
    from trimnet.models.user import create

    src = meta["source"]
    model = create(src["reference"], src["in_shape"], src["num_classes"], **src.get("options", {}))
    try:
        model.load_state_dict(_load_weights(path / meta.get("weights", WEIGHTS), model))
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
    try:
        return torch.export.load(str(file)).module()
    except Exception as exc:  # a corrupt zip surfaces as several error types
        raise ArtifactError(f"{file} is truncated or corrupt ({type(exc).__name__}); save the model again") from None
