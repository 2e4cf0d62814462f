"""The roofline arithmetic, checked against numbers worked out by hand (see conftest for the fakes)."""

from __future__ import annotations

import pytest

from trimnet.errors import ConfigError
from trimnet.hardware import estimate, roofline
from trimnet.hardware.curves import ComputeCurve, Rate, fit_compute, fit_pass


def test_roofline_picks_the_larger_side():
    # 1 GFLOP at 1 TFLOP/s = 1 ms; 1 MB at 100 GB/s = 10 us: compute-bound, plus 5 us overhead
    assert roofline(1e9, 1e6, 1e12, 1e11, 5e-6) == (pytest.approx(1.005e-3), "compute")
    assert roofline(1e6, 1e9, 1e12, 1e11) == (pytest.approx(1e-2), "memory")


def test_catalog_device_by_hand(fake_profile, catalog):
    est = estimate(fake_profile, "fake-gpu", batch=1, catalog=catalog)
    conv, relu, flat = est.layers
    # conv: 2e9 FLOPs / (10e12 x 0.5) = 400 us; 4e6 B / (1e12 x 0.5) = 8 us; + 10 us per layer
    assert conv.compute_s == pytest.approx(400e-6) and conv.memory_s == pytest.approx(8e-6)
    assert conv.bound == "compute" and conv.time_s == pytest.approx(410e-6)
    assert relu.fused and relu.time_s == 0 and relu.bound == "fused"  # folded into the conv
    assert flat.time_s == 0
    assert est.latency_s == pytest.approx(510e-6)  # + 100 us per call
    assert est.throughput == pytest.approx(1 / 510e-6)
    assert est.utilization == pytest.approx(2.001e9 / 510e-6 / 10e12)
    assert est.assumptions["compute_utilization"] == 0.5 and est.assumptions["precision"] == "fp32"
    assert est.bound == "compute"


def test_eager_runtime_runs_every_layer(fake_profile, catalog):
    est = estimate(fake_profile, "fake-gpu", catalog=catalog, runtime="eager")
    relu = est.layers[1]
    # relu: 1e6 FLOPs / 5e12 = 0.2 us; 2e6 B / 5e11 = 4 us: memory-bound; + 10 us
    assert relu.bound == "memory" and relu.time_s == pytest.approx(14e-6)
    assert est.latency_s == pytest.approx(524e-6)


def test_batch_scales_work_but_not_weights(fake_profile, catalog):
    est = estimate(fake_profile, "fake-gpu", batch=4, catalog=catalog)
    conv = est.layers[0]
    assert conv.flops == 8e9 and conv.bytes == 1e6 + 4 * 3e6  # weights once, activations x4
    assert est.latency_s == pytest.approx(1600e-6 + 10e-6 + 100e-6)
    assert est.throughput == pytest.approx(4 / 1710e-6)


def test_precision_changes_peak_and_bytes(fake_profile, catalog):
    est = estimate(fake_profile, "fake-gpu", precision="bf16", catalog=catalog)
    assert est.layers[0].bytes == 2e6  # half of fp32
    assert est.latency_s == pytest.approx(200e-6 + 10e-6 + 100e-6)
    with pytest.raises(ConfigError, match="no published int8 figure; it has: fp32, bf16"):
        estimate(fake_profile, "fake-gpu", precision="int8", catalog=catalog)


def test_utilization_override_and_memory_fit(fake_profile, catalog):
    est = estimate(fake_profile, "fake-gpu", catalog=catalog, utilization=(1.0, 1.0))
    assert est.layers[0].compute_s == pytest.approx(200e-6)
    assert est.memory["total_bytes"] == 4e6 and est.memory["fits"] is True
    big = estimate(fake_profile, "fake-gpu", batch=1000, catalog=catalog)
    assert big.memory["activation_bytes"] == 3e9 and big.memory["fits"] is False  # 1 GB device
    assert estimate(fake_profile, "fake-cpu", catalog=catalog).memory["fits"] is None  # size not in catalog


def test_cpu_entry_peak_is_cores_clock_flop_per_cycle(fake_profile, catalog):
    assert catalog["fake-cpu"].peak("fp32") == 10 * 2.5e9 * 40
    est = estimate(fake_profile, "fake-cpu", catalog=catalog)
    assert est.latency_s == pytest.approx(2e-3)  # 2 GFLOP at 1 TFLOP/s, no overheads


