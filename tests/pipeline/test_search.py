import pytest
import torch

import trimnet as tn
from trimnet.errors import ConfigError
from trimnet.optimize.search import Candidate, OptimizeConfig, optimize
from trimnet.optimize.select import mark as _mark
from trimnet.optimize.select import pareto_front


def cand(name, acc, ms, original=False, accepted=True):
    return Candidate(name=name, description=name, structure=name, precision="fp32", backend="x",
                     val_accuracy=acc, latency_ms=ms, original=original, accepted=accepted)


def test_winner_is_the_fastest_within_budget():
    orig = cand("orig", 0.99, 1.0, original=True)
    cs = [orig, cand("a", 0.99, 0.5), cand("b", 0.95, 0.1, accepted=False), cand("c", 0.985, 0.3)]
    _mark(cs, orig, floor=0.985)
    assert [c.name for c in cs if c.winner] == ["c"]
    assert cs[2].verdict == "over the accuracy budget"


def test_never_slower_than_the_original():
    orig = cand("orig", 0.99, 1.0, original=True)
    cs = [orig, cand("a", 0.99, 1.2)]
    _mark(cs, orig, floor=0.98)
    assert orig.winner and not cs[1].winner


def test_pareto_front():
    # (cost, accuracy): (1, .9) and (2, .95) and (3, .99) are on the front; (2.5, .94) is beaten by (2, .95)
    pts = [(3, 0.99), (1, 0.9), (2.5, 0.94), (2, 0.95)]
    assert [pts[i] for i in pareto_front(pts)] == [(1, 0.9), (2, 0.95), (3, 0.99)]


def test_bad_config():
    with pytest.raises(ConfigError, match="ratios"):
        OptimizeConfig(ratios=[1.5]).validate()
    with pytest.raises(ConfigError, match="precision"):
        OptimizeConfig(precisions=["int3"]).validate()


@pytest.mark.slow
def test_search_on_a_small_mlp_and_its_cache(tmp_path, monkeypatch):
    data = tn.load_dataset("breast_cancer")
    torch.manual_seed(0)
    model = tn.create_model("mlp", data.in_shape, data.num_classes, hidden=[256, 128])
    tn.train(model, data, tn.TrainConfig(epochs=15, batch_size=32))
    cfg = OptimizeConfig(target_backend="onnxruntime", criteria=["l1"], ratios=[0.5], finetune_epochs=3,
                         precisions=["fp32"], bench_time_s=0.2, max_accuracy_drop=0.02)
    first = optimize(model, data, cfg, out=tmp_path)
    assert first.original.latency_ms > 0
    assert first.best.latency_ms <= first.original.latency_ms  # never slower than the input
    assert first.original.sweep_latency_ms is not None  # the original was a finalist, re-timed side by side
    assert first.best.original or first.best.sweep_latency_ms is not None
    labels = {c.name for c in first.candidates}
    assert {"original", "l1-0.5/fused/fp32@onnxruntime"} <= labels
    pruned = next(c for c in first.candidates if c.structure == "l1-0.5")
    assert pruned.params < first.original.params

    import sys

    prune_pkg = sys.modules["trimnet.optimize.prune"]  # the package; `trimnet.optimize.prune` is the function
    def no_pruning(*a, **k):
        raise AssertionError("a cached candidate was pruned again")

    monkeypatch.setattr(prune_pkg, "prune", no_pruning)
    again = optimize(model, data, cfg, out=tmp_path)
    assert {c.name for c in again.candidates} == labels


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_a_ratio_over_budget_gets_a_longer_fine_tune_before_its_direction_stops(tmp_path):
    data = tn.load_dataset("digits")
    torch.manual_seed(0)
    model = tn.create_model("mlp", data.in_shape, data.num_classes, hidden=[64])
    tn.train(model, data, tn.TrainConfig(epochs=5, batch_size=64))
    said = []
    cfg = OptimizeConfig(target_backend="onnxruntime", criteria=["l1"], ratios=[0.875], finetune_epochs=0,
                         finetune_retry_epochs=3, precisions=["fp32"], bench_time_s=0.1, max_accuracy_drop=0.0)
    result = optimize(model, data, cfg, out=tmp_path, progress=said.append)
    # without fine-tuning, 7 of every 8 hidden units gone costs accuracy: the search tries 3 epochs more
    assert any("pruned l1-0.875:" in m and "fine-tuning 3 epochs instead" in m for m in said)
    assert set(result.prune_records) == {"l1-0.875", "l1-0.875-ft3"}
    structures = {c.structure for c in result.candidates}
    assert "l1-0.875-ft3" in structures and "l1-0.875" not in structures
    tried = next(c for c in result.candidates if c.structure == "l1-0.875-ft3")
    assert "(3 fine-tune epochs)" in tried.description
    with pytest.raises(ConfigError, match="finetune"):
        OptimizeConfig(finetune_retry_epochs=-1).validate()
