"""Trimming passes: activation statistics, structural pruning (``optimize.prune``), fusion
(``optimize.fuse``), lower precision (``optimize.quantize``), and the search that combines
them under an accuracy budget (``optimize.search``)."""

from trimnet.optimize.fuse import FuseResult, fuse
from trimnet.optimize.prune import PruneConfig, prune
from trimnet.optimize.quantize import QuantizeConfig, QuantizeResult, quantize
from trimnet.optimize.result import save_winner
from trimnet.optimize.search import OptimizeConfig, OptimizeResult, optimize
from trimnet.optimize.stats import activation_stats

__all__ = ["FuseResult", "OptimizeConfig", "OptimizeResult", "PruneConfig", "QuantizeConfig", "QuantizeResult",
           "activation_stats", "fuse", "optimize", "prune", "quantize", "save_winner"]
