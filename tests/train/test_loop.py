import math

import pytest
import torch
from torch import nn

import trimnet as tn
from trimnet.config import TrainConfig
from trimnet.errors import ModelError, TrainingError
from trimnet.train.optim import lr_at


def tiny_cnn(data, seed=0):
    torch.manual_seed(seed)
    return tn.create_model("cnn", data.in_shape, data.num_classes, widths=(8, 8, 16), hidden=32)


def test_training_learns_and_writes_run_dir(small_digits, tmp_path):
    model = tiny_cnn(small_digits)
    result = tn.train(model, small_digits, TrainConfig(epochs=3, batch_size=32, lr=1e-2), out=tmp_path / "run")
    assert result.metrics["test_accuracy"] > 0.8
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    for name in ("model.safetensors", "model.json", "metrics.json", "metrics.csv", "metrics.jsonl",
                 "config.yaml", "checkpoints/last.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    assert len((tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()) == 4
    # the saved model is the one evaluated
    again = tn.evaluate(tmp_path / "run", small_digits)
    assert again.accuracy == pytest.approx(result.metrics["test_accuracy"])


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_resume_after_interrupt_is_bit_identical(small_digits, tmp_path, arch):
    cfg = TrainConfig(epochs=3, batch_size=32, checkpoint_every=3, seed=5)

    def build():
        torch.manual_seed(0)
        if arch == "mlp":  # dropout: the RNG state must be restored too
            return tn.create_model("mlp", small_digits.in_shape, 10, hidden=(32,), dropout=0.3)
        return tiny_cnn(small_digits)

    straight = tn.train(build(), small_digits, cfg, out=tmp_path / "a").model

    def stop(event, info):
        if event == "step" and info["epoch"] == 1 and info["step"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tn.train(build(), small_digits, cfg, out=tmp_path / "b", callbacks=[stop])
    fresh = build()
    for p in fresh.parameters():  # resume must not depend on the new model's own weights
        nn.init.zeros_(p)
    resumed = tn.train(fresh, small_digits, cfg, out=tmp_path / "b", resume=True)
    a, b = straight.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert len(resumed.history) == 3


def test_resume_without_checkpoint_is_an_error(small_digits, tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint"):
        tn.train(tiny_cnn(small_digits), small_digits, TrainConfig(epochs=1), out=tmp_path, resume=True)


def test_nan_loss_stops_with_advice(small_digits):
    model = tiny_cnn(small_digits)
    with torch.no_grad():
        model[-1].weight.fill_(float("inf"))
    with pytest.raises(TrainingError, match="lower --train.lr"):
        tn.train(model, small_digits, TrainConfig(epochs=1))


def test_early_stopping(small_digits):
    result = tn.train(tiny_cnn(small_digits), small_digits,
                      TrainConfig(epochs=6, optimizer="sgd", lr=1e-12, momentum=0.0, early_stopping=1))
    assert result.metrics["early_stopped"] is True
    assert result.metrics["epochs_run"] == 2


def test_wrong_number_of_classes_is_named(small_digits):
    model = tn.create_model("cnn", small_digits.in_shape, 3, widths=(8, 8, 16), hidden=32)
    with pytest.raises(ModelError, match="num_classes=10"):
        tn.train(model, small_digits, TrainConfig(epochs=1))


def test_user_module_trains(small_digits):
    class Mine(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    result = tn.train(Mine(), small_digits, TrainConfig(epochs=2, lr=1e-2))
    assert result.metrics["test_accuracy"] > 0.7


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizers_reduce_the_loss(small_digits, optimizer):
    result = tn.train(tiny_cnn(small_digits), small_digits,
                      TrainConfig(epochs=2, optimizer=optimizer, lr=1e-2 if optimizer == "sgd" else 2e-3,
                                  weight_decay=1e-4, label_smoothing=0.1, grad_clip=1.0, schedule="cosine"))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_schedules():
    cfg = TrainConfig(lr=1.0, schedule="cosine")
    assert lr_at(0, 100, 10, cfg) == pytest.approx(1.0)
    assert lr_at(50, 100, 10, cfg) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, cfg) == pytest.approx(0.0, abs=1e-9)
    step = TrainConfig(lr=1.0, schedule="step", step_size=2, gamma=0.1)
    assert [lr_at(s, 100, 10, step) for s in (0, 19, 20, 40)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    one = TrainConfig(lr=1.0, schedule="onecycle")
    peak = max(lr_at(s, 100, 10, one) for s in range(100))
    assert peak == pytest.approx(1.0, rel=0.05) and lr_at(0, 100, 10, one) < 0.1 and lr_at(99, 100, 10, one) < 0.01
    warm = TrainConfig(lr=1.0, warmup_epochs=1)
    assert lr_at(0, 100, 10, warm) == pytest.approx(0.1) and lr_at(10, 100, 10, warm) == 1.0
    assert all(math.isfinite(lr_at(s, 7, 3, one)) for s in range(7))
