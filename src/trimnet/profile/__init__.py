"""The profiler: exact MACs, FLOPs, parameters, bytes and arithmetic intensity, per layer.

``profile(model, inputs)`` counts at the aten-operator level (see ``counter``) with one
formulas table (``formulas``), under fake tensors by default, and returns a ``Profile``.
"""

import sys
import types

from trimnet.profile.api import profile
from trimnet.profile.result import LayerProfile, OperatorProfile, Profile

__all__ = ["LayerProfile", "OperatorProfile", "Profile", "profile"]


class _CallableModule(types.ModuleType):
    """Importing this package makes ``trimnet.profile`` the package rather than the function
    (Python sets a subpackage on its parent); calling the package calls ``profile`` so that
    ``tn.profile(model, x)`` works in either order of imports."""

    def __call__(self, *args, **kwargs) -> Profile:
        return profile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
