"""Calibration on a tiny budget, the saved profile, and refusing a profile from another machine."""

from __future__ import annotations

import json

import pytest
import torch

from trimnet.errors import ConfigError
from trimnet.hardware import calibrate, estimate, load_calibration
from trimnet.hardware.calibration import profile_path


@pytest.fixture(scope="module")
def quick_torch_calibration(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "local.json"
    return calibrate(quick=True, backends=["torch"], dtypes=["fp32"], point_seconds=0.002, path=path), path


def test_quick_calibration_measures_kernels_and_overheads(quick_torch_calibration):
    cal, path = quick_torch_calibration
    assert set(cal.series) == {"torch/fp32"}
    s = cal.get("torch", "fp32")
    assert s.call_s >= 0 and s.layer_s >= 0 and s.matmul.peak > 1e8 and s.conv.peak > 1e8
    assert 1e8 < s.bandwidth.largest < 1e13  # bytes/s: somewhere between 0.1 GB/s and 10 TB/s
    kinds = {p["op"] for p in cal.points}
    assert kinds == {"matmul", "conv", "elementwise", "norm", "pool", "add", "gelu", "layernorm", "dwconv", "attention"}
    assert set(s.passes) == kinds - {"matmul", "conv"}
    assert {"cpu", "threads", "torch", "usable_cores"} <= set(cal.machine)
    saved = json.loads(path.read_text())
    assert saved["kind"] == "trimnet.hardware.calibration" and saved["quick"] is True


def test_saved_profile_drives_local_estimates(quick_torch_calibration, fake_profile):
    cal, path = quick_torch_calibration
    loaded = load_calibration(path=path)
    est = estimate(fake_profile, "local", calibration=loaded)
    assert est.latency_s > 0 and est.backend == "torch" and est.assumptions["threads"] == cal.machine["threads"]


def test_stale_profile_is_refused(quick_torch_calibration, tmp_path):
    _, path = quick_torch_calibration
    data = json.loads(path.read_text())
    data["machine"]["cpu"] = "Some Other CPU"
    stale = tmp_path / "local.json"
    stale.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="different machine.*Some Other CPU.*calibrate` again"):
        load_calibration(path=stale)


def test_missing_profile_says_how_to_make_one():
    with pytest.raises(ConfigError, match="not calibrated yet.*trimnet hardware calibrate"):
        load_calibration()
    assert profile_path().parent.name == "cache"  # $TRIMNET_CACHE, set by conftest


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_refused_cleanly_without_a_gpu():
    with pytest.raises(ConfigError, match="no CUDA device"):
        calibrate(device="cuda", save=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_calibration(tmp_path):
    cal = calibrate(quick=True, device="cuda", point_seconds=0.005, path=tmp_path / "local-cuda.json")
    assert "torch-cuda/fp32" in cal.series and cal.machine["gpu"]


def test_bad_calibration_options_are_refused():
    with pytest.raises(ConfigError, match="threads=1"):
        calibrate(clock="cpu", threads=2, save=False)
    with pytest.raises(ConfigError, match="cannot calibrate backend"):
        calibrate(backends=["tensorrt"], save=False)
    with pytest.raises(ConfigError, match="cannot calibrate dtype"):
        calibrate(dtypes=["fp8"], save=False)
