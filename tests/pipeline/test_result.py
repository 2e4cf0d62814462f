"""OptimizeResult hands back what ships; the never-slower check keeps the original when the winner loses."""

import numpy as np
import pytest
import torch
from torch import nn

import trimnet as tn
from trimnet.optimize.final import confirm
from trimnet.optimize.quantize import QuantizeConfig, quantize
from trimnet.optimize.result import OptimizeResult
from trimnet.optimize.search import Candidate


def _mlp(hidden: int, data) -> nn.Module:
    torch.manual_seed(0)
    model = tn.create_model("mlp", data.in_shape, data.num_classes, hidden=[hidden])
    tn.train(model, data, tn.TrainConfig(epochs=3, batch_size=64))
    return model.eval()


def _result(winner_model, original_model, data, *, precision="fp32", quantized=None) -> OptimizeResult:
    orig = Candidate(name="original", description="original, fp32 on onnxruntime", structure="original",
                     precision="fp32", backend="onnxruntime", val_accuracy=0.9, latency_ms=1.0, original=True)
    best = Candidate(name="w", description=f"winner, {precision} on onnxruntime", structure="w",
                     precision=precision, backend="onnxruntime", val_accuracy=0.9, latency_ms=0.5, winner=True)
    return OptimizeResult(model=winner_model, best=best, original=orig, candidates=[orig, best],
                          baseline_val_accuracy=0.9, test_accuracy=0.9, original_test_accuracy=0.91,
                          quantized=quantized, threads=1, original_model=original_model,
                          source={"in_shape": tuple(data.in_shape), "class_names": data.class_names,
                                  "normalization": data.normalization})


def test_an_int8_winner_ships_its_int8_file(small_digits, tmp_path):
    model = _mlp(64, small_digits)
    q = quantize(model, small_digits, QuantizeConfig(precision="int8", backend="onnxruntime", keep_slower=True,
                                                     batch_sizes=(1,), bench_time_s=0.05, threads=1))
    if q.kept != "int8":
        pytest.skip(f"onnxruntime ran fp32 here: {q.reason}")
    opt = _result(q.fp32_model, model, small_digits, precision="int8", quantized=q)
    assert opt.shipped is q and opt.model is not opt.shipped  # the fp32 module is not what ships
    written = tn.export(opt, tmp_path / "winner.onnx")  # the README's line does the right thing
    import onnx

    ops = {n.op_type for n in onnx.load(str(written)).graph.node}
    assert ops & {"QLinearMatMul", "MatMulInteger", "QuantizeLinear", "DequantizeLinear", "QLinearConv"}
    x = small_digits.x_test[:4].float()
    with opt.runner() as run:
        out = np.asarray(run.run(x.numpy()))
    assert out.shape == (4, small_digits.num_classes)
    assert (out.argmax(1) == model(x).argmax(1).numpy()).mean() >= 0.75
    with pytest.raises(tn.TrimnetError, match="model.onnx"):
        opt.export(tmp_path / "winner.xml")
    text = repr(opt)
    assert len(text) < 300 and "int8 on onnxruntime" in text and "speedup" in text


def test_a_winner_slower_than_the_original_is_not_handed_back(small_digits, tmp_path):
    small, big = _mlp(16, small_digits), _mlp(1024, small_digits)
    # the "winner" has 60x the original's MACs: the side-by-side check must catch it
    opt = _result(big, small, small_digits)
    info = confirm(opt, seconds=0.5, threads=1)
    assert not info["confirmed"] and info["kept_original"] and info["winner_ms"] > info["original_ms"]
    assert opt.best.original and opt.model is small and opt.quantized is None
    assert "slower than the original" in next(c for c in opt.candidates if c.name == "w").verdict
    assert opt.test_accuracy == opt.original_test_accuracy
    path = tn.export(opt, tmp_path / "m.onnx")
    assert path.exists()


def test_a_faster_winner_is_confirmed(small_digits):
    small, big = _mlp(16, small_digits), _mlp(1024, small_digits)
    opt = _result(small, big, small_digits)
    info = confirm(opt, seconds=0.5, threads=1)
    assert info["confirmed"] and not opt.best.original and opt.speedup == pytest.approx(info["speedup"])
    assert opt.speedup > 1
