"""Fine-tuning after pruning: the distillation loss, recovery of accuracy, iterative schedules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import trimnet as tn
from trimnet.errors import ConfigError
from trimnet.optimize.finetune import FinetuneConfig, distillation_loss

pytest.importorskip("torch_pruning")

from trimnet.optimize.prune import PruneConfig, prune  # noqa: E402


class Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.logits


def test_distillation_loss_mixes_soft_targets_and_hard_labels():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 4), torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 0])
    x = torch.zeros(5, 1)
    hard = distillation_loss(Fixed(teacher), temperature=3.0, alpha=0.0)
    assert torch.allclose(hard(student, y, x), F.cross_entropy(student, y))
    same = distillation_loss(Fixed(student), temperature=3.0, alpha=1.0)
    assert same(student, y, x).abs() < 1e-6
    soft = distillation_loss(Fixed(teacher), temperature=2.0, alpha=1.0)(student, y, x)
    expected = F.kl_div(F.log_softmax(student / 2, 1), F.softmax(teacher / 2, 1), reduction="batchmean") * 4
    assert torch.allclose(soft, expected)
    mixed = distillation_loss(Fixed(teacher), temperature=2.0, alpha=0.25)(student, y, x)
    assert torch.allclose(mixed, 0.25 * expected + 0.75 * F.cross_entropy(student, y))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"alpha": 1.5}, "finetune.alpha"), ({"temperature": 0.0}, "finetune.temperature"),
    ({"epochs": -1}, "finetune.epochs"), ({"optimizer": "lion"}, "optimizer"),
])
def test_bad_finetune_settings_are_config_errors(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        FinetuneConfig(**kwargs).validate()


@pytest.fixture(scope="module")
def trained(digits):
    torch.manual_seed(0)
    model = tn.create_model("cnn", digits.in_shape, digits.num_classes, widths=(16, 16, 32), hidden=32)
    tn.train(model, digits, tn.TrainConfig(epochs=3, lr=3e-3, progress=False))
    return model.eval()


def test_fine_tuning_with_distillation_recovers_what_pruning_cost(trained, digits):
    res = prune(trained, digits, PruneConfig(criterion="apoz", ratio=0.5, calibration_samples=256,
                                             finetune=FinetuneConfig(epochs=3)))
    acc = res.record.accuracy
    assert acc["after"] > acc["pruned"] + 0.2 and acc["after"] > acc["before"] - 0.05, acc
    assert res.record.history[0]["accuracy_finetuned"] == acc["after"]
    assert tn.evaluate(res.model, digits).accuracy == pytest.approx(acc["after"], abs=1e-6)
    assert not res.model.training and next(res.model.parameters()).device.type == "cpu"


def test_iterative_pruning_shares_out_the_epochs_and_reaches_the_ratio(trained, small_digits, monkeypatch):
    import importlib

    api = importlib.import_module("trimnet.optimize.prune.api")
    epochs = []
    real = api.finetune

    def spy(model, data, config, teacher, n, **kw):
        epochs.append(n)
        return real(model, data, config, teacher, n, **kw)

    monkeypatch.setattr(api, "finetune", spy)
    res = prune(trained, small_digits, PruneConfig(criterion="taylor", ratio=0.5, steps=3, round_to=4,
                                                   calibration_samples=128, finetune=FinetuneConfig(epochs=4)))
    assert epochs == [1, 1, 2]
    assert [round(h["share"], 3) for h in res.record.history] == [0.167, 0.333, 0.5]
    assert res.model[0].out_channels == 8 and res.model[12].out_features == 16
    assert [h["macs"] for h in res.record.history] == sorted((h["macs"] for h in res.record.history), reverse=True)
    assert all("accuracy_finetuned" in h for h in res.record.history)
    removed = res.record.layers["0"].removed
    assert len(removed) == 8 and len(set(removed)) == 8  # original indices, none twice across steps


def test_tensor_data_prunes_without_fine_tuning_and_says_so(trained, small_digits):
    res = prune(trained, small_digits.x_train[:64], PruneConfig(ratio=0.5))
    assert any("not fine-tuned" in n for n in res.record.notes) and res.record.accuracy == {}
