"""Structured pruning: what goes first, how much goes, what is never touched, and bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trimnet.errors import ConfigError, ModelError
from trimnet.models import from_spec, to_spec
from trimnet.models.layers import Residual, SelfAttention
from trimnet.optimize.prune import PruneConfig, prune

pytest.importorskip("torch_pruning")


def conv(cin, cout, k=3, groups=1):
    return {"type": "conv2d", "in_channels": cin, "out_channels": cout, "kernel_size": k, "padding": k // 2,
            "groups": groups, "bias": False}


def bn(n):
    return {"type": "batchnorm2d", "num_features": n}


RELU, FLAT, POOL = {"type": "relu"}, {"type": "flatten"}, {"type": "adaptive_avgpool2d", "output_size": 1}


def linear(i, o):
    return {"type": "linear", "in_features": i, "out_features": o}


def net(*layers, in_shape=(3, 8, 8), classes=4, seed=0):
    torch.manual_seed(seed)
    model = from_spec({"type": "sequential", "layers": list(layers)}, in_shape=in_shape, num_classes=classes)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():  # trained-looking batch norms: outputs on both sides of zero
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.3)
    return model.eval()


def kill(bn_layer: nn.BatchNorm2d, channels) -> None:
    """Plant dead channels: a large negative shift, so ReLU outputs zero for any input."""
    with torch.no_grad():
        for c in channels:
            bn_layer.weight[c] = 0.01
            bn_layer.bias[c] = -100.0


def inputs(shape=(3, 8, 8), n=64, seed=0):
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def params(model):
    return sum(p.numel() for p in model.parameters())


def test_apoz_removes_exactly_the_planted_dead_channels_first():
    model = net(conv(3, 16), bn(16), RELU, POOL, FLAT, linear(16, 16), RELU, linear(16, 4))
    dead = [1, 5, 6, 11]
    kill(model[1], dead)
    with torch.no_grad():  # and dead neurons in the hidden linear layer, whose others always fire
        model[5].bias.fill_(10.0)
        model[5].bias[[0, 3, 9, 12]] = -1e3
        model[5].weight[[0, 3, 9, 12]] = 0.0
    x = inputs()
    before = copy.deepcopy(model.state_dict())
    # no batch-norm recalibration: the synthetic running statistics would move the outputs
    res = prune(model, x, PruneConfig(criterion="apoz", ratio=0.25, round_to=1, recalibrate_bn=False))
    pruned = res.model
    assert pruned[0].out_channels == 12 and pruned[5].in_features == 12 and pruned[5].out_features == 12
    assert res.record.layers["0"].removed == dead and res.record.layers["5"].removed == [0, 3, 9, 12]
    assert res.record.groups[0].removed == dead and res.record.groups[0].criterion == "apoz"
    with torch.no_grad():  # dead channels carried nothing: the outputs do not move
        assert torch.allclose(model(x), pruned(x), atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is intact
    assert to_spec(pruned)["layers"][0]["out_channels"] == 12
    assert res.record.accuracy == {}  # no labelled data, no accuracy and no fine-tuning (said in the notes)


def test_global_ranking_finds_dead_channels_across_layers_per_layer_does_not():
    model = net(conv(3, 16), bn(16), RELU, conv(16, 32), bn(32), RELU, POOL, FLAT, linear(32, 4))
    kill(model[1], [0, 2, 4, 6, 8, 10])
    kill(model[4], [3, 30])
    x = inputs()
    res = prune(model, x, PruneConfig(criterion="apoz", ratio=8 / 48, scope="global", round_to=1,
                                      recalibrate_bn=False))
    assert res.record.layers["0"].removed == [0, 2, 4, 6, 8, 10]
    assert res.record.layers["3"].removed == [3, 30]
    with torch.no_grad():
        assert torch.allclose(model(x), res.model(x), atol=1e-5)
    per_layer = prune(model, x, PruneConfig(criterion="apoz", ratio=8 / 48, round_to=1))
    assert (per_layer.model[0].out_channels, per_layer.model[3].out_channels) == (13, 27)


def test_widths_round_to_multiples_and_never_reach_zero():
    model = net(conv(3, 64), bn(64), RELU, conv(64, 6), bn(6), RELU, POOL, FLAT, linear(6, 4))
    res = prune(model, inputs(), PruneConfig(criterion="l1", ratio=0.7))  # round_to=8 by default
    assert res.model[0].out_channels == 16  # 64 * 0.3 = 19.2 -> 16
    assert res.model[3].out_channels == 2  # narrower than 8: not rounded, 6 * 0.3 = 1.8 -> 2
    res = prune(model, inputs(), PruneConfig(criterion="l1", ratio=0.99))
    assert res.model[0].out_channels == 8 and res.model[3].out_channels == 1


def test_residual_depthwise_and_grouped_convolutions_stay_consistent():
    body = [*[conv(16, 16), bn(16), RELU], conv(16, 16, groups=16), bn(16), RELU, conv(16, 16, k=1, groups=2), bn(16)]
    model = net(conv(3, 16), bn(16), RELU, {"type": "residual", "body": body}, RELU, POOL, FLAT, linear(16, 4))
    x = inputs()
    res = prune(model, x, PruneConfig(criterion="l2", ratio=0.5, round_to=1))
    m = res.model
    stem, block = m[0], m[3]
    assert isinstance(block, Residual)
    assert stem.out_channels == 8 and block.body[6].out_channels == 8  # coupled by the addition
    depthwise = block.body[3]
    assert depthwise.in_channels == depthwise.out_channels == depthwise.groups == 8
    grouped = block.body[6]
    assert grouped.groups == 2 and grouped.in_channels % 2 == 0 and grouped.out_channels % 2 == 0
    assert m(x).shape == (64, 4)
    rebuilt = from_spec(to_spec(m))
    rebuilt.load_state_dict(m.state_dict())
    assert torch.allclose(rebuilt.eval()(x), m(x), atol=1e-6)


class Concat(nn.Module):
    """Two convolutions side by side, concatenated: a model the spec cannot describe."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 24, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(40, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(16, 4))

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x)], dim=1))


