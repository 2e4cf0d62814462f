"""``compare``: interleaved A/B measurement reports the median of per-pair ratios."""

from __future__ import annotations

import pytest
import torch

import trimnet as tn
from trimnet.bench import compare
from trimnet.runtime import BackendUnavailableError


def mlp(hidden: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return tn.create_model("mlp", (64,), 4, hidden=(hidden, hidden)).eval()


def test_a_bigger_model_is_slower_and_the_same_model_is_even(quick):
    small, big = mlp(16), mlp(1024)  # ~2 k vs ~1.1 M multiply-adds per sample
    res = compare(small, big, torch.randn(8, 64), config=quick)
    pair = res.results[0]
    assert pair.batch == 8 and pair.pairs >= 5
    assert pair.ratio > 2 and pair.ratio_p25 <= pair.ratio <= pair.ratio_p75
    assert "slower" in res.table()
    same = compare(small, small, torch.randn(8, 64), config=quick).results[0]
    assert 0.5 < same.ratio < 2


def test_compare_result_json(quick):
    res = compare(mlp(16), None, torch.randn(2, 64), backend_a="torch", backend_b="torch", batch_sizes=[1, 2],
                  config=quick)
    data = res.to_dict()
    assert data["schema_version"] == 1 and data["kind"] == "trimnet.bench.compare"
    assert [r["batch"] for r in data["results"]] == [1, 2]
    assert {"ratio", "ratio_p25", "ratio_p75", "pairs", "a_latency_ms", "b_latency_ms"} <= set(data["results"][0])
    assert data["a"]["backend"] == "torch" and data["a"]["label"] == "mlp on torch"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_compare_needs_both_sides_runnable(quick):
    with pytest.raises(BackendUnavailableError, match="torch-cuda"):
        compare(mlp(16), backend_a="torch", backend_b="torch-cuda", example_inputs=torch.randn(1, 64), config=quick)
