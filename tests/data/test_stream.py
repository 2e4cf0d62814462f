"""Streaming sources: image folders and text files read from disk per batch through DataLoader
workers give the same splits and samples as the in-memory readers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import trimnet as tn
from trimnet.data.stream import StreamingDataset, materialize
from trimnet.errors import DataError


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(48):
        d = tmp_path / "imgs" / f"c{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return tmp_path / "imgs"


def test_streamed_folder_matches_the_in_memory_reader(image_folder):
    stream = tn.load_dataset(f"folder:{image_folder}", stream=True)
    memory = tn.load_dataset(f"folder:{image_folder}")
    assert isinstance(stream, StreamingDataset)
    assert stream.in_shape == memory.in_shape == (3, 8, 8) and stream.class_names == memory.class_names
    assert [len(stream.splits[s]) for s in ("train", "val", "test")] == [len(memory.y_train), len(memory.y_val),
                                                                          len(memory.y_test)]
    again = materialize(stream)
    assert torch.equal(again.y_test, memory.y_test)
    assert torch.allclose(again.x_test, memory.x_test, atol=1e-5)  # same files, same normalization


def test_loader_workers_give_the_same_batches(image_folder):
    stream = tn.load_dataset(f"folder:{image_folder}", stream=True)
    one = [(x, y) for x, y in stream.loader("test", 5, workers=0)]
    two = [(x, y) for x, y in stream.loader("test", 5, workers=2)]
    assert len(one) == len(two) == 3 and one[0][0].shape == (5, 3, 8, 8)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, two))
    shuffled = next(iter(stream.loader("train", 64, workers=0)))[1]
    assert sorted(shuffled.tolist()) == sorted(stream.splits["train"].labels.tolist())


def test_streamed_text_file_tokenizes_per_line_like_the_in_memory_reader(tmp_path):
    f = tmp_path / "lines.txt"
    f.write_text("".join(f"{'spam' if i % 3 == 0 else 'ham'}\tmessage {i} {'win cash now' if i % 3 == 0 else 'see you'}\n"
                         for i in range(90)), encoding="utf-8")
    stream = tn.load_dataset(f"text:{f}", stream=True, seq_len=8)
    memory = tn.load_dataset(f"text:{f}", seq_len=8)
    x, y = next(iter(stream.loader("test", 100, workers=1)))
    assert torch.equal(x, memory.x_test) and torch.equal(y, memory.y_test)
    assert stream.info["tokenizer_json"] == memory.info["tokenizer_json"]  # trained on the same lines


def test_stream_refuses_sources_it_cannot_stream(tmp_path):
    (tmp_path / "a.csv").write_text("x,label\n1,a\n2,b\n")
    with pytest.raises(DataError, match="drop --data.stream"):
        tn.load_dataset(f"csv:{tmp_path / 'a.csv'}", stream=True)


@pytest.fixture
def learnable_folder(tmp_path):
    """Three classes that differ in colour, with noise: a small CNN learns them in a few epochs."""
    rng = np.random.default_rng(1)
    base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])
    for i in range(120):
        d = tmp_path / "colours" / f"c{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(base[i % 3] + rng.normal(0, 60, (8, 8, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(d / f"{i}.png")
    return tmp_path / "colours"


def _train(data, out=None, **cfg):
    torch.manual_seed(0)
    model = tn.create_model("mlp", data.in_shape, data.num_classes, hidden=[32])
    settings = dict(epochs=4, batch_size=16, lr=3e-3, progress=False, **cfg)
    return tn.train(model, data, tn.TrainConfig(**settings), out=out)


def test_training_streams_a_folder_without_reading_it_into_memory(learnable_folder, tmp_path, monkeypatch):
    """Training, validation and the test score read the folder batch by batch: every image is decoded
    on access (counted), never held as one tensor; workers change nothing in the weights."""
    from trimnet.data import stream as S

    decoded = []
    real = S.ImageFiles.decode
    monkeypatch.setattr(S.ImageFiles, "decode", lambda self, i: decoded.append(i) or real(self, i))
    data = tn.load_dataset(f"folder:{learnable_folder}", stream=True, workers=0)
    before = len(decoded)  # the normalization sample
    result = _train(data, out=tmp_path / "run")
    sizes = {s: len(d) for s, d in data.splits.items()}
    # each epoch decodes the (trimmed) training split once and the validation split once; then the test split
    steps = sizes["train"] // 16 if sizes["train"] % 16 < 8 else -(-sizes["train"] // 16)
    per_epoch = min(steps * 16, sizes["train"]) + sizes["val"]
    assert len(decoded) - before == 4 * per_epoch + sizes["test"] + 2  # + the two examples of the fit check
    assert result.metrics["test_accuracy"] > 0.8
    art = tn.load_artifact(tmp_path / "run")
    assert art.meta["data"]["source"] == f"folder:{learnable_folder}" and art.meta["data"]["stream"] is True
    ev = tn.evaluate(tmp_path / "run")  # the run records a streamed source: evaluated from disk again
    assert ev.samples == sizes["test"] and ev.accuracy == pytest.approx(result.metrics["test_accuracy"])
    with_workers = tn.load_dataset(f"folder:{learnable_folder}", stream=True, workers=2)
    again = _train(with_workers)
    assert all(torch.equal(a, b) for a, b in zip(result.model.state_dict().values(),
                                                 again.model.state_dict().values()))


def test_streamed_training_learns_what_the_in_memory_run_learns(learnable_folder):
    streamed = _train(tn.load_dataset(f"folder:{learnable_folder}", stream=True, workers=0))
    memory = _train(tn.load_dataset(f"folder:{learnable_folder}"))
    # the same files, split and order; normalization from the same images (summed in another order)
    assert abs(streamed.metrics["test_accuracy"] - memory.metrics["test_accuracy"]) <= 0.05
    assert abs(streamed.history[-1]["train_loss"] - memory.history[-1]["train_loss"]) < 1e-3


def test_a_streamed_run_resumes_mid_epoch_to_identical_weights(learnable_folder, tmp_path):
    data = tn.load_dataset(f"folder:{learnable_folder}", stream=True, workers=0)
    straight = _train(data, out=tmp_path / "straight", checkpoint_every=2)

    def stop(event, info):
        if event == "step" and info["epoch"] == 2 and info["step"] == 2:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    model = tn.create_model("mlp", data.in_shape, data.num_classes, hidden=[32])
    cfg = tn.TrainConfig(epochs=4, batch_size=16, lr=3e-3, progress=False, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        tn.train(model, data, cfg, out=tmp_path / "killed", callbacks=[stop])
    torch.manual_seed(1)  # resume must not depend on the fresh model's weights
    model = tn.create_model("mlp", data.in_shape, data.num_classes, hidden=[32])
    resumed = tn.train(model, data, cfg, out=tmp_path / "killed", resume=True)
    assert all(torch.equal(a, b) for a, b in zip(straight.model.state_dict().values(),
                                                 resumed.model.state_dict().values()))


def test_cli_trains_a_streamed_text_file(tmp_path, capsys):
    from trimnet.cli.main import main

    rng = np.random.default_rng(3)
    spam, ham = ["win cash now", "free prize claim", "cheap offer click"], ["see you at lunch", "notes attached",
                                                                             "call me later"]
    lines = [f"{'spam' if i % 2 else 'ham'}\t{rng.choice(spam if i % 2 else ham)} {i}" for i in range(200)]
    (tmp_path / "sms.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--data", f"text:{tmp_path / 'sms.txt'}", "--data.stream", "true", "--data.workers", "0",
                 "--data.seq_len", "8", "--model", "text_transformer", "--train.epochs", "3", "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    art = tn.load_artifact(out)
    assert art.reads_text and art.encode_text(["win cash now 7"]).shape == (1, 8)


def test_the_search_reads_a_bounded_subset_of_a_streamed_source(learnable_folder):
    from trimnet.data.stream import materialize

    stream = tn.load_dataset(f"folder:{learnable_folder}", stream=True, workers=0)
    full = materialize(stream)
    part = materialize(stream, limits={"train": 10, "test": 1000}, seed=0)
    assert len(part.y_train) == 10 and len(part.y_test) == len(full.y_test) == len(stream.splits["test"])
    assert part.info["subset"] == {"train": {"samples": 10, "of": len(stream.splits["train"])}}
    rows = [next(i for i in range(len(full.y_train)) if torch.equal(full.x_train[i], x)) for x in part.x_train]
    assert rows == sorted(rows) and len(set(rows)) == 10  # drawn from the split, in its order


def test_a_tokenizer_larger_than_the_models_embedding_is_named(tmp_path, capsys):
    from trimnet.cli.main import main

    words = [f"w{i}" for i in range(300)]
    lines = [f"{'a' if i % 2 else 'b'}\t{' '.join(words[(i * 7 + k) % 300] for k in range(6))}" for i in range(200)]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    code = main(["train", "--data", f"text:{tmp_path / 't.txt'}", "--data.seq_len", "8", "--data.vocab_size", "512",
                 "--model", "text_transformer", "--model.options.vocab_size", "16", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "embedding holds 16" in err and "--model.options.vocab_size" in err
    assert not (tmp_path / "run").exists()
