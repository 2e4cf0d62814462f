import pytest
import torch

import trimnet as tn


def _randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial batch-norm statistics, so a graph that drops or mangles them shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="session")
def make_tiny_cnn():
    """A factory of small digits-shaped CNNs (1x8x8 inputs) in eval mode, seeded."""

    def make(num_classes: int = 3, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        return _randomized(tn.create_model("cnn", (1, 8, 8), num_classes, widths=(4, 4, 8), hidden=8), seed)

    return make


@pytest.fixture
def tiny_cnn(make_tiny_cnn):
    return make_tiny_cnn()


@pytest.fixture
def example():
    return torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(1))
