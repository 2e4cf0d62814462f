"""Optimization passes, one subpackage each: fusion (``optimize.fuse``), lower precision (``optimize.quantize``)."""

from trimnet.optimize.fuse import FuseResult, fuse
from trimnet.optimize.quantize import QuantizeConfig, QuantizeResult, quantize

__all__ = ["FuseResult", "QuantizeConfig", "QuantizeResult", "fuse", "quantize"]
