"""Optimization passes: fusion (``optimize.fuse``) and lower precision (``optimize.quantize``)."""

from trimnet.optimize.fuse import FuseResult, fuse

__all__ = ["FuseResult", "fuse"]
