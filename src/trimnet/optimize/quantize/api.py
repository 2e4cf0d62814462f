"""``quantize(model, data, QuantizeConfig(...))``: lower precision, measure what it cost, keep what is faster."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trimnet.data.dataset import Dataset
from trimnet.errors import ConfigError, DataError, require
from trimnet.optimize.quantize import measure
from trimnet.optimize.quantize.config import QuantizeConfig
from trimnet.optimize.quantize.method import BuildContext, get_method
from trimnet.optimize.quantize.result import AccuracyDropError, ParityMismatch, QuantizeResult, new_workdir
from trimnet.optimize.quantize.saving import open_candidate
from trimnet.runtime.errors import BackendUnavailableError


def quantize(model: Any, data: Dataset | None = None, config: QuantizeConfig | None = None, *,
             out: str | Path | None = None, task: Any = None, split: str = "test") -> QuantizeResult:
    """Lower ``model`` to ``config.precision`` on ``config.backend`` and measure it against fp32.

    ``model``: an ``nn.Module``, an ``Artifact`` or a run directory (whose dataset is reloaded
    when ``data`` is None). Calibration samples come from the training split; accuracy is
    measured on the test split, before (fp32 PyTorch) and after (the backend); latency is
    measured interleaved against fp32 on the same backend. When the lower precision is
    slower there (or the runtime ran fp32 anyway), the fp32 model is kept and the result
    says so. Raises ``AccuracyDropError`` (with ``.result``) when the kept model loses more
    than ``config.max_accuracy_drop``, and ``ParityMismatch`` when its outputs leave the
    precision's tolerance; nothing is written then. With ``out`` the kept model is saved
    there as a run directory (see ``saving.py``); otherwise call ``result.save(out)``.
    "Accuracy" is the task's metric (``task``, default the data's or the artifact's task).
    ``split``: the split accuracy and parity are measured on (``optimize`` chooses on "val").
    """
    from trimnet.runtime import get_backend

    cfg = (config or QuantizeConfig()).validate()
    method = get_method(cfg.precision, cfg.resolved_backend)
    for mod, extra in method.requires:
        require(mod, extra)
    why = get_backend(method.backend).why_not()
    if why is not None:
        raise BackendUnavailableError(f"{cfg.precision} on {method.backend} cannot run here: {why}")
    module, source = _source(model)
    data = _dataset(data, source)
    _check_shapes(source, data)
    from trimnet.tasks import task_for

    task = task_for(data, task if task is not None else source["meta"].get("task"))
    start = time.perf_counter()
    x_test, y_test = data.split(split)
    if len(y_test) == 0:
        raise DataError(f"the {split} split of {data.name} is empty; quantize needs it to measure accuracy")
    fused, fuse_summary = _fp32(module, cfg, x_test)
    workdir = new_workdir()
    ctx = BuildContext(model=fused, config=cfg, calibration=_calibration(data, cfg), workdir=Path(workdir.name),
                       metadata=_metadata(fused, source))
    candidate = method.build(ctx)
    real = x_test[:256].float()
    with open_candidate(candidate, False, fused, tuple(source["in_shape"]), cfg.threads) as runner:
        report, passed, parity_summary = measure.parity(fused, runner.run, cfg.precision, real,
                                                        runtime=f"{method.backend} {cfg.precision}")
        acc_after = measure.accuracy(runner.run, x_test, y_test, task=task)
    acc_before = _eager_accuracy(module, x_test, y_test, task)
    example = x_test[:max(cfg.batch_sizes)].float()
    # a runtime that ran fp32 anyway would be timed against itself: nothing to learn, nothing kept
    timings = measure.latency(candidate, fused, example, cfg) if candidate.runs_lower else []
    result = QuantizeResult(
        precision=cfg.precision, backend=method.backend, kept="", reason="", accuracy_before=acc_before,
        accuracy_after=acc_after, latency=timings, parity=report, layers=candidate.layers,
        details={**candidate.details, "method": method.summary, "seconds": round(time.perf_counter() - start, 2)},
        config=cfg, note=candidate.note, fuse=fuse_summary, candidate=candidate, fp32_model=fused, workdir=workdir,
        source=source, split=split)
    result.kept, result.reason = _decide(result, candidate.runs_lower, cfg)
    if result.kept == cfg.precision:
        _guard(result, passed, parity_summary, cfg)
    if out is not None:
        result.save(out)
    return result


def _decide(result: QuantizeResult, runs_lower: bool, cfg: QuantizeConfig) -> tuple[str, str]:
    p, b, speedup = result.precision, result.backend, result.speedup
    sizes = "/".join(str(m.batch) for m in result.latency)
    if not runs_lower:
        return "fp32", result.note or f"{b} ran the {p} model in fp32"
    if speedup < 1.0 and not cfg.keep_slower:
        return "fp32", (f"{p} was {1 / speedup:.2f}x slower than fp32 on {b} on this machine (batch {sizes}, "
                        "geometric mean); kept the faster fp32 model (keep_slower keeps it anyway)")
    if speedup < 1.0:
        return p, f"{p} was {1 / speedup:.2f}x slower than fp32 on {b} here, kept as asked (keep_slower)"
    return p, f"{speedup:.2f}x faster than fp32 on {b} (batch {sizes}, geometric mean)"


def _guard(result: QuantizeResult, parity_passed: bool, parity_summary: str, cfg: QuantizeConfig) -> None:
    drop = result.accuracy_drop
    if cfg.max_accuracy_drop is not None and drop > cfg.max_accuracy_drop + 1e-12:
        raise AccuracyDropError(
            f"{result.precision} on {result.backend} loses {drop * 100:.2f} points of {result.split_name} accuracy "
            f"({result.accuracy_before:.4f} -> {result.accuracy_after:.4f}), more than the allowed "
            f"{cfg.max_accuracy_drop * 100:.2f}; measured speedup {result.speedup:.2f}x; nothing was written "
            "(raise --max-accuracy-drop, add --calibration samples, or try another precision)", result)
    if not parity_passed:
        raise ParityMismatch(f"the {result.precision} model on {result.backend} does not compute what the fp32 model "
                             f"computes: {parity_summary}; nothing was written", result)


def _source(model: Any) -> tuple[nn.Module, dict]:
    """The module, and what quantize reads of where it came from (an artifact's inputs, classes, data)."""
    from trimnet.artifact import resolve_model

    resolved = resolve_model(model, verb="quantize", adapt=True)
    art = resolved.artifact
    if art is not None:
        return art.model, {"in_shape": list(art.in_shape), "class_names": art.class_names,
                           "normalization": art.normalization, "meta": art.meta, "path": str(art.path)}
    return resolved.module, {"in_shape": list(resolved.in_shape or ()), "class_names": None,
                             "normalization": None, "meta": {}, "path": None}


def _dataset(data: Dataset | None, source: dict) -> Dataset:
    if data is not None:
        if source["class_names"] is None:
            source["class_names"] = list(data.class_names)
            source["normalization"] = data.normalization
        if not source["in_shape"]:
            source["in_shape"] = list(data.in_shape)
        if not source["meta"].get("data") and "seed" in data.info:  # as tn.train records it: eval can reload it
            source["meta"] = {**source["meta"], "kind": data.kind,
                              "data": {"source": data.name, **{k: v for k, v in data.info.items() if k != "origin"}}}
        return data
    if source["meta"].get("data"):
        from trimnet.artifact import load_artifact
        from trimnet.train.evaluate import dataset_of

        return dataset_of(load_artifact(source["path"]))
    raise DataError("quantize needs data: calibration samples and a test split to measure accuracy on; "
                    "pass data= (or a run directory that records its dataset)")


def _check_shapes(source: dict, data: Dataset) -> None:
    if tuple(source["in_shape"]) != tuple(data.in_shape):
        raise DataError(f"the model takes inputs of shape {tuple(source['in_shape'])} but {data.name} has "
                        f"{tuple(data.in_shape)}; pass the dataset the model was trained on")


def _fp32(module: nn.Module, cfg: QuantizeConfig, x_test: torch.Tensor) -> tuple[nn.Module, dict | None]:
    if not cfg.fuse:
        model = copy.deepcopy(module)
        model.eval()
        return model, None
    from trimnet.optimize.fuse import fuse

    res = fuse(module, example_inputs=x_test[:4].float())
    return res.model, {"summary": res.record.summary(), "changes": len(res.record.changes),
                       "check": res.record.check.to_dict()}


def _calibration(data: Dataset, cfg: QuantizeConfig):
    x = data.x_train
    if len(x) == 0:
        raise DataError(f"the training split of {data.name} is empty; static INT8 needs calibration samples from it")
    g = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(x), generator=g)[:cfg.calibration]
    return x[idx].float().contiguous().numpy()


def _metadata(model: nn.Module, source: dict) -> dict[str, str]:
    from trimnet.runtime.export import build_metadata

    return build_metadata(model, tuple(source["in_shape"]), source["class_names"], source["normalization"],
                          {"arch": source["meta"].get("arch")})


def _eager_accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Any = None) -> float:
    from trimnet.train.evaluate import task_score

    return task_score(module, x, y, task, 256)
