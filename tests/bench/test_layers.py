"""Per-layer latency on onnxruntime, mapped back to the model's own layers with their widths."""

import torch

import trimnet as tn
from trimnet.bench.layers import layer_latency
from trimnet.report.architecture import group_latency, layers_with_widths


def test_per_layer_latency_names_the_models_layers_and_the_big_conv_costs_most():
    model = tn.create_model("cnn", (1, 8, 8), 10).eval()
    arch = layers_with_widths(model)
    assert [(a["type"], a["in"], a["out"]) for a in arch] == [("Conv2d", 1, 64), ("Conv2d", 64, 64),
                                                              ("Conv2d", 64, 128), ("Linear", 512, 256),
                                                              ("Linear", 256, 10)]
    rows = group_latency(model, layer_latency(model, torch.zeros(1, 1, 8, 8), runs=50))
    by = {r["layer"]: r["ms"] for r in rows}
    labels = [a["label"] for a in arch]
    assert set(labels) <= set(by)  # every conv and linear got kernel time of its own
    assert all(by[label] > 0 for label in labels)
    # 2.4 M MACs against 2.6 k: the 64->64 conv is the slowest layer, the classifier among the fastest
    assert by["3 Conv2d 64→64"] == max(by[label] for label in labels)
    assert by["3 Conv2d 64→64"] > 3 * by["14 Linear 256→10"]