def test_local_device_from_calibration(fake_profile, fake_calibration):
    # flat curves: 1e11 FLOP/s, 1e10 B/s, 5 us per kernel, 2 us per layer, 20 us per call
    est = estimate(fake_profile, "local", calibration=fake_calibration, backend="torch")
    conv, relu, flat = est.layers
    assert conv.time_s == pytest.approx(20e-3 + 7e-6)  # 2e9 / 1e11, + 5 + 2 us
    assert relu.bound == "memory" and relu.time_s == pytest.approx(200e-6 + 7e-6)  # 2e6 B / 1e10
    assert flat.time_s == pytest.approx(2e-6)  # a module call, no kernel
    assert est.latency_s == pytest.approx(20.007e-3 + 0.207e-3 + 2e-6 + 20e-6)
    assert est.assumptions["source"] == "calibration" and est.backend == "torch"


def test_graph_runtimes_fuse_what_they_fuse(fake_profile, fake_calibration):
    ort = estimate(fake_profile, "local", calibration=fake_calibration, backend="onnxruntime")
    assert [layer.fused for layer in ort.layers] == [False, True, True]
    # a graph runtime's convolution is timed as a chain's slope, which holds its node's dispatch: no layer_s
    assert ort.latency_s == pytest.approx(20.005e-3 + 20e-6)
    with pytest.raises(ConfigError, match="no calibration for openvino/bf16"):
        estimate(fake_profile, "local", calibration=fake_calibration, backend="openvino:precision=bf16")


def test_bad_device_lists_valid_ones(fake_profile, catalog):
    with pytest.raises(ConfigError, match=r"unknown device 'h999'; choose one of: local, fake-cpu, fake-gpu"):
        estimate(fake_profile, "h999", catalog=catalog)
    with pytest.raises(ConfigError, match="choose one of: local, a100-40gb, a100-80gb"):
        estimate(fake_profile, "h999")  # the bundled catalog


def test_fits_recover_known_curves():
    bw = Rate((1e3, 1e9), (1e11, 1e11))
    truth = ComputeCurve(t0=4e-6, peak=2e11, half_m=4.0, half_k=16.0, half_n=8.0)
    shapes = [(m, k, n) for m in (1, 16, 256) for k in (9, 64, 512) for n in (16, 256)]
    flops = [2.0 * m * k * n for m, k, n in shapes]
    seconds = [truth.t0 + f / truth.rate(*s) for f, s in zip(flops, shapes)]
    fit = fit_compute(shapes, flops, [0.0] * len(shapes), seconds, bw)
    for f, s, t in zip(flops, shapes, seconds):
        assert fit.t0 + f / fit.rate(*s) == pytest.approx(t, rel=0.15)
    ew = fit_pass([1e4, 1e6, 1e8], [1e-6 + 1e4 / 1e11, 1e-6 + 1e6 / 5e10, 1e-6 + 1e8 / 2e10])
    assert ew.rate(1e8) == pytest.approx(2e10, rel=0.02) and ew.rate(1e6) == pytest.approx(5e10, rel=0.05)
    assert ew.time(1e6) == pytest.approx(1e-6 + 1e6 / 5e10, rel=0.02)


def test_layer_roles_from_the_profile():
    from trimnet.hardware.roofline import role_of
    from trimnet.profile import LayerProfile

    def conv(cin, cout, k, groups, hw_in, hw_out):
        return LayerProfile("c", "Conv2d", (1, cout, hw_out, hw_out), 0, cout * hw_out**2 * cin // groups * k * k, 0,
                            0, 4 * cin * hw_in**2, 4 * cout * hw_out**2)

    assert role_of(conv(32, 32, 3, 32, 16, 16)) == "dwconv"  # depthwise 3x3
    assert role_of(conv(96, 96, 3, 96, 28, 14)) == "dwconv"  # depthwise, stride 2
    assert role_of(conv(32, 16, 1, 1, 16, 16)) == "conv"  # pointwise: a short reduction, but not a kernel area
    assert role_of(conv(1, 64, 3, 1, 8, 8)) == "conv"  # a 1-channel first layer: k = 9, input much smaller
    relu = LayerProfile("r", "ReLU", (1, 8), 0, 0, 8, 0, 32, 32)
    pool = LayerProfile("p", "AdaptiveAvgPool2d", (1, 8, 1, 1), 0, 0, 8, 0, 32, 32)
    assert role_of(relu) == "simple_activation" and role_of(pool) == "elementwise"
