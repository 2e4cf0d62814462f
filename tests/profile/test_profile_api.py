"""The Profile a user reads: per-layer records, operators, uncounted ops, memory, training,
notes, errors, and that profiling leaves the model as it was."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

import trimnet as tn
from trimnet.errors import ConfigError, ModelError
from trimnet.models import create_model
from trimnet.profile import LayerProfile, Profile, profile


class Block(nn.Module):
    """Work of its own (the residual add) around a child (the linear)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return x + self.fc(x)


def test_counts_go_to_the_innermost_module():
    model = nn.Sequential(Block(), nn.ReLU())
    prof = profile(model, torch.randn(4, 8))
    by_name = {layer.name: layer for layer in prof.layers}
    assert list(by_name) == ["0", "0.fc", "1"]  # execution order; the plain Sequential did nothing itself
    assert by_name["0.fc"].macs == 4 * 8 * 8 and by_name["0.fc"].flops == 2 * 256 + 32
    assert by_name["0"].type == "Block" and by_name["0"].flops == 32 and by_name["0"].macs == 0
    assert by_name["1"].flops == 32
    assert prof.by_module()["0"]["flops"] == 2 * 256 + 32 + 32  # a module's total includes its children
    assert prof.by_module()[""]["flops"] == prof.flops


def test_layer_record_fields_for_a_roofline():
    prof = profile(nn.Sequential(nn.Linear(5, 7)), torch.randn(4, 5))
    layer = prof.layers[0]
    assert isinstance(layer, LayerProfile)
    assert (layer.type, layer.output_shape, layer.params) == ("Linear", (4, 7), 42)
    assert layer.weight_bytes == 42 * 4
    assert (layer.input_bytes, layer.output_bytes) == (4 * 5 * 4, 4 * 7 * 4)  # x read, y written (float32)
    assert layer.flops == 2 * 140 + 28
    assert layer.intensity == pytest.approx(308 / (168 + 80 + 112))
    d = layer.to_dict()
    assert {"name", "type", "output_shape", "params", "macs", "flops", "weight_bytes", "activation_bytes",
            "intensity"} <= set(d)


def test_by_operator_and_uncounted():
    class Sorts(nn.Module):
        def forward(self, x):
            return torch.sort(x, dim=-1).values.relu()

    prof = profile(Sorts(), torch.randn(3, 4))
    assert prof.uncounted == {"aten.sort": 1}  # seen, no formula: reported, never silently zero
    assert "uncounted operators" in prof.table()
    ops = prof.by_operator()
    assert ops["aten.relu"].calls == 1 and ops["aten.relu"].flops == 12


def test_memory_param_bytes_and_peak():
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU())
    prof = profile(model, torch.randn(4, 5))
    assert prof.param_bytes == {"float32": 42 * 4}
    # at the ReLU: the input (80 B, held by the caller), the linear's output (112 B) and the ReLU's (112 B)
    assert prof.peak_activation_bytes == 80 + 112 + 112
    half = profile(nn.Linear(5, 7).to(torch.bfloat16), torch.randn(4, 5, dtype=torch.bfloat16))
    assert half.param_bytes == {"bfloat16": 42 * 2}


def test_training_profile_per_sample_and_compute():
    model = create_model("cnn", (1, 8, 8), 10)
    prof = profile(model, torch.randn(4, 1, 8, 8), training=True)
    per = prof.per_sample()
    assert prof.backward_flops > prof.flops  # two products per conv/linear in backward
    assert per["total_flops"] == pytest.approx((prof.flops + prof.backward_flops) / 4)
    assert prof.training_flops(samples=60000, epochs=10) == round(per["total_flops"] * 600000)
    with pytest.raises(ConfigError):
        profile(model, torch.randn(4, 1, 8, 8)).training_flops(60000)


def test_profiling_leaves_the_model_unchanged():
    model = create_model("cnn", (1, 8, 8), 10)
    model.eval()
    model[1].running_mean.fill_(0.5)
    for fake in (True, False):
        profile(model, torch.randn(4, 1, 8, 8), training=True, fake=fake)
        assert not model.training and not model[1].training
        assert torch.all(model[1].running_mean == 0.5) and model[1].num_batches_tracked == 0
        assert all(p.grad is None for p in model.parameters())


def test_bad_input_names_the_layer_and_shapes():
    model = create_model("cnn", (1, 8, 8), 10)
    with pytest.raises(ModelError, match=r"layer '0' \(Conv2d\) got \(1, 3, 8, 8\); it expects channels 1"):
        profile(model, torch.randn(1, 3, 8, 8))
    with pytest.raises(ModelError, match=r"layer '12' \(Linear\) got \(1, 2048\); it expects last dimension 512"):
        profile(model, input_shape=(1, 1, 16, 16))


def test_value_dependent_model_runs_for_real_and_says_so():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) if x.sum() > 0 else self.b(self.a(x))

    pos = profile(Gate(), torch.ones(2, 4))
    neg = profile(Gate(), -torch.ones(2, 4))
    assert pos.tensors == "real" and (pos.macs, neg.macs) == (32, 64)  # what ran for each input
    assert any("depend on the input" in n for n in pos.notes)


def test_inputs_by_shape_dict_and_in_shape():
    model = create_model("mlp", (6,), 3)
    by_shape = profile(model, (2, 6))
    assert profile(model, input_shape=(2, 6)).macs == by_shape.macs
    assert profile(model).batch == 1 and profile(model).macs * 2 == by_shape.macs  # in_shape, batch 1

    class Kw(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x, scale=1.0):
            return self.fc(x) * scale

    assert profile(Kw(), {"x": torch.randn(2, 6)}).macs == 2 * 6 * 3
    with pytest.raises(ConfigError):
        profile(nn.Linear(2, 2))  # no in_shape, no inputs
    with pytest.raises(ModelError):
        profile("resnet18", (1, 3, 8, 8))


def test_to_dict_is_json_and_table_reads():
    prof = profile(create_model("resnet20", (3, 32, 32), 10), input_shape=(1, 3, 32, 32))
    d = json.loads(json.dumps(prof.to_dict()))
    assert d["macs"] == prof.macs and d["params"] == prof.params
    assert {"layers", "operators", "uncounted", "memory", "per_sample", "notes"} <= set(d)
    assert d["memory"]["param_bytes"] == {"float32": 4 * prof.params}
    text = prof.table()
    assert "Conv2d" in text and f"{prof.macs:,}" in text
    assert isinstance(prof, Profile)


def test_tn_profile_is_callable_whatever_was_imported_first():
    # importing the package sets trimnet.profile to the package module; calling it still profiles
    package = sys.modules["trimnet.profile"]
    assert package(nn.Linear(3, 2), torch.randn(1, 3)).macs == 6
    assert tn.profile(nn.Linear(3, 2), torch.randn(1, 3)).macs == 6
    assert tn.Profile is Profile
