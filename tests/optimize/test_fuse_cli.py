"""``trimnet fuse``: a fused run directory beside the input, which stays as it was."""

import json

import pytest
import torch
from torch import nn

import trimnet as tn
from trimnet.models.fused import Conv2dAct
from trimnet.cli import main as cli_main


@pytest.fixture
def run_dir(tmp_path):
    """A small digits CNN (untrained: fusion is exact whatever the weights) recorded with its dataset."""
    torch.manual_seed(0)
    model = tn.create_model("cnn", (1, 8, 8), 10, widths=(8, 8, 16), hidden=32)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    data = {"source": "digits", "seed": 0, "val_split": 0.1, "test_split": 0.25}
    return tn.save_artifact(model.eval(), tmp_path / "digits-cnn", in_shape=(1, 8, 8), class_names=list("0123456789"),
                            extra={"data": data, "kind": "image"})


@pytest.fixture(autouse=True)
def with_command(monkeypatch):
    """Register the subcommand for these tests (the CLI lists it once it ships)."""
    monkeypatch.setitem(cli_main.COMMANDS, "fuse", "fuse")


def cli(capsys, *argv):
    code = cli_main.main(["fuse", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def files(path):
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


def test_fuse_writes_a_fused_run_and_leaves_the_input(run_dir, capsys):
    before = files(run_dir)
    code, out, err = cli(capsys, run_dir, "--json")
    assert code == 0, err
    report = json.loads(out)
    fused_dir = run_dir.parent / "digits-cnn-fused"
    assert report["out"] == str(fused_dir) and report["mode"] == "layer spec"
    # 3 BatchNorms folded, then 4 conv/linear + ReLU pairs fused
    assert report["layer_count_before"] == 15 and report["layer_count_after"] == 8
    assert [len(p["changes"]) for p in report["passes"]] == [0, 3, 0, 4]
    assert all(p["check"]["passed"] for p in report["passes"])
    assert report["accuracy"]["before"] == report["accuracy"]["after"]
    art = tn.load_artifact(fused_dir)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in art.model.modules())
    assert art.meta["fuse"]["passes"] == ["drop_identity", "bn_fold", "linear_merge", "act_fuse"]
    assert sum(isinstance(m, Conv2dAct) for m in art.model.modules()) == 3  # rebuilt from the spec as fused
    assert tn.evaluate(art).accuracy == report["accuracy"]["after"]  # the run records its data, so eval works
    assert (fused_dir / "fuse.json").is_file()
    assert files(run_dir) == before


def test_fuse_table_and_user_errors(run_dir, capsys, tmp_path):
    code, out, _ = cli(capsys, run_dir, "--out", tmp_path / "f", "--passes", "bn_fold", "--no-eval")
    assert code == 0
    assert "bn_fold" in out and "Conv2d + BatchNorm2d -> Conv2d (bias added)" in out and "15 -> 12 layers" in out
    code, _, err = cli(capsys, run_dir, "--out", tmp_path / "f")
    assert code == 2 and "--overwrite" in err
    code, _, err = cli(capsys, run_dir, "--out", run_dir)
    assert code == 2 and "never changed" in err
    code, _, err = cli(capsys, run_dir, "--out", tmp_path / "g", "--passes", "bn_fold,nope")
    assert code == 2 and "unknown fusion pass 'nope'" in err and not (tmp_path / "g").exists()


def test_fuse_runtime_report_and_bench(run_dir, capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    code, out, err = cli(capsys, run_dir, "--out", tmp_path / "f", "--runtime-report", "--bench", "--batch-sizes", "1",
                         "--no-eval", "--json")
    assert code == 0, err
    report = json.loads(out)
    nodes = report["runtime_fusion"]["nodes"]
    assert set(nodes) == {"exported", "onnxruntime", "openvino"}
    # our graph leaves the runtimes their own fusions: conv + bias + ReLU still become one kernel
    assert report["runtime_fusion"]["after"]["onnxruntime"]["fused"].get("Conv+Relu", 0) + \
        report["runtime_fusion"]["after"]["onnxruntime"]["fused"].get("FusedConv+Relu", 0) == 3
    assert len([f for f in report["runtime_fusion"]["after"]["openvino"]["fused"] if f["type"] == "Convolution"]) == 3
    assert all(n["after"] <= n["before"] for n in nodes.values())
    assert report["bench"][0]["batch"] == 1 and report["bench"][0]["speedup"] > 0
