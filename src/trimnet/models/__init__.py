"""Models: a layer spec that round-trips to ``nn.Module``, and a registry of architectures."""

from trimnet.models.registry import (
    MODELS,
    SpecNet,
    create_model,
    from_spec,
    list_models,
    register_model,
    to_spec,
)

__all__ = ["MODELS", "SpecNet", "create_model", "from_spec", "list_models", "register_model", "to_spec"]
