"""trimnet: train, measure, trim, prove and deploy neural networks.

The public API is listed in ``__all__`` and imported lazily, so ``import trimnet`` stays
cheap: it loads torch only when a function that needs it is first used, and never
onnx, openvino, fastapi or matplotlib.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_API: dict[str, str] = {
    # errors
    "TrimnetError": "trimnet.errors",
    "ConfigError": "trimnet.errors",
    "DataError": "trimnet.errors",
    "ModelError": "trimnet.errors",
    "ArtifactError": "trimnet.errors",
    "TrainingError": "trimnet.errors",
    "ExportError": "trimnet.errors",
    # configs
    "DataConfig": "trimnet.config",
    "ModelConfig": "trimnet.config",
    "TrainConfig": "trimnet.config",
    "RunConfig": "trimnet.config",
    # data
    "Dataset": "trimnet.data",
    "load_dataset": "trimnet.data",
    "list_sources": "trimnet.data",
    "register_source": "trimnet.data",
    "from_arrays": "trimnet.data",
    # tasks
    "Task": "trimnet.tasks",
    "get_task": "trimnet.tasks",
    "list_tasks": "trimnet.tasks",
    "register_task": "trimnet.tasks",
    # models
    "create_model": "trimnet.models",
    "list_models": "trimnet.models",
    "register_model": "trimnet.models",
    "from_spec": "trimnet.models",
    "to_spec": "trimnet.models",
    # training and evaluation
    "train": "trimnet.train",
    "TrainResult": "trimnet.train",
    "evaluate": "trimnet.train",
    "Evaluation": "trimnet.train",
    "predict": "trimnet.train",
    # artifacts
    "Artifact": "trimnet.artifact",
    "load_artifact": "trimnet.artifact",
    "save_artifact": "trimnet.artifact",
    # measuring
    "profile": "trimnet.profile",
    "Profile": "trimnet.profile",
    # hardware
    "estimate": "trimnet.hardware",
    "recommend": "trimnet.hardware",
    "calibrate": "trimnet.hardware",
    # runtimes
    "export": "trimnet.runtime",
    "benchmark": "trimnet.bench",
    # trimming
    "fuse": "trimnet.optimize",
    "quantize": "trimnet.optimize",
    "QuantizeConfig": "trimnet.optimize",
    "prune": "trimnet.optimize",
    "PruneConfig": "trimnet.optimize",
    "activation_stats": "trimnet.optimize",
    "optimize": "trimnet.optimize",
    "OptimizeConfig": "trimnet.optimize",
    "OptimizeResult": "trimnet.optimize",
    "save_winner": "trimnet.optimize",
    "FinetuneConfig": "trimnet.optimize.finetune",
    # the main job
    "run_pipeline": "trimnet.pipeline",
    "PipelineConfig": "trimnet.pipeline",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'trimnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


# ``train``, ``profile`` and ``optimize`` name both a subpackage and the function users call.
# Importing a subpackage sets it as an attribute of this package; ``_Package`` ignores that
# for these names, so the function always wins and nothing heavy (torch) loads until used
# (``trimnet --version`` stays fast).
_FUNCTIONS = {"train": "trimnet.train", "profile": "trimnet.profile", "optimize": "trimnet.optimize"}
_API.update(_FUNCTIONS)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

if TYPE_CHECKING:  # pragma: no cover
    from trimnet.artifact import Artifact, load_artifact, save_artifact
    from trimnet.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from trimnet.data import Dataset, list_sources, load_dataset, register_source
    from trimnet.errors import ArtifactError, ConfigError, DataError, ModelError, TrainingError, TrimnetError
    from trimnet.models import create_model, from_spec, list_models, register_model, to_spec
    from trimnet.optimize.finetune import FinetuneConfig
    from trimnet.train import Evaluation, TrainResult, evaluate, predict, train
