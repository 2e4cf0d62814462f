"""Fakes with round numbers, so expected times can be worked out by hand in the tests."""

from __future__ import annotations

import pytest

from trimnet.hardware.calibration import Calibration, Series, describe_machine
from trimnet.hardware.catalog import parse_catalog
from trimnet.hardware.curves import ComputeCurve, PassCurve, Rate
from trimnet.profile import LayerProfile, Profile


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's ~/.cache/trimnet or extra catalogs."""
    monkeypatch.setenv("TRIMNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TRIMNET_CATALOG", raising=False)
    monkeypatch.setenv("TRIMNET_PREDICTION_RESULTS", str(tmp_path / "no-results.json"))


FAKE_CATALOG = {
    "version": 1,
    "devices": {
        # 10 TFLOP/s fp32, 20 bf16; 1000 GB/s; both at 50 %: 5e12 FLOP/s and 5e11 B/s usable
        "fake-gpu": {"name": "Fake GPU", "kind": "gpu", "peak_tflops": {"fp32": 10, "bf16": 20},
                     "memory_gb": 1, "bandwidth_gbs": 1000, "tdp_w": 100, "utilization": {"compute": 0.5, "memory": 0.5},
                     "overhead_us": 10, "call_overhead_us": 100, "source": "made up for tests"},
        # 1 TFLOP/s, 100 GB/s, both at 100 %, no overheads
        "fake-cpu": {"name": "Fake CPU", "kind": "cpu", "cpu": {"cores": 10, "clock_ghz": 2.5, "flop_per_cycle": {"fp32": 40}},
                     "bandwidth_gbs": 100, "tdp_w": 50, "utilization": {"compute": 1.0, "memory": 1.0},
                     "overhead_us": 0, "call_overhead_us": 0, "source": "made up for tests"},
    },
}


@pytest.fixture
def catalog():
    return parse_catalog(FAKE_CATALOG, "fake catalog")


def _profile(training: bool = False) -> Profile:
    conv = LayerProfile(name="0", type="Conv2d", output_shape=(1, 100, 10, 10), params=250_000, macs=1_000_000_000,
                        flops=2_000_000_000, weight_bytes=1_000_000, input_bytes=2_000_000, output_bytes=1_000_000)
    relu = LayerProfile(name="1", type="ReLU", output_shape=(1, 100, 10, 10), params=0, macs=0, flops=1_000_000,
                        weight_bytes=0, input_bytes=1_000_000, output_bytes=1_000_000)
    flat = LayerProfile(name="2", type="Flatten", output_shape=(1, 10_000), params=0, macs=0, flops=0,
                        weight_bytes=0, input_bytes=0, output_bytes=0)
    return Profile(model="fake", inputs=[(1, 3, 10, 10)], batch=1, training=training, tensors="fake",
                   macs=1_000_000_000, flops=2_001_000_000, params=250_000, trainable_params=250_000,
                   backward_flops=4_002_000_000 if training else 0, layers=[conv, relu, flat],
                   param_bytes={"float32": 1_000_000}, peak_activation_bytes=3_000_000)


@pytest.fixture
def fake_profile() -> Profile:
    """conv: 2 GFLOPs, 4 MB moved (1 MB weights); relu: 1 MFLOP, 2 MB; flatten: nothing. Batch 1."""
    return _profile()


@pytest.fixture
def fake_training_profile() -> Profile:
    return _profile(training=True)


def flat_series(backend: str, dtype: str = "fp32") -> Series:
    """1e11 FLOP/s at any shape (halves ~0), 1e10 B/s at any size, 5 us per kernel, 20 us per call, 2 us per layer."""
    curve = ComputeCurve(t0=5e-6, peak=1e11, half_m=1e-9, half_k=1e-9, half_n=1e-9)
    bw = PassCurve(t0=5e-6, rate=Rate((1.0, 1e9), (1e10, 1e10)))
    return Series(backend, dtype, call_s=20e-6, layer_s=2e-6, matmul=curve, conv=curve, passes={"elementwise": bw})


@pytest.fixture
def fake_calibration() -> Calibration:
    series = {s.key: s for s in (flat_series("torch"), flat_series("onnxruntime"), flat_series("openvino"))}
    return Calibration("cpu", describe_machine("cpu"), "2026-01-01T00:00:00+00:00", False, 1.0, series)
