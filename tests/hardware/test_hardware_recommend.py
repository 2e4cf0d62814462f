"""Recommendations against targets, training time, and what estimates say about their own error."""

from __future__ import annotations

import json

import pytest

from trimnet.errors import ConfigError
from trimnet.hardware import estimate, predictor_error, recommend, train_time


def test_latency_target_picks_the_largest_batch_that_meets_it(fake_profile, catalog):
    rec = recommend(fake_profile, target_latency=1e-3, catalog=catalog, include_local=False)
    gpu, cpu = rec.candidates
    # fake-gpu: batch 1 510 us, batch 2 910 us (max(800, 14) + 10 + 100), batch 4 1710 us
    assert gpu.device == "fake-gpu" and gpu.meets and gpu.batch == 2
    assert gpu.latency_s == pytest.approx(910e-6) and gpu.headroom == pytest.approx(1e-3 / 910e-6)
    assert gpu.memory["fits"] is True and gpu.tdp_w == 100
    assert not cpu.meets and "2 ms at batch 1" in cpu.reason
    assert rec.message.startswith("1 of 2 devices meet latency <= 1 ms")


def test_throughput_target_picks_the_smallest_batch(fake_profile, catalog):
    rec = recommend(fake_profile, target_throughput=2000, catalog=catalog, include_local=False)
    best = rec.candidates[0]
    assert best.device == "fake-gpu" and best.batch == 2 and best.throughput == pytest.approx(2 / 910e-6)


def test_says_plainly_when_nothing_meets_the_target(fake_profile, catalog):
    rec = recommend(fake_profile, target_latency=1e-4, catalog=catalog, include_local=False)
    assert rec.met == [] and rec.message.startswith("No device meets latency <= 0.1 ms")
    assert "closest is fake-gpu" in rec.message
    with pytest.raises(ConfigError, match="give a target"):
        recommend(fake_profile, catalog=catalog)
    with pytest.raises(ConfigError, match="unknown device 'nope'"):
        recommend(fake_profile, target_latency=1e-3, devices=["nope"], catalog=catalog)


def test_train_time_from_total_flops(catalog):
    rows = train_time(total_flops=2e19, precision="bf16", catalog=catalog)  # "20 exaFLOPs of training"
    assert [r.device for r in rows] == ["fake-gpu"]  # fake-cpu has no bf16 figure
    assert rows[0].seconds == pytest.approx(2e19 / (20e12 * 0.5))
    assert rows[0].energy_kwh == pytest.approx(100 * rows[0].seconds / 3.6e6)
    fp32 = train_time(total_flops=2e19, catalog=catalog)
    assert [r.device for r in fp32] == ["fake-gpu", "fake-cpu"]  # fastest first
    assert fp32[1].seconds == pytest.approx(2e19 / 1e12)


def test_train_time_from_a_training_profile(fake_training_profile, fake_profile, catalog):
    rows = train_time(fake_training_profile, samples=1000, epochs=2, devices=["fake-gpu"], catalog=catalog)
    total = (2.001e9 + 4.002e9) * 1000 * 2
    assert rows[0].total_flops == total
    # achievable: the eager forward pass at batch 1, 2.001e9 FLOPs in 524 us
    assert rows[0].seconds == pytest.approx(total / (2.001e9 / 524e-6))
    with pytest.raises(ConfigError, match="training profile"):
        train_time(fake_profile, samples=10, catalog=catalog)
    with pytest.raises(ConfigError, match="give total_flops"):
        train_time(catalog=catalog)


def test_estimates_report_the_measured_error(fake_profile, catalog, tmp_path, monkeypatch):
    assert estimate(fake_profile, "fake-gpu", catalog=catalog).error["status"] == "unknown"
    results = tmp_path / "latency_prediction.json"
    results.write_text(json.dumps({"kind": "trimnet.hardware.latency_prediction", "created": "2026-01-01",
                                   "machine": {"cpu": "AMD EPYC", "threads": 2},
                                   "summary": {"configurations": 12, "within_10": 0.5, "within_20": 0.83,
                                               "median_abs_error": 0.1}}))
    monkeypatch.setenv("TRIMNET_PREDICTION_RESULTS", str(results))
    err = predictor_error()
    assert err["status"] == "measured" and err["within_20"] == 0.83 and err["configurations"] == 12
    est = estimate(fake_profile, "fake-gpu", catalog=catalog)
    assert est.error["within_20"] == 0.83 and "not measured here" in est.error["applies_to"]
