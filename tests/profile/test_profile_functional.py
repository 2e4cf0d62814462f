"""A model written with functional calls only counts the same as its nn.Module twin."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trimnet.profile import profile


class ModuleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.fc = nn.Linear(8 * 4 * 4, 16)
        self.ln = nn.LayerNorm(16)
        self.q = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16)

    def forward(self, x):
        y = self.pool(torch.relu(self.bn(self.conv(x))))
        y = y + self.conv2(y)
        y = self.ln(self.fc(y.flatten(1)))
        scores = torch.einsum("bi,bj->bij", self.q(y), self.k(y))
        return torch.softmax(scores, dim=-1).mean(dim=-1)


class FunctionalNet(nn.Module):
    """The same network with every weight a bare parameter and every layer a functional call."""

    def __init__(self, twin: ModuleNet):
        super().__init__()
        for name, p in twin.named_parameters():
            self.register_parameter(name.replace(".", "_"), nn.Parameter(p.detach().clone()))
        self.register_buffer("mean", twin.bn.running_mean.clone())
        self.register_buffer("var", twin.bn.running_var.clone())

    def forward(self, x):
        y = F.conv2d(x, self.conv_weight, self.conv_bias, padding=1)
        y = F.batch_norm(y, self.mean, self.var, self.bn_weight, self.bn_bias, training=self.training)
        y = F.max_pool2d(F.relu(y), 2)
        y = y + F.conv2d(y, self.conv2_weight, padding=1, groups=2)
        y = y.flatten(1) @ self.fc_weight.t() + self.fc_bias  # mm + add instead of addmm
        y = F.layer_norm(y, (16,), self.ln_weight, self.ln_bias)
        q = F.linear(y, self.q_weight, self.q_bias)
        k = F.linear(y, self.k_weight, self.k_bias)
        scores = q.unsqueeze(2) * k.unsqueeze(1)  # the outer product as an elementwise multiply...
        return F.softmax(scores, dim=-1).mean(dim=-1)


def test_functional_twin_gives_identical_numbers():
    torch.manual_seed(0)
    twin = ModuleNet()
    functional = FunctionalNet(twin)
    x = torch.randn(2, 3, 8, 8)
    a, b = profile(twin, x), profile(functional, x)
    # ...an outer product is a multiply per element, not a multiply-accumulate, both ways:
    # einsum("bi,bj->bij") becomes a broadcast mul, the same as the hand-written version
    assert (a.macs, a.flops, a.params) == (b.macs, b.flops, b.params)
    assert torch.allclose(twin.eval()(x), functional.eval()(x), atol=1e-5)
    assert [layer.name for layer in b.layers] == [""]  # all the work is the model's own
    assert len(a.layers) > 5


@pytest.mark.parametrize("fake", [True, False], ids=["fake", "real"])
def test_functional_twin_training(fake):
    torch.manual_seed(0)
    twin = ModuleNet()
    x = torch.randn(2, 3, 8, 8)
    a = profile(twin, x, training=True, fake=fake)
    b = profile(FunctionalNet(twin), x, training=True, fake=fake)
    assert (a.macs, a.flops) == (b.macs, b.flops)
    assert a.backward_macs == b.backward_macs > 0
    assert a.backward_flops == b.backward_flops
