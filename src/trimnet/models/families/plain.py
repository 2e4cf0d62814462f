"""Plain modules (trimnet's zoo, torchvision-style CNNs, a user's own ``nn.Module``): channels,
neurons and trimnet's own ``SelfAttention`` heads are found by the dependency graph, so the
family has nothing to add; it is the fallback when no other family claims a model."""

from trimnet.models.families import register_family
from trimnet.models.families.base import Family

register_family(Family())
