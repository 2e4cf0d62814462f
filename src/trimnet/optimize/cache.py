"""The search's cache on disk (``out/candidates/``), so a rerun does not prune, fine-tune or
measure again what an earlier run already did.

Pruned structures are run directories named by their structure ("l1-0.75-ft20"), valid while
the settings they were made with match; measured candidates are JSON files keyed by label,
measurement settings and a fingerprint of the exact weights measured. Both also carry the task
and metric that measured them: another metric measures again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from trimnet.optimize.candidates import Candidate, CandidateKey

if TYPE_CHECKING:
    from trimnet.data.dataset import Dataset
    from trimnet.optimize.search import OptimizeConfig


def fingerprint(model: nn.Module) -> str:
    """A short hash of the model's weights (names and values)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class CandidateCache:
    """Pruned structures and measured candidates of earlier runs; ``directory`` None: no cache."""

    def __init__(self, directory: Path | None, tag: dict | None = None):
        self.dir = directory
        self.tag = tag or {}  # the task and metric that measured

    def structure_settings(self, unpruned: nn.Module, **settings: Any) -> dict:
        """What a pruned structure was made from: ``settings`` (criterion, ratio, ...), the
        weights it was pruned from, and the task."""
        return {**settings, "model": fingerprint(unpruned), "task": self.tag}

    def structure(self, key: CandidateKey, settings: dict) -> tuple[nn.Module, dict] | None:
        """The pruned model and its prune record, where an earlier run made them with ``settings``."""
        from trimnet.artifact import load_artifact

        where = self._folder(key)
        if where is None or not (where / "model.json").exists():
            return None
        art = load_artifact(where)
        if art.meta.get("search_settings") != settings:
            return None
        return art.model, art.meta.get("prune_record", {})

    def put_structure(self, key: CandidateKey, settings: dict, model: nn.Module, record: dict,
                      data: "Dataset") -> None:
        from trimnet.artifact import save_artifact

        where = self._folder(key)
        if where is not None:
            save_artifact(model, where, in_shape=data.in_shape, class_names=data.class_names,
                          normalization=data.normalization,
                          extra={"search_settings": settings, "prune_record": record, "kind": data.kind,
                                 "task": self.tag})

    def get(self, key: CandidateKey, cfg: "OptimizeConfig", model: nn.Module) -> Candidate | None:
        """The candidate as an earlier run measured it; what this run decides (winner, verdict) is cleared."""
        file = self._file(key, cfg, model)
        if file is None or not file.exists():
            return None
        try:
            c = Candidate(**json.loads(file.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None  # a damaged cache entry is measured again
        c.winner = c.pareto = c.accepted = False  # decided again in this run
        c.verdict = ""
        c.description = key.description  # entries written before descriptions were stored hold the label
        return c

    def put(self, key: CandidateKey, cfg: "OptimizeConfig", model: nn.Module, c: Candidate) -> None:
        from trimnet.artifact import write_json

        file = self._file(key, cfg, model)
        if file is not None:
            write_json(file, c.to_dict())

    def _folder(self, key: CandidateKey) -> Path | None:
        return self.dir / key.structure if self.dir is not None else None

    def _file(self, key: CandidateKey, cfg: "OptimizeConfig", model: nn.Module) -> Path | None:
        if self.dir is None:
            return None
        text = json.dumps({"label": key.label, "batch": cfg.batch, "bench_time_s": cfg.bench_time_s,
                           "threads": cfg.threads, "model": fingerprint(model), "task": self.tag}, sort_keys=True)
        return self.dir / "measured" / (hashlib.sha256(text.encode()).hexdigest()[:20] + ".json")
