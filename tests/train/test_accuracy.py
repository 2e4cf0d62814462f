"""The accuracy the README promises, on the bundled datasets."""

import pytest
import torch

import trimnet as tn


@pytest.mark.slow
def test_digits_cnn_reaches_99_percent(digits):
    torch.manual_seed(0)
    model = tn.create_model("cnn", digits.in_shape, digits.num_classes)
    result = tn.train(model, digits, tn.TrainConfig(epochs=15))
    assert result.metrics["test_accuracy"] >= 0.99


@pytest.mark.slow
def test_breast_cancer_mlp_reaches_95_percent():
    data = tn.load_dataset("breast_cancer")
    torch.manual_seed(0)
    model = tn.create_model("mlp", data.in_shape, data.num_classes)
    result = tn.train(model, data, tn.TrainConfig(epochs=30, batch_size=32))
    assert result.metrics["test_accuracy"] >= 0.95