def test_concatenation_prunes_each_branch_and_the_consumer_columns():
    torch.manual_seed(0)
    model = Concat().eval()
    x = inputs()
    res = prune(model, x, PruneConfig(criterion="l1", ratio=0.5, round_to=1))
    m = res.model
    assert (m.a[0].out_channels, m.b[0].out_channels) == (8, 12)
    assert m.head[0].in_channels == 20 and m.head[0].out_channels == 8
    assert m(x).shape == (64, 4)


def test_attention_loses_whole_heads_and_the_spec_follows():
    from trimnet.models import create_model

    torch.manual_seed(0)
    model = create_model("transformer", (1, 8, 8), 5, dim=32, depth=1, heads=4).eval()
    x = inputs((1, 8, 8))
    res = prune(model, x, PruneConfig(criterion="apoz", ratio=0.5, round_to=1))
    m = res.model
    attn = next(mod for mod in m.modules() if isinstance(mod, SelfAttention))
    assert attn.num_heads == 2 and attn.head_dim == 8  # whole heads, not narrower heads
    assert attn.q.out_features == attn.k.out_features == attn.v.out_features == attn.proj.in_features == 16
    change = res.record.layers["3.0.body.1"]
    assert change.heads == (4, 2) and len(change.removed_heads) == 2
    spec = to_spec(m)
    assert spec["layers"][0]["out_channels"] == 16  # the model width went from 32 to 16
    assert spec["layers"][2] == {"type": "position_embedding", "num_tokens": 16, "dim": 16}
    block = spec["layers"][3]["layers"][0]["body"]
    assert block[0]["normalized_shape"] == [16]
    assert block[1] == {"type": "self_attention", "dim": 16, "num_heads": 2, "head_dim": 8, "bias": True}
    assert m(x).shape == (64, 5)
    heads = {g.name: g for g in res.record.groups}["3.0.body.1.q"]
    assert heads.unit == "head" and heads.criterion == "l2"  # no activation in attention: the fallback, said so


def test_feature_tokens_width_shrinks_but_the_input_features_do_not():
    from trimnet.models import create_model

    torch.manual_seed(0)
    model = create_model("transformer", (12,), 3, dim=32, depth=1, heads=2).eval()
    res = prune(model, inputs((12,)), PruneConfig(criterion="l1", ratio=0.5, round_to=1))
    spec = to_spec(res.model)["layers"]
    assert spec[0] == {"type": "feature_tokens", "num_features": 12, "dim": 16}
    assert spec[1] == {"type": "position_embedding", "num_tokens": 12, "dim": 16}


def test_input_and_output_layers_and_ignored_layers_keep_their_shapes():
    model = net(conv(3, 16), bn(16), RELU, conv(16, 16), bn(16), RELU, conv(16, 16), bn(16), RELU, POOL, FLAT,
                linear(16, 4))
    res = prune(model, inputs(), PruneConfig(criterion="l1", ratio=0.5, round_to=1, ignore=["3"]))
    m = res.model
    assert m[0].in_channels == 3 and m[-1].out_features == 4  # input channels and classes stay
    assert (m[3].in_channels, m[3].out_channels) == (16, 16)  # the ignored conv, in and out
    assert m[6].out_channels == 8
    reasons = {s["group"]: s["reason"] for s in res.record.skipped}
    assert "ignored" in reasons["0"] and "ignored" in reasons["3"] and "outputs" in reasons["11"]


