"""The bundled catalog (figures and sources) and the checks on user device files."""

from __future__ import annotations

import pytest

from trimnet.errors import ConfigError
from trimnet.hardware import PRECISIONS, get_device, load_catalog
from trimnet.hardware.catalog import parse_catalog

REQUIRED = ("h200", "h100-sxm", "a100-80gb", "l4", "t4", "jetson-orin-nano", "epyc-zen4-core")


def test_bundled_catalog_has_the_reference_devices_with_sources():
    catalog = load_catalog()
    assert set(REQUIRED) <= set(catalog)
    assert sum(d.kind == "cpu" for d in catalog.values()) >= 4
    for d in catalog.values():
        assert len(d.source) > 20 and ("http" in d.source or "datasheet" in d.source.lower()), d.key
        assert d.peak_flops and set(d.peak_flops) <= set(PRECISIONS)
        assert d.bandwidth > 0 and 0 < d.compute_utilization <= 1
        if d.kind == "cpu":
            assert d.assumption, f"{d.key} must state its clock and FLOP/cycle assumption"


def test_dense_figures_from_the_datasheets():
    c = load_catalog()
    assert c["h100-sxm"].peak("bf16") == 989.5e12  # 1979 with sparsity, halved
    assert c["h200"].peak("int8") == 1979e12 and c["h200"].bandwidth == 4.8e12 and c["h200"].memory_bytes == 141e9
    assert c["a100-80gb"].peak("fp32") == 19.5e12 and c["a100-80gb"].peak("tf32") == 156e12
    assert c["l4"].peak("fp16") == 121e12 and c["l4"].tdp_w == 72
    assert c["t4"].peak("fp16") == 65e12 and "bf16" not in c["t4"].peak_flops
    assert c["jetson-orin-nano"].peak("int8") == 20e12
    # one Zen 4 core: 32 FP32 FLOP/cycle (2 x 256-bit FMA) x 3.7 GHz
    assert c["epyc-zen4-core"].peak("fp32") == pytest.approx(32 * 3.7e9)


def _doc(**entry):
    base = {"name": "X", "kind": "gpu", "peak_tflops": {"fp32": 1}, "bandwidth_gbs": 100, "source": "my datasheet"}
    return {"version": 1, "devices": {"mine": {**base, **entry}}}


@pytest.mark.parametrize("entry,message", [
    ({"source": ""}, "needs a 'source:'"),
    ({"peak_tflops": {"fp64": 1}}, "unknown precision 'fp64'"),
    ({"bandwidth_gbs": -1}, "bandwidth_gbs must be a positive number"),
    ({"kind": "fpga"}, "kind must be one of"),
    ({"clock": 3}, r"unknown field\(s\) clock"),
    ({"utilization": {"compute": 1.5}}, r"utilization.compute must be in \(0, 1\]"),
    ({"cpu": {"cores": 4, "clock_ghz": 3, "flop_per_cycle": {"fp32": 32}}}, "exactly one of 'peak_tflops:' or 'cpu:'"),
])
def test_bad_entries_name_the_device_and_key(entry, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_catalog(_doc(**entry), "my.yaml")
    assert "my.yaml: device 'mine'" in str(info.value)


def test_user_file_adds_and_overrides(tmp_path, monkeypatch):
    f = tmp_path / "my.yaml"
    f.write_text("devices:\n  edge-box:\n    kind: accelerator\n    peak_tflops: {int8: 26}\n"
                 "    bandwidth_gbs: 51.2\n    source: vendor sheet v2\n"
                 "  t4:\n    kind: gpu\n    peak_tflops: {fp32: 9}\n    bandwidth_gbs: 320\n    source: re-measured\n")
    c = load_catalog(f)
    assert c["edge-box"].peak("int8") == 26e12 and c["edge-box"].origin == str(f)
    assert c["t4"].peak("fp32") == 9e12 and c["t4"].compute_utilization == 0.5  # gpu defaults still apply
    monkeypatch.setenv("TRIMNET_CATALOG", str(f))
    assert "edge-box" in load_catalog()


def test_unreadable_user_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalog(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="non-empty 'devices:' mapping"):
        load_catalog(bad)


def test_get_device_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        get_device("h1000")
    assert "unknown device 'h1000'" in str(info.value) and "h100-sxm" in str(info.value) and "local" in str(info.value)
