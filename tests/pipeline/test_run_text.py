"""`trimnet run` end to end on a text CSV: train the text model, prune heads/FFN, INT8, and
predict raw text with the winner."""

import csv
import json
import random
import subprocess
import sys

import pytest

from trimnet.cli.main import main

SPAM = ["winner you won a {p} prize call {n} now", "free entry win {p} cash txt WIN to {n}"]
HAM = ["are we still on for {t}", "ok see you at home {t}", "sorry i missed your call talk {t}"]


def write_messages(path, n, seed=0):
    r = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        for _ in range(n):
            spam = r.random() < 0.4
            text = r.choice(SPAM if spam else HAM).format(p=r.choice(["£1000", "holiday"]),
                                                         n=r.choice(["87121", "08712300"]),
                                                         t=r.choice(["tonight", "later", "tomorrow"]))
            w.writerow(["spam" if spam else "ham", text])
    return path


@pytest.mark.slow
def test_run_on_a_text_csv_prunes_quantizes_and_predicts_raw_text(tmp_path):
    csv_path = write_messages(tmp_path / "messages.csv", 400)
    out = tmp_path / "run"
    args = ["run", "--data.source", f"csv:{csv_path}", "--data.text", "text", "--data.label", "label",
            "--data.seq_len", "16", "--data.vocab_size", "256", "--model.name", "text_transformer",
            "--model.options", "{vocab_size: 256, dim: 32, heads: 4, depth: 1}", "--train.epochs", "6",
            "--train.lr", "0.003", "--optimize.criteria", "[l1]", "--optimize.ratios", "[0.5]",
            "--optimize.finetune_epochs", "2", "--optimize.precisions", "[fp32,int8]",
            "--optimize.bench_time_s", "0.2", "--optimize.max_accuracy_drop", "0.02",
            "--measure.backends", "[onnxruntime]", "--measure.devices", "[t4]", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["winner"]["test_accuracy"] >= summary["original"]["test_accuracy"] - 0.02
    groups = json.loads((out / "optimize.json").read_text())["prune_records"]["l1-0.5"]["groups"]
    assert any(g["unit"] == "head" for g in groups)  # whole attention heads were ranked and removed
    for d in ("original", "best"):
        assert (out / d / "tokenizer.json").exists()
    (tmp_path / "new.txt").write_text("winner you won a holiday prize call 87121 now\nok see you at home tonight\n")
    res = subprocess.run([sys.executable, "-m", "trimnet", "predict", str(out / "best"), "--input",
                          str(tmp_path / "new.txt"), "--json"], capture_output=True, text=True, check=True)
    assert [p["class"] for p in json.loads(res.stdout)["predictions"]] == ["spam", "ham"]
