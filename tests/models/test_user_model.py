"""A user's own module through the CLI: ``--model path/to/file.py:function`` and ``module:function``."""

import json
import textwrap

import pytest
import torch

import trimnet as tn
from trimnet.cli.main import main
from trimnet.errors import ModelError

SOURCE = textwrap.dedent('''
    import torch
    from torch import nn


    class TwoLayer(nn.Module):  # a class of its own: the layer spec cannot describe it
        def __init__(self, features, classes, hidden):
            super().__init__()
            self.a = nn.Linear(features, hidden)
            self.b = nn.Linear(hidden, classes)

        def forward(self, x):
            return self.b(torch.relu(self.a(x.flatten(1))))


    def build(in_shape, num_classes, hidden=16):
        return TwoLayer(int(torch.tensor(in_shape).prod()), num_classes, hidden)


    def plain(in_shape, **kwargs):  # spec layers only: stored as a spec, rebuilt exactly
        return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()), kwargs["num_classes"]))
''')


@pytest.fixture()
def user_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(SOURCE)
    return path


def test_train_eval_and_profile_a_user_module_from_a_file(user_file, tmp_path, capsys):
    out = tmp_path / "run"
    ref = f"{user_file}:build"
    assert main(["train", "--data", "breast_cancer", "--model", ref, "--train.epochs", "3",
                 "--train.batch_size", "32", "--model.options.hidden", "8", "--out", str(out)]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["arch"] == ref and meta["spec"] is None  # not describable: a program, never a pickle
    assert meta["source"]["reference"] == ref and meta["source"]["options"] == {"hidden": 8}
    assert (out / "model.pt2").is_file() and (out / "model.safetensors").is_file()
    trained = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    assert trained > 0.6
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(trained)
    # rebuilt from the reference: a plain, trainable module with the trained weights
    art = tn.load_artifact(out, rebuild=True)
    assert type(art.model).__name__ == "TwoLayer" and art.model.a.out_features == 8
    x = art.example_inputs(4)
    assert torch.allclose(art.model(x), tn.load_artifact(out).model(x), atol=1e-5)
    assert main(["profile", "--model", ref, "--input-shape", "1x30", "--num-classes", "2", "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["macs"] == 30 * 16 + 16 * 2  # two linear layers, hidden 16 by default
    assert prof["params"] == 30 * 16 + 16 + 16 * 2 + 2


def test_a_module_path_reference_and_a_spec_describable_module(user_file, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(user_file.parent))
    model = tn.create_model("my_models:plain", (30,), 2)
    assert model(torch.randn(3, 30)).shape == (3, 2)
    data = tn.load_dataset("breast_cancer")
    tn.train(model, data, tn.TrainConfig(epochs=1, batch_size=64), out=tmp_path / "plain")
    meta = json.loads((tmp_path / "plain" / "model.json").read_text())
    assert meta["spec"] is not None and "program" not in meta  # spec + safetensors, rebuilt without user code


def test_bad_references_name_the_fix(user_file, tmp_path, capsys):
    with pytest.raises(ModelError, match="has no function 'nope'; it defines .*build"):
        tn.create_model(f"{user_file}:nope", (30,), 2)
    with pytest.raises(ModelError, match="does not exist"):
        tn.create_model(f"{tmp_path}/missing.py:build", (30,), 2)
    with pytest.raises(ModelError, match="cannot import 'no_such_pkg.models'"):
        tn.create_model("no_such_pkg.models:build", (30,), 2)
    bad = tmp_path / "broken.py"
    bad.write_text("def build(in_shape, num_classes):\n    return 3\n")
    assert main(["train", "--data", "iris", "--model", f"{bad}:build", "--out", str(tmp_path / "x")]) == 2
    assert "returned a int; it must return an nn.Module" in capsys.readouterr().err


@pytest.mark.slow
def test_run_end_to_end_with_a_user_module(user_file, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--data.source", "breast_cancer", "--model.name", f"{user_file}:build",
                 "--train.epochs", "5", "--train.batch_size", "32", "--optimize.criteria", "[l1]",
                 "--optimize.ratios", "[0.5]", "--optimize.finetune_epochs", "2",
                 "--optimize.finetune_retry_epochs", "0", "--optimize.precisions", "[fp32]",
                 "--optimize.bench_time_s", "0.1", "--optimize.max_accuracy_drop", "0.05",
                 "--measure.backends", "[torch,onnxruntime]", "--measure.devices", "[t4]", "--out", str(out)]) == 0
    assert (out / "best" / "model.json").is_file() and (out / "report.html").is_file()