@pytest.mark.parametrize("kwargs, fragment", [
    ({"ratio": 0.0}, "ratio must be in (0, 1)"),
    ({"ratio": 1.0}, "ratio must be in (0, 1)"),
    ({"ratio": -0.2}, "ratio must be in (0, 1)"),
    ({"target_macs": 1.5}, "target_macs must be in (0, 1)"),
    ({"ratio": 0.5, "target_macs": 0.5}, "not both"),
    ({"criterion": "nope"}, "choose one of: apoz, bn_scale, l1, l2, mean_activation, taylor"),
    ({"scope": "everywhere"}, "per_layer or global"),
    ({"round_to": 0}, "round_to"),
    ({"ignore": ["nothing.here"]}, "names no module"),
])
def test_bad_configs_raise_config_errors_naming_the_fix(kwargs, fragment):
    model = net(conv(3, 8), bn(8), RELU, POOL, FLAT, linear(8, 4))
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        prune(model, inputs(), PruneConfig(**kwargs))


def test_target_macs_is_met_and_an_unreachable_target_says_what_is_reachable():
    from trimnet.profile import profile

    model = net(conv(3, 32), bn(32), RELU, conv(32, 32), bn(32), RELU, POOL, FLAT, linear(32, 4))
    x = inputs()
    macs0 = profile(model, x[:1]).macs
    res = prune(model, x, PruneConfig(criterion="l1", target_macs=0.3, round_to=1))
    kept = res.record.macs[1] / macs0
    assert 0.2 < kept <= 0.3 and res.record.macs[0] == macs0
    with pytest.raises(ConfigError, match=r"cannot be reached.*keeps 0\.0\d+ of its MACs"):
        prune(model, x, PruneConfig(criterion="l1", target_macs=0.001))


class ChannelMean(nn.Module):
    def forward(self, x):
        return x.mean(1, keepdim=True)


class Mixer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.w = nn.Parameter(torch.randn(c, c))

    def forward(self, x):
        return torch.einsum("bchw,cd->bdhw", x, self.w)


def test_a_layer_the_graph_misreads_is_named_with_the_operator_and_can_be_ignored():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), ChannelMean(), nn.Flatten(), nn.Linear(64, 4))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ModelError, match=r"operator linear in module '4' \(Linear\).*--ignore 4"):
        prune(model, inputs(), PruneConfig(ratio=0.5))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    res = prune(model, inputs(), PruneConfig(ratio=0.5, ignore=["2"]))
    assert res.model(inputs()).shape == (64, 4)


def test_parameters_outside_known_layers_are_refused_with_the_module_to_ignore():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), Mixer(16), nn.Conv2d(16, 8, 1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    with pytest.raises(ModelError, match=r"module '2' \(Mixer\) holds parameters \(w\).*--ignore 2"):
        prune(model, inputs(), PruneConfig(ratio=0.5))
    res = prune(model, inputs(), PruneConfig(ratio=0.5, round_to=1, ignore=["2"]))
    assert res.model[0].out_channels == 16 and res.model[3].out_channels == 4  # only what the mixer does not touch
    assert res.model(inputs()).shape == (64, 4)


def test_a_model_that_does_not_run_on_the_data_is_a_model_error():
    model = net(conv(3, 8), bn(8), RELU, POOL, FLAT, linear(8, 4))
    with pytest.raises(ModelError, match="does not run on its calibration inputs"):
        prune(model, inputs((5, 8, 8)), PruneConfig(ratio=0.5))


def test_the_record_maps_every_change_to_original_indices_and_is_json():
    import json

    model = net(conv(3, 16), bn(16), RELU, POOL, FLAT, linear(16, 8), {"type": "relu"}, linear(8, 4))
    res = prune(model, inputs(), PruneConfig(criterion="l1", ratio=0.5, steps=2, round_to=1))
    d = json.loads(json.dumps(res.to_dict()))
    layers = {c["name"]: c for c in d["layers"]}
    assert layers["0"]["out"] == [16, 8] and len(layers["0"]["removed"]) == 8
    assert set(layers["0"]["removed"]) < set(range(16))
    assert layers["1"]["out"] == [16, 8]  # the batch norm followed
    assert layers["5"]["inputs"] == [16, 8] and layers["5"]["out"] == [8, 4]
    assert [h["step"] for h in d["history"]] == [1, 2] and [h["share"] for h in d["history"]] == [0.25, 0.5]
    assert d["params"]["after"] == params(res.model) and d["macs"]["after"] < d["macs"]["before"]
