"""Heads and FFN neurons of Hugging Face encoders: pruned, saved without pickle, exported, served, INT8."""

import pytest
import torch

import trimnet as tn
from trimnet.errors import ConfigError
from trimnet.models.families import family_of, wrap

from ..models.conftest import BUILDERS, CLASSES, HEADS, LAYERS, SEQ, token_dataset, tiny_bert


def _config_sizes(model):
    cfg = model.hf.config
    return (getattr(cfg, "num_attention_heads", None) or cfg.n_heads,
            getattr(cfg, "intermediate_size", None) or cfg.hidden_dim)


@pytest.mark.parametrize("family_name", sorted(BUILDERS))
def test_pruning_removes_heads_and_neurons_keeps_the_config_and_reloads(family_name, tmp_path):
    model = wrap(BUILDERS[family_name](), seq_len=SEQ).eval()
    x = model.sample_inputs(8, torch.Generator().manual_seed(0))
    # a quarter of 4 heads leaves 3, which does not divide the hidden size: the config must still rebuild
    res = tn.prune(model, x, tn.PruneConfig(criterion="l2", ratio=0.25, round_to=8))
    pruned = res.model
    fam = family_of(pruned)
    assert [s.heads for s in fam.attention(pruned)] == [3] * LAYERS
    assert [s.neurons for s in fam.ffn(pruned)] == [48] * LAYERS
    assert _config_sizes(pruned) == (3, 48)
    assert res.record.params[1] < res.record.params[0] and res.record.macs[1] < res.record.macs[0]
    assert res.record.macs[1] == tn.profile(pruned, x[:1]).macs
    heads = [g for g in res.record.groups if g.unit == "head"]
    assert len(heads) == LAYERS and all(len(g.removed) == 1 and g.channels == (HEADS, 3) for g in heads)
    assert pruned(x).shape == (8, CLASSES)
    assert [s.heads for s in family_of(model).attention(model)] == [HEADS] * LAYERS  # the input is untouched

    path = tn.save_artifact(pruned, tmp_path / "run", in_shape=pruned.in_shape, class_names=["a", "b", "c"])
    assert not (path / "model.pt2").exists()  # config JSON + safetensors, never a program or a pickle
    art = tn.load_artifact(path)
    assert art.meta["spec"]["type"] == "hf"
    assert _config_sizes(art.model) == (3, 48)
    torch.testing.assert_close(art.model(x), pruned(x))


def test_pruning_ranks_each_block_on_its_own_by_contribution():
    model = wrap(tiny_bert(), seq_len=SEQ).eval()
    site = family_of(model).attention(model)[0]
    with torch.no_grad():
        site.o.weight[:, 2 * 8:3 * 8] = 0  # head 2 of block 0 contributes nothing
    res = tn.prune(model, model.sample_inputs(16), tn.PruneConfig(criterion="apoz", ratio=0.25))
    block0 = next(g for g in res.record.groups if g.name.endswith("layer.0.attention.self"))
    assert block0.removed == [2] and block0.criterion == "contribution"
    assert any("contribution" in n for n in res.record.notes)


def test_target_macs_is_met_and_an_unreachable_one_names_the_floor():
    model = wrap(tiny_bert(), seq_len=SEQ).eval()
    x = model.sample_inputs(4)
    res = tn.prune(model, x, tn.PruneConfig(criterion="l1", target_macs=0.6, round_to=1))
    assert res.record.macs_kept <= 0.6
    with pytest.raises(ConfigError, match="ask for at least"):
        tn.prune(model, x, tn.PruneConfig(criterion="l1", target_macs=0.01))


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_pruned_encoder_exports_to_onnx_and_openvino_and_serves_from_the_artifact(tmp_path):
    from trimnet.serve.model import load_model

    model = wrap(tiny_bert(), seq_len=SEQ).eval()
    pruned = tn.prune(model, model.sample_inputs(8), tn.PruneConfig(criterion="l2", ratio=0.5)).model
    run = tn.save_artifact(pruned, tmp_path / "run", in_shape=pruned.in_shape, class_names=["a", "b", "c"])
    art = tn.load_artifact(run)
    assert tn.export(art, run / "model.onnx").parity.passed
    assert tn.export(art, run / "model.xml").parity.passed
    served = load_model(run, backend="onnxruntime")
    ids = token_dataset(20).x_test.numpy()
    probs = served.infer(ids)
    expected = torch.softmax(pruned(torch.from_numpy(ids)), dim=1).detach().numpy()
    assert probs.shape == (len(ids), CLASSES)
    assert abs(probs - expected).max() < 1e-4
    served.close()


