"""Importance criteria on real groups, with hand-computed expectations, and the ranking rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.models import create_model, from_spec
from trimnet.optimize.importance import CRITERIA, Evidence, get_criterion, list_criteria, score
from trimnet.optimize.stats import activation_stats

pytest.importorskip("torch_pruning")

from trimnet.optimize.prune.graph import ChannelGraph, Group  # noqa: E402
from trimnet.optimize.prune.plan import Scored, keep_units, plan, quantum  # noqa: E402


def model_and_graph(seed: int = 0):
    """conv(3->8)-bn-relu, pool, linear(8->6)-relu, linear(6->3): two prunable groups."""
    torch.manual_seed(seed)
    model = from_spec({"type": "sequential", "layers": [
        {"type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False},
        {"type": "batchnorm2d", "num_features": 8}, {"type": "relu"},
        {"type": "adaptive_avgpool2d", "output_size": 1}, {"type": "flatten"},
        {"type": "linear", "in_features": 8, "out_features": 6}, {"type": "relu"},
        {"type": "linear", "in_features": 6, "out_features": 3}]}).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(-2.0, 1.5, 8))
    x = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    graph = ChannelGraph(model, x[:2])
    groups = {g.name: g for g in graph.groups}
    return model, x, groups


def test_the_registry_lists_every_criterion_and_rejects_unknown_ones():
    assert list_criteria() == ["apoz", "bn_scale", "l1", "l2", "mean_activation", "taylor"]
    assert all(CRITERIA.get(n).name == n for n in list_criteria())
    with pytest.raises(ConfigError, match="unknown pruning criterion 'fisher'; choose one of: apoz"):
        get_criterion("fisher")


def test_weight_norms_are_the_filters_norms():
    model, _, groups = model_and_graph()
    conv_group, fc_group = groups["0"], groups["5"]
    w = model[0].weight.detach()
    l1, used = score(get_criterion("l1"), conv_group, Evidence())
    assert used == "l1" and torch.allclose(l1.float(), w.abs().sum((1, 2, 3)))
    l2, _ = score(get_criterion("l2"), fc_group, Evidence())
    assert torch.allclose(l2.float(), model[5].weight.detach().norm(dim=1))


def test_bn_scale_reads_gamma_and_falls_back_without_a_batch_norm():
    model, _, groups = model_and_graph()
    s, used = score(get_criterion("bn_scale"), groups["0"], Evidence())
    assert used == "bn_scale" and torch.allclose(s.float(), torch.linspace(-2.0, 1.5, 8).abs())
    s, used = score(get_criterion("bn_scale"), groups["5"], Evidence())
    assert used == "l2"  # a linear layer with no norm: the fallback, and the record says so
    assert torch.allclose(s.float(), model[5].weight.detach().norm(dim=1))


def test_activation_criteria_read_the_activation_after_each_layer():
    model, x, groups = model_and_graph()
    stats = activation_stats(model, x)
    evidence = Evidence(stats=stats)
    apoz, used = score(get_criterion("apoz"), groups["0"], evidence)
    assert used == "apoz" and torch.allclose(apoz.float(), 1 - stats["2"].apoz)
    mean, _ = score(get_criterion("mean_activation"), groups["5"], evidence)
    assert torch.allclose(mean.float(), stats["6"].mean)
    _, used = score(get_criterion("apoz"), groups["0"], Evidence())  # nothing measured: weights decide
    assert used == "l2"


def test_taylor_is_activation_times_gradient(small_digits):
    torch.manual_seed(0)
    model = create_model("cnn", small_digits.in_shape, small_digits.num_classes, widths=(8, 8, 16), hidden=16).eval()
    stats = activation_stats(model, small_digits, samples=64, gradients=True)
    graph = ChannelGraph(model, small_digits.x_train[:2])
    group = next(g for g in graph.groups if g.name == "0")
    values, used = score(get_criterion("taylor"), group, Evidence(stats=stats))
    assert used == "taylor" and torch.allclose(values.float(), stats["2"].taylor)


def test_attention_groups_fall_back_to_weights_and_score_whole_heads():
    torch.manual_seed(0)
    model = create_model("transformer", (1, 8, 8), 3, dim=16, depth=1, heads=4).eval()
    x = torch.randn(16, 1, 8, 8)
    graph = ChannelGraph(model, x[:2])
    heads = next(g for g in graph.groups if g.heads)
    assert heads.unit == 4 and heads.units == 4 and heads.unit_of.tolist() == [i // 4 for i in range(16)]
    channel_scores, used = score(get_criterion("apoz"), heads, Evidence(stats=activation_stats(model, x)))
    assert used == "l2"
    per_head = heads.per_unit(channel_scores)
    assert torch.allclose(per_head, channel_scores.view(4, 4).mean(1))


def _group(channels: int, unit: int = 1) -> Group:
    return Group(name=f"g{channels}", channels=channels, unit=unit,
                 unit_of=torch.arange(channels) // unit)


@pytest.mark.parametrize("channels, target, round_to, expected", [
    (64, 19.2, 8, 16),  # to the nearest multiple of 8
    (64, 20.0, 8, 24),  # halves round up: keep more
    (64, 0.0, 8, 8),  # never below one rounding step
    (6, 1.8, 8, 2),  # narrower than round_to: not rounded
    (6, 0.0, 8, 1),  # but never zero
    (64, 19.2, 1, 19),
])
def test_kept_widths_are_rounded_and_floored(channels, target, round_to, expected):
    assert keep_units(_group(channels), target, round_to, min_channels=1) == expected


def test_rounding_counts_heads_and_respects_min_channels():
    heads = _group(64, unit=16)  # 4 heads of 16
    assert quantum(heads, 8) == 1 and keep_units(heads, 1.2, 8, 1) == 1
    assert keep_units(_group(64), 3.0, 8, min_channels=24) == 24


def test_global_ranking_pools_comparable_scores_and_normalizes_the_others():
    a, b = _group(8), _group(8)
    a.name, b.name = "a", "b"
    sa = torch.tensor([0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.0], dtype=torch.float64)
    sb = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0], dtype=torch.float64)
    comparable = [Scored(a, sa, "apoz", True, 8), Scored(b, sb, "apoz", True, 8)]
    out = plan(comparable, 0.25, "global", 1, 1)
    assert out["a"].tolist() == [0, 7] and out["b"].tolist() == [0, 1]
    # weight norms differ by layer: divided by their group's mean, b's scale no longer protects it
    norms = [Scored(a, sa * 100, "l1", False, 8), Scored(b, sb, "l1", False, 8)]
    assert sorted(len(v) for v in plan(norms, 0.25, "global", 1, 1).values()) == [2, 2]
    per_layer = plan(comparable, 0.25, "per_layer", 1, 1)
    assert per_layer["a"].tolist() == [0, 7] and per_layer["b"].tolist() == [0, 1]


def test_a_tie_between_scores_keeps_the_lower_index_order():
    g = _group(4)
    out = plan([Scored(g, torch.zeros(4, dtype=torch.float64), "l1", False, 4)], 0.5, "per_layer", 1, 1)
    assert out[g.name].tolist() == [0, 1]


def test_a_group_knows_its_producers_activations_and_norms():
    model, _, groups = model_and_graph()
    assert [i.name for i in groups["0"].producers] == ["0"]
    assert {i.name for i in groups["0"].items if i.role == "site"} == {"2"}
    assert isinstance(groups["0"].members("out", nn.BatchNorm2d)[0].module, nn.BatchNorm2d)
