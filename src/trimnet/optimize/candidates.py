"""What the search builds and measures: a candidate's key and the record of what was measured.

A ``CandidateKey`` says which structure (the original, or a criterion at a ratio, with a
longer second fine-tune where the first missed the budget), whether it was fused, and which
precision on which backend ran it. Its ``label`` is the candidate's stable name in
summary.json, the report and the cache: "original", "l1-0.875/torch",
"apoz-0.75-ft20/fused/int8@openvino". Labels are made from keys; ``CandidateKey.parse`` is
the one place that reads a label back.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from trimnet.errors import ConfigError

ORIGINAL = "original"
_LABEL = re.compile(r"^(?:original|(?P<criterion>[^-/@]+)-(?P<ratio>[0-9.eE+-]+?)(?:-ft(?P<retry>\d+))?)"
                    r"(?:/fused/(?P<precision>[^/@]+)@(?P<fused_on>[^/@]+)|/(?P<backend>[^/@]+))?$")


@dataclass(frozen=True)
class CandidateKey:
    criterion: str | None = None  # None: the original structure, not pruned
    ratio: float | None = None  # the fraction pruned away
    retry_epochs: int | None = None  # the longer second fine-tune of a ratio the first one left out of budget
    fused: bool = False
    precision: str = "fp32"
    backend: str | None = None  # None: the structure alone, not yet run on a backend

    def __post_init__(self) -> None:
        if (self.criterion is None) != (self.ratio is None):
            raise ConfigError(f"a pruned candidate needs both a criterion and a ratio; got {self!r}")
        if self.original and self.retry_epochs is not None:
            raise ConfigError("the original is not fine-tuned; it has no retry_epochs")
        if (self.fused or self.precision != "fp32") and self.backend is None:
            raise ConfigError(f"a fused or lower-precision candidate runs on a backend; got {self!r}")
        if not self.fused and self.precision != "fp32":
            raise ConfigError(f"the search lowers precision on fused structures only; got {self!r}")

    @property
    def original(self) -> bool:
        return self.criterion is None

    @property
    def structure(self) -> str:
        """"original", "l1-0.75", "l1-0.75-ft20": the pruned model's name (prune records, cache folders)."""
        if self.original:
            return ORIGINAL
        return f"{self.criterion}-{self.ratio:g}" + (f"-ft{self.retry_epochs}" if self.retry_epochs is not None else "")

    @property
    def label(self) -> str:
        if self.fused:
            return f"{self.structure}/fused/{self.precision}@{self.backend}"
        if self.original or self.backend is None:  # the input as it came is "original" on whatever backend
            return self.structure
        return f"{self.structure}/{self.backend}"  # a pruned structure run as it is: "l1-0.875/torch"

    @property
    def what(self) -> str:
        """"l1-0.75" -> "l1 pruning 0.75"; "l1-0.75-ft20" -> "l1 pruning 0.75 (20 fine-tune epochs)"."""
        if self.original:
            return ORIGINAL
        return f"{self.criterion} pruning {self.ratio:g}" + (
            f" ({self.retry_epochs} fine-tune epochs)" if self.retry_epochs is not None else "")

    @property
    def description(self) -> str:
        if self.fused:
            return f"{self.what}, fused, {self.precision} on {self.backend}"
        if self.original and self.backend is not None:
            return f"original, {self.precision} on {self.backend}"
        return self.what

    def structure_only(self) -> "CandidateKey":
        """The key of this candidate's structure, before fusion and a backend."""
        return dataclasses.replace(self, fused=False, precision="fp32", backend=None)

    def fused_on(self, precision: str, backend: str) -> "CandidateKey":
        """This structure fused and run at ``precision`` on ``backend``."""
        return dataclasses.replace(self, fused=True, precision=precision, backend=backend)

    def run_on(self, backend: str) -> "CandidateKey":
        """This structure run as it is (fp32, not fused) on ``backend``."""
        return dataclasses.replace(self, fused=False, precision="fp32", backend=backend)

    @classmethod
    def parse(cls, label: str) -> "CandidateKey":
        """The key a label was made from (the original's label does not name its backend: it parses to None)."""
        m = _LABEL.match(label)
        if m is None:
            raise ConfigError(f"{label!r} is not a candidate label; labels look like 'original', 'l1-0.875/torch' "
                              "or 'apoz-0.75-ft20/fused/int8@openvino'")
        try:
            ratio = float(m["ratio"]) if m["ratio"] is not None else None
        except ValueError:
            raise ConfigError(f"{label!r}: {m['ratio']!r} is not a pruning ratio") from None
        retry = int(m["retry"]) if m["retry"] is not None else None
        base = cls(criterion=m["criterion"], ratio=ratio, retry_epochs=retry)
        if m["fused_on"] is not None:
            return base.fused_on(m["precision"], m["fused_on"])
        return base.run_on(m["backend"]) if m["backend"] is not None else base


@dataclass
class Candidate:
    name: str  # stable key: "apoz-0.75/fused/int8@openvino" (a CandidateKey's label)
    description: str
    structure: str  # "original" or "apoz-0.75"
    precision: str
    backend: str
    val_accuracy: float | None
    macs: int | None = None
    params: int | None = None
    latency_ms: float | None = None  # p50 at the target batch
    p99_ms: float | None = None
    throughput: float | None = None  # samples/s at the target batch
    sweep_latency_ms: float | None = None  # finalists: the sweep's own figure, before the side-by-side round
    accepted: bool = False
    verdict: str = ""
    seconds: float = 0.0
    original: bool = False
    winner: bool = False
    pareto: bool = False
    flagged: bool = False  # its latency was taken while other work competed for the cores

    @classmethod
    def of(cls, key: CandidateKey, val_accuracy: float | None, **measured) -> "Candidate":
        """The record of ``key``, named and described by it."""
        return cls(name=key.label, description=key.description, structure=key.structure, precision=key.precision,
                   backend=key.backend, val_accuracy=val_accuracy, **measured)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