def test_fuse_returns_an_encoder_unchanged_and_says_why():
    model = wrap(tiny_bert(), seq_len=SEQ).eval()
    res = tn.fuse(model)
    assert "nothing to fuse" in res.record.mode and "onnxruntime" in res.record.mode
    assert res.record.params_after == res.record.params_before
    x = model.sample_inputs(2)
    torch.testing.assert_close(res.model(x), model(x))


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_int8_on_onnxruntime_keeps_a_trained_encoder_close():
    ds = token_dataset()
    model = wrap(tiny_bert(), seq_len=SEQ)
    tn.train(model, ds, tn.TrainConfig(epochs=2))
    q = tn.quantize(model.eval(), ds, tn.QuantizeConfig("int8"))
    assert q.accuracy_after is not None and q.accuracy_after >= q.accuracy_before - 0.1


def test_densenet_concatenations_prune_with_correct_records(tmp_path):
    """Each layer reads the concatenation of every earlier output, four levels deep."""
    from torch import nn

    class Dense(nn.Module):
        def __init__(self, c0=8, g=4, levels=4):
            super().__init__()
            self.stem = nn.Conv2d(3, c0, 3, padding=1)
            self.layers = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(c0 + i * g), nn.ReLU(),
                                                      nn.Conv2d(c0 + i * g, g, 3, padding=1)) for i in range(levels))
            self.head = nn.Linear(c0 + levels * g, 3)

        def forward(self, x):
            feats = [self.stem(x)]
            for layer in self.layers:
                feats.append(layer(torch.cat(feats, 1)))
            return self.head(torch.cat(feats, 1).mean((2, 3)))

    model = Dense().eval()
    x = torch.randn(16, 3, 8, 8)
    res = tn.prune(model, x, tn.PruneConfig(criterion="l1", ratio=0.5, round_to=1))
    pruned = res.model
    assert pruned(x).shape == (16, 3)
    assert pruned.stem.out_channels == 4 and all(layer[2].out_channels == 2 for layer in pruned.layers)
    assert [layer[0].num_features for layer in pruned.layers] == [4, 6, 8, 10]
    assert pruned.head.in_features == 12
    for i, layer in enumerate(pruned.layers):
        change = res.record.layers[f"layers.{i}.0"]
        before = 8 + 4 * i
        assert change.out == (before, layer[0].num_features)
        assert len(set(change.removed)) == before - layer[0].num_features  # original positions, none twice
        assert all(0 <= p < before for p in change.removed)
    assert res.record.macs[1] < res.record.macs[0] / 2
    assert tn.export(pruned, tmp_path / "dense.onnx", x[:2]).parity.passed



@pytest.mark.slow
def test_optimize_runs_on_a_transformers_classifier():
    """The whole search on a raw transformers model (the cheaper tests above cover each step)."""
    ds = token_dataset(400)
    hf = tiny_bert()
    tn.train(wrap(hf, seq_len=SEQ), ds, tn.TrainConfig(epochs=2))
    res = tn.optimize(hf, ds, tn.OptimizeConfig(max_accuracy_drop=0.05, ratios=[0.5], criteria=["l1"],
                                                finetune_epochs=1, finetune_retry_epochs=0, precisions=["fp32"],
                                                time_budget_s=120, bench_time_s=0.2))
    assert "l1-0.5" in res.prune_records
    assert res.prune_records["l1-0.5"]["groups"][0]["unit"] == "head"
    assert res.best.val_accuracy >= res.baseline_val_accuracy - 0.05
