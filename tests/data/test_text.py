"""Text classification: CSV text columns and the text: source, the tokenizer trained on the
training split, the text model, and raw-text prediction from a run directory."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import trimnet as tn
from trimnet.errors import DataError

SPAM = ["winner you won a {p} prize call {n} now", "free entry win {p} cash txt WIN to {n}",
        "urgent your number won {p} claim on {n}"]
HAM = ["are we still on for {t}", "ok see you at home {t}", "sorry i missed your call talk {t}"]
FILL = {"p": ["£1000", "£500", "holiday"], "n": ["08712300", "87121"], "t": ["tomorrow", "tonight", "later"]}


def messages(n: int, seed: int = 0) -> list[tuple[str, str]]:
    r = random.Random(seed)
    out = []
    for _ in range(n):
        spam = r.random() < 0.4
        text = r.choice(SPAM if spam else HAM).format(**{k: r.choice(v) for k, v in FILL.items()})
        out.append(("spam" if spam else "ham", text))
    return out


def write_csv(path, rows, header=("label", "text")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_text_column_becomes_padded_token_ids(tmp_path):
    f = write_csv(tmp_path / "m.csv", [(lab, f"{t}, ok") for lab, t in messages(120)])
    ds = tn.load_dataset(f"csv:{f}", text="text", label="label", seq_len=12)
    assert ds.kind == "text" and ds.in_shape == (12,) and ds.class_names == ["ham", "spam"]
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 120
    x = ds.x_train
    assert x.dtype == torch.float32 and torch.equal(x, x.round())  # ids, exact in float32
    assert ((x == 0).sum(1) > 0).any()  # short messages padded with id 0
    assert ds.normalization is None and 2 < ds.info["vocab"] <= 4096


def test_tokenizer_learns_the_training_split_only(tmp_path):
    # each message carries a character no other message has: the test split's are unknown tokens
    rows = [(lab, f"{t} {chr(0x4E00 + i)}") for i, (lab, t) in enumerate(messages(80))]
    f = write_csv(tmp_path / "m.csv", rows)
    ds = tn.load_dataset(f"csv:{f}", text="text", seq_len=16, val_split=0.0)
    unk = 1
    assert not (ds.x_train == unk).any()
    assert (ds.x_test == unk).any(dim=1).all()


def test_text_source_reads_tab_lines_and_class_folders(tmp_path):
    lines = tmp_path / "SMSSpamCollection"
    lines.write_text("".join(f"{lab}\t{t}\n" for lab, t in messages(60)), encoding="utf-8")
    ds = tn.load_dataset(f"text:{lines}", seq_len=10)
    assert ds.class_names == ["ham", "spam"] and ds.in_shape == (10,)

    for split, n in (("train", 30), ("test", 10)):
        for i, (lab, t) in enumerate(messages(n, seed=len(split))):
            d = tmp_path / "docs" / split / lab
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i}.txt").write_text(t, encoding="utf-8")
    ds = tn.load_dataset(f"text:{tmp_path / 'docs'}", seq_len=10, val_split=0.2)
    assert len(ds.y_test) == 10 and len(ds.y_train) + len(ds.y_val) == 30


@pytest.mark.parametrize("setup,fragment", [
    (lambda p: write_csv(p / "m.csv", messages(10)), "no column 'body' for data.text"),
    (lambda p: (p / "t.txt").write_text("ham hello there\n") and p / "t.txt", "is not 'label<TAB>text'"),
])
def test_bad_text_sources_name_the_fix(tmp_path, setup, fragment):
    path = setup(tmp_path)
    source = f"csv:{path}" if path.suffix == ".csv" else f"text:{path}"
    with pytest.raises(DataError, match=fragment):
        tn.load_dataset(source, text="body")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A text model trained on a generated spam/ham CSV, saved as a run directory."""
    tmp = tmp_path_factory.mktemp("text")
    f = write_csv(tmp / "m.csv", messages(300))
    ds = tn.load_dataset(f"csv:{f}", text="text", label="label", seq_len=16)
    torch.manual_seed(0)
    model = tn.create_model("text_transformer", ds.in_shape, ds.num_classes, vocab_size=256, dim=32, heads=2,
                            depth=1)
    result = tn.train(model, ds, tn.TrainConfig(epochs=6, lr=3e-3, progress=False), out=tmp / "run")
    return tmp, ds, result


