"""Errors a user can act on. Each message names the fix.

The CLI turns any ``TrimnetError`` into a one-line message and exit code 2; anything
else is a bug and exits 1 with a traceback.
"""


class TrimnetError(Exception):
    """Base class: bad input or a state the user can fix."""


class ConfigError(TrimnetError):
    """An invalid config value, key or override."""


class DataError(TrimnetError):
    """A dataset that cannot be read or does not make sense."""


class ModelError(TrimnetError):
    """A model that cannot be built, described or fed the given input."""


class ArtifactError(TrimnetError):
    """A run directory that is missing, truncated or corrupt."""


class TrainingError(TrimnetError):
    """Training that cannot go on (NaN loss, nothing to resume, ...)."""


class ExportError(TrimnetError):
    """A model that cannot be exported, or whose export does not compute what PyTorch computes."""


class DiskError(TrimnetError):
    """A file that cannot be written: a full or read-only disk, no permission."""


class DependencyError(TrimnetError):
    """An optional dependency that is not installed."""


def require(module: str, extra: str):
    """Import an optional dependency, or fail with the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{module} is not installed; install it with: pip install 'trimnet[{extra}]'"
        ) from exc
