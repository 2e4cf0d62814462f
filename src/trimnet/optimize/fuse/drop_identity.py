"""Remove layers that do nothing at inference: dropout of every kind, ``nn.Identity``, empty blocks.

Running first frees patterns the other passes look for: ``linear, dropout, linear`` is a
linear chain once the dropout is gone.
"""

from __future__ import annotations

from torch import nn

from trimnet.optimize.fuse.base import Chain, Item, PassLog, register_pass

# exact types: a subclass of Identity or Dropout may well do something
NO_OPS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
          nn.Identity)


def is_no_op(module: nn.Module) -> bool:
    return type(module) in NO_OPS or (type(module) is nn.Sequential and len(module) == 0)


@register_pass("drop_identity", "remove dropout and identity layers (no-ops at inference)")
def drop_identity(chain: Chain, log: PassLog) -> list[Item]:
    kept = []
    for item in chain.items:
        if is_no_op(item.module):
            what = "empty Sequential" if type(item.module) is nn.Sequential else item.kind
            log.change("remove", [item.name], None, f"{what} removed (does nothing at inference)")
        else:
            kept.append(item)
    return kept
