"""``trimnet prune``: a new run that reloads, the input untouched, and bad input exits 2 leaving nothing."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import pytest
import torch

import trimnet as tn
from trimnet.errors import TrimnetError

pytest.importorskip("torch_pruning")


def cli(argv: list) -> int:
    """``trimnet prune ...`` as main() runs it (the command may not be registered in main yet)."""
    from trimnet.cli import main as cli_main

    argv = [str(a) for a in argv]
    if "prune" in cli_main.COMMANDS:
        return cli_main.main(argv)
    from trimnet.cli import prune
    from trimnet.cli.common import split_overrides

    parser = argparse.ArgumentParser(prog="trimnet")
    prune.add_parser(parser.add_subparsers(dest="command"), "prune")
    args, extra = parser.parse_known_args(argv)
    try:
        args.overrides = split_overrides(extra)
        return int(args.func(args) or 0)
    except TrimnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def digest(path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_digits):
    torch.manual_seed(0)
    model = tn.create_model("cnn", small_digits.in_shape, small_digits.num_classes, widths=(16, 16, 32), hidden=32)
    out = tmp_path_factory.mktemp("runs") / "digits-cnn"
    tn.train(model, small_digits, tn.TrainConfig(epochs=2, lr=3e-3, progress=False), out=out)
    return out


def test_prune_writes_a_smaller_run_that_reloads_and_leaves_the_input_alone(run_dir, tmp_path, capsys):
    before = digest(run_dir)
    out = tmp_path / "pruned"
    code = cli(["prune", run_dir, "--criterion", "apoz", "--ratio", "0.5", "--finetune.epochs", "1",
                "--samples", "256", "--out", out, "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert digest(run_dir) == before
    art = tn.load_artifact(out)
    layers = art.meta["spec"]["layers"]
    assert [layers[i]["out_channels"] for i in (0, 3, 7)] == [8, 8, 16] and layers[12]["out_features"] == 16
    assert art.meta["name"] == "pruned" and art.meta["pruned_from"] == str(run_dir)
    assert art.meta["data"]["source"] == "digits"
    assert report["macs"]["after"] < 0.35 * report["macs"]["before"]
    assert set(report["accuracy"]) == {"before", "pruned", "after"}
    assert json.loads((out / "prune.json").read_text())["groups"] == report["groups"]
    assert "epochs: 1" in (out / "config.yaml").read_text()
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == report["accuracy"]["after"]
    assert tn.evaluate(art).accuracy == pytest.approx(report["accuracy"]["after"], abs=1e-6)


def test_the_table_names_groups_and_what_was_left_alone(run_dir, tmp_path, capsys):
    code = cli(["prune", run_dir, "--criterion", "l1", "--target-macs", "0.8", "--ignore", "3",
                "--finetune.epochs", "0", "--out", tmp_path / "p"])
    assert code == 0
    out = capsys.readouterr().out
    assert "l1 (per_layer): MACs" in out and "left alone: 3: ignored as asked" in out
    assert "left alone: 0: its outputs only feed ignored modules" in out
    layers = tn.load_artifact(tmp_path / "p").meta["spec"]["layers"]
    assert (layers[3]["in_channels"], layers[3]["out_channels"]) == (16, 16)  # the ignored conv kept its shape
    assert layers[7]["out_channels"] < 32


@pytest.mark.parametrize("argv, fragment", [
    (["--ratio", "1.5"], "ratio must be in (0, 1)"),
    (["--target-macs", "0.0001"], "cannot be reached"),
    (["--criterion", "magic"], "unknown pruning criterion 'magic'"),
    (["--finetune.nope", "3"], "unknown config key finetune.nope"),
    (["--ignore", "no.such.layer"], "names no module"),
])
def test_bad_input_exits_2_and_writes_nothing(run_dir, tmp_path, capsys, argv, fragment):
    before = digest(run_dir)
    out = tmp_path / "out"
    assert cli(["prune", run_dir, "--out", out, "--finetune.epochs", "0", *argv]) == 2
    assert fragment in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert digest(run_dir) == before


def test_a_failure_while_writing_leaves_no_half_written_run(run_dir, tmp_path, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tn, "save_artifact", boom)
    with pytest.raises(OSError):
        cli(["prune", run_dir, "--finetune.epochs", "0", "--out", tmp_path / "out"])
    assert list(tmp_path.iterdir()) == []


def test_out_must_differ_from_the_input_and_not_overwrite_without_asking(run_dir, tmp_path, capsys):
    assert cli(["prune", run_dir, "--out", run_dir]) == 2
    assert "is the input run" in capsys.readouterr().err
    out = tmp_path / "p"
    assert cli(["prune", run_dir, "--finetune.epochs", "0", "--ratio", "0.25", "--out", out]) == 0
    assert cli(["prune", run_dir, "--finetune.epochs", "0", "--out", out]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli(["prune", run_dir, "--finetune.epochs", "0", "--ratio", "0.5", "--out", out, "--overwrite"]) == 0
    assert tn.load_artifact(out).meta["spec"]["layers"][0]["out_channels"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_print_config_merges_file_flags_and_dotted_keys(run_dir, tmp_path, capsys):
    config = tmp_path / "prune.yaml"
    config.write_text("criterion: l2\nratio: 0.3\nfinetune:\n  epochs: 7\n  alpha: 0.5\n")
    assert cli(["prune", run_dir, "-c", config, "--ratio", "0.4", "--finetune.temperature", "2",
                "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "criterion: l2" in text and "ratio: 0.4" in text
    assert "epochs: 7" in text and "alpha: 0.5" in text and "temperature: 2" in text
    assert cli(["prune", run_dir, "--list-criteria"]) == 0
    assert capsys.readouterr().out.split() == ["apoz", "bn_scale", "l1", "l2", "mean_activation", "taylor"]
