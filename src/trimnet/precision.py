"""``Precision``: the one name for a number format, from the hardware catalog to the runtimes.

Values are trimnet's names (``fp32``, ``bf16``, ...); ``Precision.parse`` also takes the
spellings other tools use (``f32`` / ``f16`` of OpenVINO and of the runtime reports,
``float32`` / ``torch.bfloat16`` of PyTorch dtypes). ``element`` is the short spelling that
runtimes report and that exported files and benchmark results have always recorded, so
those files read the same as before. Being a ``str``, a member compares equal to its value
and goes into JSON as that value.
"""

from __future__ import annotations

from enum import Enum

from trimnet.errors import ConfigError


class PrecisionError(ConfigError, ValueError):
    """An unknown precision name: a ValueError, and a ConfigError so the CLI reports it as a user error."""


class Precision(str, Enum):
    # the catalog's order: how error messages and tables list them
    FP32 = "fp32"
    TF32 = "tf32"  # fp32 storage, tensor-core arithmetic with a 10-bit mantissa (catalog peaks only)
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"
    INT8 = "int8"

    # hash and print as the plain string, so a member finds "fp32" keys in dicts and sets
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def bytes(self) -> int:
        """Bytes per element as stored."""
        return _BYTES[self]

    @property
    def element(self) -> str:
        """The short spelling runtimes use and report (OpenVINO element types): f32, f16, bf16, i8, ..."""
        return _ELEMENT[self]

    @classmethod
    def parse(cls, value: "str | Precision") -> "Precision":
        """``value`` (any known spelling, any case) as a ``Precision``; a ValueError naming the choices otherwise."""
        if isinstance(value, cls):
            return value
        key = str(value).strip().lower().removeprefix("torch.")
        found = _ALIASES.get(key)
        if found is None:
            choices = ", ".join(p.value for p in cls)
            raise PrecisionError(f"unknown precision {value!r}; choose one of: {choices} "
                                 f"(also accepted: {', '.join(sorted(_ALIASES.keys() - set(choices.split(', '))))})")
        return found

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(p.value for p in cls)


_BYTES = {Precision.FP32: 4, Precision.TF32: 4, Precision.FP16: 2, Precision.BF16: 2, Precision.FP8: 1,
          Precision.INT8: 1}
_ELEMENT = {Precision.FP32: "f32", Precision.TF32: "tf32", Precision.FP16: "f16", Precision.BF16: "bf16",
            Precision.FP8: "f8", Precision.INT8: "i8"}
_ALIASES: dict[str, Precision] = {
    **{p.value: p for p in Precision},
    **{e: p for p, e in _ELEMENT.items()},
    "float32": Precision.FP32, "float": Precision.FP32, "float16": Precision.FP16, "half": Precision.FP16,
    "bfloat16": Precision.BF16, "qint8": Precision.INT8, "float8": Precision.FP8, "float8_e4m3fn": Precision.FP8,
}
