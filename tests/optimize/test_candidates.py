"""Candidate keys: the labels in summary.json, the report and the cache are made from them and read back."""

import pytest

from trimnet.errors import ConfigError
from trimnet.optimize.candidates import Candidate, CandidateKey

ORIGINAL = CandidateKey()
L1 = CandidateKey("l1", 0.875)
APOZ_RETRY = CandidateKey("apoz", 0.75, retry_epochs=20)


@pytest.mark.parametrize("key, label, description", [
    (ORIGINAL, "original", "original"),
    (ORIGINAL.run_on("onnxruntime"), "original", "original, fp32 on onnxruntime"),
    (ORIGINAL.fused_on("fp32", "onnxruntime"), "original/fused/fp32@onnxruntime", "original, fused, fp32 on onnxruntime"),
    (L1, "l1-0.875", "l1 pruning 0.875"),
    (L1.run_on("torch"), "l1-0.875/torch", "l1 pruning 0.875"),
    (APOZ_RETRY.fused_on("int8", "openvino"), "apoz-0.75-ft20/fused/int8@openvino",
     "apoz pruning 0.75 (20 fine-tune epochs), fused, int8 on openvino"),
])
def test_labels_and_descriptions_are_the_published_ones(key, label, description):
    assert key.label == label and key.description == description
    assert CandidateKey.parse(label).label == label


def test_a_label_parses_back_to_its_key():
    key = APOZ_RETRY.fused_on("int8", "openvino")
    assert CandidateKey.parse(key.label) == key
    assert CandidateKey.parse("l1-1e-05-ft3").structure == "l1-1e-05-ft3"  # a ratio written with an exponent
    assert key.structure_only() == APOZ_RETRY and key.structure == "apoz-0.75-ft20"


def test_a_candidate_is_named_by_its_key():
    c = Candidate.of(L1.fused_on("bf16", "torch"), val_accuracy=0.9, latency_ms=1.0)
    assert (c.name, c.structure, c.precision, c.backend) == ("l1-0.875/fused/bf16@torch", "l1-0.875", "bf16", "torch")
    assert c.description == "l1 pruning 0.875, fused, bf16 on torch" and c.val_accuracy == 0.9


@pytest.mark.parametrize("label", ["", "l1", "l1-x/torch", "original/int8@torch", "l1-0.5/fused/int8"])
def test_what_is_not_a_label_is_refused(label):
    with pytest.raises(ConfigError, match="label"):
        CandidateKey.parse(label)


def test_keys_that_name_no_candidate_are_refused():
    with pytest.raises(ConfigError):
        CandidateKey("l1")  # a criterion without a ratio
    with pytest.raises(ConfigError):
        CandidateKey("l1", 0.5, precision="int8", backend="onnxruntime")  # lower precision on an unfused structure
