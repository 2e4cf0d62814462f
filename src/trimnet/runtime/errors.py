"""Errors of exporting and running models on inference runtimes.

``ExportError`` belongs in ``trimnet.errors`` beside the other ``TrimnetError`` kinds; it
lives here until that move, and subclasses ``TrimnetError`` so the CLI reports it as a
user error (exit 2, one line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trimnet.errors import TrimnetError

if TYPE_CHECKING:  # pragma: no cover
    from trimnet.runtime.parity import ParityReport


class ExportError(TrimnetError):
    """A model that cannot be exported, or whose export does not compute what PyTorch computes."""


class ParityError(ExportError):
    """An exported or compiled model whose outputs differ from PyTorch beyond the tolerance."""

    def __init__(self, message: str, report: "ParityReport"):
        super().__init__(message)
        self.report = report


class BackendUnavailableError(TrimnetError):
    """A known backend that cannot run here (no CUDA device, no C++ compiler, ...)."""
