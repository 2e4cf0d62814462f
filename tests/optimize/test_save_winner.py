"""``tn.save_winner``: the winner as a run directory that reads like the original it was trimmed from."""

import torch

import trimnet as tn
from trimnet.optimize.result import OptimizeResult
from trimnet.optimize.search import Candidate


def test_save_winner_replaces_the_directory_and_keeps_the_originals_inputs(tmp_path):
    torch.manual_seed(0)
    model = tn.create_model("mlp", in_shape=(4,), num_classes=3, hidden=[8])
    tn.save_artifact(model, tmp_path / "original", in_shape=(4,), class_names=["a", "b", "c"],
                     extra={"kind": "tabular"})
    art = tn.load_artifact(tmp_path / "original")
    out = tmp_path / "best"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier winner")
    best = Candidate(name="original", description="original", structure="original", precision="fp32",
                     backend="onnxruntime", val_accuracy=1.0, original=True, winner=True)
    result = OptimizeResult(model=model, best=best, original=best, candidates=[best], baseline_val_accuracy=1.0)
    assert tn.save_winner(result, art, out) == out
    saved = tn.load_artifact(out)
    assert not (out / "stale.txt").exists()  # a fallback to the original replaces the winner written before
    assert saved.in_shape == (4,) and saved.class_names == ["a", "b", "c"] and saved.meta["kind"] == "tabular"
    assert saved.meta["optimized"]["description"] == "original" and (out / "model.onnx").exists()
