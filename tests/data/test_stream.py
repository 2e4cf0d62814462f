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
