"""What ``optimize`` hands back: the winner as it ships, the original, every candidate measured.

``opt.model`` is the winner's fp32 PyTorch module (pruned and fused). When the winner runs at
a lower precision on a runtime (int8 on onnxruntime, say), that module is *not* what ships:
``opt.shipped`` is then the ``QuantizeResult`` holding the int8 file, and ``opt.runner()``,
``opt.save(dir)``, ``opt.export(path)`` and ``tn.export(opt, path)`` all use what ships.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trimnet.errors import ConfigError

if TYPE_CHECKING:
    from trimnet.artifact import Artifact
    from trimnet.optimize.candidates import Candidate


@dataclass(repr=False)
class OptimizeResult:
    model: nn.Module  # the winner's fp32 PyTorch model (pruned and fused); the original if nothing won
    best: "Candidate"
    original: "Candidate"
    candidates: list["Candidate"]
    baseline_val_accuracy: float
    test_accuracy: float | None = None
    original_test_accuracy: float | None = None
    quantized: Any = None  # a QuantizeResult when the winner runs at a lower precision
    prune_records: dict = field(default_factory=dict)
    seconds: float = 0.0
    threads: int | None = None  # the thread count every latency was measured with
    source: dict = field(default_factory=dict)  # in_shape, class_names, normalization, kind of the data
    original_model: nn.Module | None = None
    confirmation: dict | None = None  # the last side-by-side check of the winner against the original

    @property
    def speedup(self) -> float | None:
        """The original's latency on the target over the winner's, from the same side-by-side round
        (the last one: the confirmation where there was one)."""
        if self.confirmation and self.confirmation.get("speedup") and not self.best.original:
            return self.confirmation["speedup"]
        if self.best.latency_ms and self.original.latency_ms:
            return self.original.latency_ms / self.best.latency_ms
        return None

    @property
    def pareto(self) -> list["Candidate"]:
        return [c for c in self.candidates if c.pareto]

    @property
    def shipped(self) -> Any:
        """What ships: the ``QuantizeResult`` of a lower-precision winner, else the fp32 module."""
        return self.quantized if self.quantized is not None else self.model

    @property
    def flagged(self) -> bool:
        """Whether a figure the choice rests on was taken while the machine was busy."""
        return self.best.flagged or self.original.flagged or bool((self.confirmation or {}).get("flagged"))

    def keep_original(self, why: str) -> None:
        """Hand back the original instead of the winner (which lost a later side-by-side check)."""
        if self.original_model is None:
            raise ConfigError("this result does not hold the original model; nothing to fall back to")
        self.best.winner = False
        self.best.verdict = why
        self.original.winner = True
        self.original.verdict = "kept: the winner was not faster when checked again"
        self.best, self.model, self.quantized = self.original, self.original_model, None
        self.test_accuracy = self.original_test_accuracy

    def runner(self, threads: int | None = None):
        """The winner loaded on its backend, as it ships (a ``trimnet.runtime.Runner``)."""
        if self.quantized is not None:
            return self.quantized.runner(threads or self.threads)
        from trimnet.runtime import load_runner

        return load_runner(self.best.backend, self.model, self._example(), threads=threads or self.threads)

    def save(self, out: str | Path, extra: dict | None = None) -> Path:
        """The winner as it ships in run directory ``out`` (with model.onnx where it is fp32)."""
        from trimnet.artifact import save_artifact
        from trimnet.errors import TrimnetError

        if self.quantized is not None:
            return self.quantized.save(out)
        out = Path(out)
        save_artifact(self.model, out, in_shape=self.source.get("in_shape", tuple(self._example().shape[1:])),
                      class_names=self.source.get("class_names"), normalization=self.source.get("normalization"),
                      extra={**(extra or {}), "optimized": self.best.to_dict()},
                      metrics={"test_accuracy": self.test_accuracy})
        try:
            self.export(out / "model.onnx")
        except TrimnetError as why:
            import logging

            logging.getLogger("trimnet.optimize").warning("the winner was saved but not exported to ONNX: %s", why)
        return out

    def export(self, path: str | Path, example_inputs: torch.Tensor | None = None) -> Path:
        """Write the winner as it ships to ``path`` (.onnx or .xml); returns the file written.

        An fp32 winner is exported and parity-checked against PyTorch; a lower-precision
        winner's own file (the int8 ONNX or OpenVINO IR the search measured) is copied.
        """
        if self.quantized is None:
            from trimnet.runtime.export import export

            return export(self.model, path, example_inputs if example_inputs is not None else self._example(),
                          class_names=self.source.get("class_names"),
                          normalization=self.source.get("normalization")).path
        file = self.quantized.file
        if file is None:
            raise ConfigError(f"the winner runs {self.best.precision} inside PyTorch and has no file to export; "
                              "save it with opt.save(DIR) (a run directory) instead")
        path = Path(path)
        if path.suffix != file.suffix:
            if path.suffix:
                raise ConfigError(f"the winner ships as {file.suffix} ({self.best.precision} on {self.best.backend}); "
                                  f"name the target model{file.suffix}")
            path = path / f"model{file.suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        from trimnet.optimize.quantize.saving import file_set

        for src in file_set(file):  # model.xml brings its model.bin
            shutil.copyfile(src, path.with_suffix(src.suffix))
        return path

    def _example(self) -> torch.Tensor:
        shape = self.source.get("in_shape") or getattr(self.model, "in_shape", None)
        if not shape:
            raise ConfigError("pass example_inputs: the winner does not record its input shape")
        return torch.zeros((1, *shape))

    def __repr__(self) -> str:
        speed = f"{self.speedup:.2f}x" if self.speedup else "-"
        acc = "-" if self.test_accuracy is None else f"{self.test_accuracy:.4f}"
        orig = "-" if self.original_test_accuracy is None else f"{self.original_test_accuracy:.4f}"
        busy = ", measured on a busy machine" if self.flagged else ""
        return (f"OptimizeResult(winner={self.best.description!r}, speedup={speed} on {self.original.backend}, "
                f"test_accuracy={acc} (original {orig}), candidates={len(self.candidates)}{busy})")

    def to_dict(self) -> dict:
        return {"best": self.best.to_dict(), "original": self.original.to_dict(),
                "candidates": [c.to_dict() for c in self.candidates], "speedup": self.speedup,
                "baseline_val_accuracy": self.baseline_val_accuracy, "test_accuracy": self.test_accuracy,
                "original_test_accuracy": self.original_test_accuracy, "seconds": self.seconds,
                "threads": self.threads, "flagged": self.flagged, "confirmation": self.confirmation,
                "prune_records": self.prune_records}


def save_winner(result: OptimizeResult, art: "Artifact", out: str | Path) -> Path:
    """Write ``result``'s winner as it ships to run directory ``out``, replacing what is there, with
    the input shape, classes, normalization, data and kind of ``art`` (the artifact it was trimmed
    from), so that ``trimnet eval`` and ``serve`` read it as they read the original."""
    out = Path(out)
    if out.exists():  # a fallback to the original replaces the winner written before
        shutil.rmtree(out)
    extra = {k: art.meta[k] for k in ("data", "kind") if k in art.meta}
    result.source = {**result.source, "in_shape": art.in_shape, "class_names": art.class_names,
                     "normalization": art.normalization}
    return result.save(out, extra=extra)
