"""The CUDA path. Skipped with a reason where no CUDA device is present (CI has none)."""

import pytest
import torch

import trimnet as tn

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


def test_auto_device_picks_cuda_and_trains_in_bf16(small_digits):
    seen = []

    def watch(event, info):
        if event == "step":
            seen.append(info["loss"].device.type)

    model = tn.create_model("cnn", small_digits.in_shape, 10)
    result = tn.train(model, small_digits, tn.TrainConfig(epochs=2), callbacks=[watch])
    assert result.metrics["device"].startswith("cuda") and set(seen) == {"cuda"}
    assert result.metrics["test_accuracy"] > 0.8
    assert next(result.model.parameters()).device.type == "cpu"  # handed back on CPU, ready to save


def test_compiled_training_on_cuda(small_digits):
    model = tn.create_model("mlp", small_digits.in_shape, 10)
    result = tn.train(model, small_digits, tn.TrainConfig(epochs=2, compile=True))
    assert result.metrics["test_accuracy"] > 0.7
