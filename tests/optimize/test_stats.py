"""Activation statistics: APoZ, mean, max, firing rate and never-active units, per channel."""

from __future__ import annotations

import argparse
import json
import sys

import pytest
import torch
from torch import nn

from trimnet.errors import DataError, TrimnetError
from trimnet.models import create_model, from_spec
from trimnet.optimize.stats import activation_stats


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = from_spec({"type": "sequential", "layers": [
        {"type": "conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False},
        {"type": "batchnorm2d", "num_features": 8}, {"type": "relu"},
        {"type": "adaptive_avgpool2d", "output_size": 1}, {"type": "flatten"},
        {"type": "linear", "in_features": 8, "out_features": 6}, {"type": "relu"},
        {"type": "linear", "in_features": 6, "out_features": 3}]})
    return model.eval()


def test_planted_dead_channels_are_never_active_with_apoz_one():
    model = small_cnn()
    with torch.no_grad():
        model[1].bias[[2, 5]] = -100.0  # post-ReLU zero whatever the input
        model[5].bias.fill_(10.0)  # the other neurons always fire
        model[5].bias[4] = -100.0
    x = torch.randn(40, 1, 8, 8)
    stats = activation_stats(model, x, batch_size=16)
    conv_site, fc_site = stats["2"], stats["6"]
    assert conv_site.never_active == [2, 5] and fc_site.never_active == [4]
    assert conv_site.apoz[[2, 5]].tolist() == [1.0, 1.0] and conv_site.fire_rate[[2, 5]].tolist() == [0.0, 0.0]
    assert conv_site.max[[2, 5]].tolist() == [0.0, 0.0]
    assert conv_site.samples == 40 and conv_site.channels == 8 and conv_site.source == "0"
    assert fc_site.source == "5" and fc_site.exact_zeros
    assert stats.never_active() == {"2": [2, 5], "6": [4]}


def test_figures_match_a_hand_computation():
    model = small_cnn(1)
    x = torch.randn(10, 1, 8, 8)
    stats = activation_stats(model, x)
    with torch.no_grad():
        y = model[2](model[1](model[0](x)))  # (10, 8, 8, 8) after the ReLU
    per_channel = y.transpose(0, 1).reshape(8, -1)
    site = stats["2"]
    assert torch.allclose(site.apoz, (per_channel <= 0).float().mean(1))
    assert torch.allclose(site.mean, per_channel.mean(1), atol=1e-6)
    assert torch.allclose(site.max, per_channel.max(1).values)
    assert torch.allclose(site.fire_rate, (y.flatten(2) > 0).any(2).float().mean(0))


def test_gelu_fires_on_a_stated_threshold_and_tokens_use_the_last_axis():
    torch.manual_seed(0)
    model = create_model("transformer", (1, 8, 8), 4, dim=16, depth=1, heads=2).eval()
    x = torch.randn(12, 1, 8, 8)
    stats = activation_stats(model, x)
    (name, site), = stats.sites.items()
    assert site.type == "GELU" and not site.exact_zeros and site.threshold == 0.0
    assert site.channels == 32  # the MLP's hidden width, not the 16 tokens
    fc1 = model[3][1].body[1]
    captured = {}
    h = fc1.register_forward_hook(lambda m, a, out: captured.setdefault("pre", out))
    with torch.no_grad():
        model(x)
    h.remove()
    pre = captured["pre"].reshape(-1, 32)
    assert torch.allclose(site.apoz, (pre <= 0).float().mean(0))  # GELU(x) <= 0 exactly when x <= 0
    high = activation_stats(model, x, threshold=0.5)["3.1.body.2"]
    assert high.threshold == 0.5 and (high.apoz >= site.apoz).all()


def test_residual_activations_name_the_block_they_follow():
    torch.manual_seed(0)
    model = create_model("resnet20", (3, 8, 8), 4, width=0.25).eval()
    stats = activation_stats(model, torch.randn(8, 3, 8, 8))
    assert stats["2"].source == "0"  # stem: conv, bn, relu
    assert stats["3.0.1"].source == "3.0.0"  # the ReLU after the residual addition


def test_gradients_give_taylor_scores_and_leave_the_model_alone(small_digits):
    torch.manual_seed(0)
    model = create_model("cnn", small_digits.in_shape, small_digits.num_classes, widths=(8, 8, 16), hidden=16)
    model.train()
    stats = activation_stats(model, small_digits, samples=64, gradients=True)
    assert model.training and all(p.grad is None for p in model.parameters())
    site = stats["2"]
    assert site.taylor is not None and site.taylor.shape == (8,) and (site.taylor >= 0).all()
    assert stats.grads is not None and stats.grads["0.weight"].abs().sum() > 0
    with pytest.raises(DataError, match="need labels"):
        activation_stats(model, small_digits.x_train[:8], gradients=True)


def test_bad_data_is_a_data_error():
    with pytest.raises(DataError, match="Dataset or a tensor"):
        activation_stats(small_cnn(), [1, 2, 3])
    with pytest.raises(DataError, match="non-empty batch"):
        activation_stats(small_cnn(), torch.zeros(0, 1, 8, 8))


def test_to_dict_is_json_with_per_channel_figures():
    stats = activation_stats(small_cnn(), torch.randn(6, 1, 8, 8))
    d = json.loads(json.dumps(stats.to_dict()))
    assert d["samples"] == 6 and d["channels"] == 14
    site = d["sites"][0]
    assert site["name"] == "2" and len(site["per_channel"]["apoz"]) == 8
    assert "per_channel" not in stats.to_dict(per_channel=False)["sites"][0]


# ---------------------------------------------------------------------------- CLI


def cli(argv: list[str]) -> int:
    """``trimnet stats ...`` as main() runs it (the command may not be registered in main yet)."""
    from trimnet.cli import main as cli_main

    if "stats" in cli_main.COMMANDS:
        return cli_main.main(argv)
    from trimnet.cli import stats
    from trimnet.cli.common import split_overrides

    parser = argparse.ArgumentParser(prog="trimnet")
    stats.add_parser(parser.add_subparsers(dest="command"), "stats")
    args, extra = parser.parse_known_args(argv)
    try:
        args.overrides = split_overrides(extra)
        return int(args.func(args) or 0)
    except TrimnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_digits):
    import trimnet as tn

    torch.manual_seed(0)
    model = tn.create_model("cnn", small_digits.in_shape, small_digits.num_classes, widths=(8, 8, 16), hidden=32)
    out = tmp_path_factory.mktemp("runs") / "digits-cnn"
    tn.train(model, small_digits, tn.TrainConfig(epochs=1, progress=False), out=out)
    return out


def test_stats_command_prints_a_table_and_json(run_dir, capsys):
    assert cli(["stats", str(run_dir), "--samples", "128"]) == 0
    out = capsys.readouterr().out
    assert "128 train samples" in out and "APoZ" in out and "never-active units:" in out
    assert cli(["stats", str(run_dir), "--samples", "64", "--json", "--per-channel", "--threshold", "0.1"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["samples"] == 64 and d["threshold"] == 0.1
    assert [s["name"] for s in d["sites"]] == ["2", "5", "9", "13"]
    assert len(d["sites"][3]["per_channel"]["fire_rate"]) == 32


def test_stats_command_on_a_missing_run_exits_2(tmp_path, capsys):
    assert cli(["stats", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert "not a directory" in captured.out + captured.err
