import json

import numpy as np
import pytest
import torch
from torch import nn

import trimnet as tn
from trimnet.artifact import load_artifact, save_artifact
from trimnet.data.dataset import Normalization
from trimnet.errors import ArtifactError


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = tn.create_model("cnn", (1, 8, 8), 10, widths=(8, 8, 16), hidden=32).eval()
    out = save_artifact(model, tmp_path / "run", in_shape=(1, 8, 8), class_names=[str(i) for i in range(10)],
                        normalization=Normalization(mean=[3.0], std=[2.0]), metrics={"test_accuracy": 0.5})
    return model, out


def test_round_trip_is_exact(saved):
    model, out = saved
    art = load_artifact(out)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(model(x), art.model(x))
    assert art.in_shape == (1, 8, 8) and art.class_names[3] == "3"
    assert art.metrics == {"test_accuracy": 0.5}
    assert torch.allclose(art.preprocess(torch.full((1, 1, 8, 8), 5.0)), torch.ones(1, 1, 8, 8))
    meta = json.loads((out / "model.json").read_text())
    assert meta["spec"]["layers"][0]["out_channels"] == 8 and meta["versions"]["torch"] == torch.__version__


def test_pruned_widths_reload_exactly(tmp_path):
    model = tn.create_model("cnn", (1, 8, 8), 10, widths=(8, 8, 16), hidden=32).eval()
    # shrink the first conv to 5 channels by hand, as a pruner would
    model[0] = nn.Conv2d(1, 5, 3, padding=1, bias=False)
    model[1] = nn.BatchNorm2d(5)
    model[3] = nn.Conv2d(5, 8, 3, padding=1, bias=False)
    model.eval()
    out = save_artifact(model, tmp_path / "p", in_shape=(1, 8, 8), class_names=list("abcdefghij"))
    art = load_artifact(out)
    assert art.model[0].out_channels == 5
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(model(x), art.model(x))


def test_user_module_is_saved_as_an_exported_program(tmp_path):
    class Mine(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 8)
            self.b = nn.Linear(8, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x))) * 2

    model = Mine().eval()
    out = save_artifact(model, tmp_path / "mine", in_shape=(4,), class_names=["x", "y", "z"])
    assert (out / "model.pt2").exists() and not (out / "model.safetensors").exists()
    art = load_artifact(out)
    x = torch.randn(5, 4)
    assert torch.allclose(model(x), art.model(x))


@pytest.mark.parametrize("damage", ["truncate_weights", "garbage_weights", "truncate_json", "missing_weights",
                                    "swap_weights"])
def test_corrupt_artifacts_name_the_file(saved, tmp_path, damage):
    _, out = saved
    weights, meta = out / "model.safetensors", out / "model.json"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "garbage_weights":
        weights.write_bytes(b"\x00" * 64)
    elif damage == "truncate_json":
        meta.write_text(meta.read_text()[:40])
    elif damage == "missing_weights":
        weights.unlink()
    else:
        other = tn.create_model("cnn", (1, 8, 8), 10, widths=(4, 4, 4), hidden=8)
        save_artifact(other, tmp_path / "other", in_shape=(1, 8, 8), class_names=[str(i) for i in range(10)])
        weights.write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    expected = "model.json" if damage == "truncate_json" else "model.safetensors"
    with pytest.raises(ArtifactError, match=expected):
        load_artifact(out)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ArtifactError, match="not a directory"):
        load_artifact(tmp_path / "nothing")
    with pytest.raises(ArtifactError, match="model.json is missing"):
        load_artifact(tmp_path)


def test_loading_never_unpickles(saved, monkeypatch):
    import pickle

    def refuse(*a, **k):
        raise AssertionError("pickle used while loading an artifact")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    _, out = saved
    assert load_artifact(out).model is not None


def test_predict_applies_normalization(saved):
    model, out = saved
    raw = np.random.default_rng(0).uniform(0, 16, size=(3, 1, 8, 8)).astype(np.float32)
    preds = tn.predict(out, raw)
    expected = model((torch.from_numpy(raw) - 3.0) / 2.0).argmax(1).tolist()
    assert preds.labels == expected and preds.names == [str(i) for i in expected]


def test_exported_program_artifact_evaluates_and_predicts(tmp_path, small_digits):
    class Mine(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.reshape(x.shape[0], -1))

    out = save_artifact(Mine().eval(), tmp_path / "m", in_shape=(1, 8, 8), class_names=small_digits.class_names)
    ev = tn.evaluate(out, small_digits)
    assert 0.0 <= ev.accuracy <= 1.0 and ev.samples == len(small_digits.y_test)
    assert len(tn.predict(out, np.zeros((2, 1, 8, 8), np.float32)).labels) == 2


def test_resolve_model_takes_a_module_an_artifact_or_a_run_directory(saved):
    from trimnet.artifact import resolve_model

    model, out = saved
    for given in (out, str(out), load_artifact(out)):
        r = resolve_model(given)
        assert r.artifact is not None and r.artifact.path == out and r.in_shape == (1, 8, 8)
        assert torch.equal(r.module(torch.ones(1, 1, 8, 8)), model(torch.ones(1, 1, 8, 8)))
    r = resolve_model(model)
    assert r.module is model and r.artifact is None and r.in_shape == (1, 8, 8)
    assert resolve_model(nn.Linear(2, 2)).in_shape is None
    assert resolve_model({"not": "a model"}).module == {"not": "a model"}  # without a verb the caller judges
    with pytest.raises(tn.ConfigError, match="cannot fuse a dict; pass an nn.Module, an Artifact or a run directory"):
        resolve_model({"not": "a model"}, verb="fuse")
