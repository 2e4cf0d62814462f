"""Fusion: fold several layers into one computation step, on a copy of the model, each pass checked.

``fuse(model)`` runs ``drop_identity``, ``bn_fold``, ``linear_merge`` and ``act_fuse`` (one file each)
and returns ``FuseResult(model, record)``; ``runtime_fusion`` reports what onnxruntime and
OpenVINO fuse on top (conv + bias + activation, GEMM epilogues), which is their job.
"""

from trimnet.optimize.fuse import act_fuse, bn_fold, drop_identity, linear_merge  # noqa: F401  (register the passes)
from trimnet.optimize.fuse.api import fuse, list_passes
from trimnet.optimize.fuse.base import DEFAULT_PASSES, PASSES, Change, FuseError, FusePass, Skip, register_pass
from trimnet.optimize.fuse.record import FuseRecord, FuseResult, NumericCheck, PassRecord

__all__ = ["Change", "DEFAULT_PASSES", "FuseError", "FusePass", "FuseRecord", "FuseResult", "NumericCheck", "PASSES",
           "PassRecord", "Skip", "fuse", "list_passes", "register_pass"]