def test_text_model_trains_and_the_run_keeps_its_tokenizer(text_run):
    tmp, ds, result = text_run
    assert result.metrics["test_accuracy"] >= 0.95
    run = tmp / "run"
    meta = json.loads((run / "model.json").read_text())
    assert meta["tokenizer"] == {"file": "tokenizer.json", "seq_len": 16}
    assert "tokenizer_json" not in meta["data"]  # the tokenizer lives in its own file
    from tokenizers import Tokenizer

    assert Tokenizer.from_str((run / "tokenizer.json").read_text()).token_to_id("[PAD]") == 0
    art = tn.load_artifact(run)
    # the run's tokenizer reproduces the training encoding; the reloaded dataset reuses it
    from trimnet.train.evaluate import dataset_of

    assert torch.equal(dataset_of(art).x_test, ds.x_test)
    ids = art.encode_text(["free entry win £500 cash txt WIN to 87121", "ok"])
    assert ids.shape == (2, 16) and ids.dtype == np.float32 and (ids[1, 1:] == 0).all()
    preds = tn.predict(art, ["winner you won a holiday prize call 87121 now", "ok see you at home tonight"])
    assert preds.names == ["spam", "ham"]


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_predict_cli_on_raw_text(text_run, tmp_path):
    tmp, _, _ = text_run
    (tmp_path / "new.txt").write_text("urgent your number won £1000 claim on 08712300\nare we still on for later\n")
    write_csv(tmp_path / "new.csv", [("spam", "free entry win holiday cash txt WIN to 87121")])
    env_cmd = [sys.executable, "-m", "trimnet", "predict", str(tmp / "run"), "--json", "--input"]
    out = subprocess.run(env_cmd + [str(tmp_path / "new.txt")], capture_output=True, text=True, check=True)
    assert [p["class"] for p in json.loads(out.stdout)["predictions"]] == ["spam", "ham"]
    out = subprocess.run(env_cmd + [str(tmp_path / "new.csv")], capture_output=True, text=True, check=True)
    assert [p["class"] for p in json.loads(out.stdout)["predictions"]] == ["spam"]


def test_text_model_prunes_heads_and_exports(text_run, tmp_path):
    _, ds, result = text_run
    from trimnet.models.layers import SelfAttention

    from trimnet.optimize.finetune import FinetuneConfig

    cfg = tn.PruneConfig(criterion="l1", ratio=0.5, finetune=FinetuneConfig(epochs=1))
    pruned = tn.prune(result.model, ds, cfg).model
    heads = [m.num_heads for m in pruned.modules() if isinstance(m, SelfAttention)]
    assert heads == [1]
    x = ds.x_test[:4]
    assert pruned(x).shape == (4, 2)
    exported = tn.export(pruned, tmp_path / "m.onnx", x[:1])
    assert exported.parity.passed


def test_server_takes_raw_text_as_kserve_bytes(text_run):
    from fastapi.testclient import TestClient

    from trimnet.serve import create_app
    from trimnet.serve.model import load_model

    tmp, _, _ = text_run
    art = tn.load_artifact(tmp / "run")
    assert art.tokenizer == (tmp / "run" / "tokenizer.json").read_text()
    texts = ["winner you won a holiday prize call 87121 now", "ok see you at home tonight"]
    with TestClient(create_app([load_model(art, name="spam")])) as c:
        body = {"inputs": [{"name": "input", "shape": [2, 1], "datatype": "BYTES", "data": texts}],
                "outputs": [{"name": "classes"}]}
        r = c.post("/v2/models/spam/infer", json=body)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["spam", "ham"]
    assert r.json()["outputs"][0]["data"] == tn.predict(art, texts).names
