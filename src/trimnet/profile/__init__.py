"""The profiler: exact MACs, FLOPs, parameters, bytes and arithmetic intensity, per layer.

``profile(model, inputs)`` counts at the aten-operator level (see ``counter``) with one
formulas table (``formulas``), under fake tensors by default, and returns a ``Profile``.
"""

from trimnet.profile.api import profile
from trimnet.profile.result import LayerProfile, OperatorProfile, Profile

__all__ = ["LayerProfile", "OperatorProfile", "Profile", "profile"]
