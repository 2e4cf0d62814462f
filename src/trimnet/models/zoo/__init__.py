"""One file per architecture; each registers its factories with ``@register_model``."""
