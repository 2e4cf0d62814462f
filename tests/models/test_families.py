"""Model families: the wrapper's contract, the family's sites, exact MACs against hand formulas."""

import pytest
import torch

import trimnet as tn
from trimnet.errors import ModelError
from trimnet.models.families import family_of, list_families, wrap

from .conftest import CLASSES, FFN, HEADS, HIDDEN, IMAGE, LAYERS, PATCH, SEQ, tiny_bert


def test_every_family_is_registered_with_plain_last():
    assert list_families() == ["bert", "distilbert", "vit", "plain"]


def test_wrapped_model_maps_one_tensor_to_logits(wrapped, family_name):
    x = wrapped.sample_inputs(3, torch.Generator().manual_seed(0))
    assert wrapped(x).shape == (3, CLASSES)
    fam = family_of(wrapped)
    assert fam.name == family_name
    assert [s.heads for s in fam.attention(wrapped)] == [HEADS] * LAYERS
    assert [s.neurons for s in fam.ffn(wrapped)] == [FFN] * LAYERS
    assert wrapped.in_shape == ((SEQ,) if family_name != "vit" else (3, IMAGE, IMAGE))


def test_text_wrapper_derives_the_attention_mask_from_padding():
    hf = tiny_bert().eval()
    model = wrap(hf, seq_len=SEQ).eval()
    ids = torch.randint(3, 50, (2, SEQ))
    ids[:, -5:] = 0  # BERT's pad id
    with torch.no_grad():
        ours = model(ids.float())
        masked = hf(input_ids=ids, attention_mask=(ids != 0).long()).logits
        unmasked = hf(input_ids=ids).logits
    torch.testing.assert_close(ours, masked)
    assert (ours - unmasked).abs().max() > 1e-5  # the mask changes the answer, so it is applied


def test_a_plain_module_is_the_plain_family_and_needs_no_wrapping():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    assert family_of(net).name == "plain"
    with pytest.raises(ModelError, match="pass a plain nn.Module"):
        wrap(net)


def test_a_transformers_model_without_a_classification_head_is_refused_with_the_fix():
    from transformers import BertConfig, BertModel

    with pytest.raises(ModelError, match="BertForSequenceClassification"):
        wrap(BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                  intermediate_size=64)))


def _encoder_macs(tokens: int) -> int:
    """q, k, v, o projections + QK^T and AV products + the two FFN layers, per block."""
    return LAYERS * (4 * tokens * HIDDEN * HIDDEN + 2 * tokens * tokens * HIDDEN + 2 * tokens * HIDDEN * FFN)


def test_profile_counts_exact_macs_of_each_family(wrapped, family_name):
    expected = {
        # BERT: encoder + pooler (one token, H x H) + classifier
        "bert": _encoder_macs(SEQ) + HIDDEN * HIDDEN + HIDDEN * CLASSES,
        # DistilBERT: encoder + pre-classifier (H x H) + classifier
        "distilbert": _encoder_macs(SEQ) + HIDDEN * HIDDEN + HIDDEN * CLASSES,
        # ViT: patch embedding conv + encoder over patches and the class token + classifier
        "vit": (IMAGE // PATCH) ** 2 * 3 * PATCH * PATCH * HIDDEN + _encoder_macs((IMAGE // PATCH) ** 2 + 1)
        + HIDDEN * CLASSES,
    }[family_name]
    prof = tn.profile(wrapped, wrapped.sample_inputs(1))
    assert prof.macs == expected
    assert prof.params == sum(p.numel() for p in wrapped.parameters())


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_a_raw_transformers_classifier_is_taken_by_prune_and_export(tmp_path):
    hf = tiny_bert().eval()
    ids = torch.randint(3, 50, (4, SEQ)).float()
    res = tn.prune(hf, ids, tn.PruneConfig(criterion="l2", ratio=0.5))
    assert res.model.in_shape == (SEQ,) and res.model(ids).shape == (4, CLASSES)
    assert res.record.macs[1] < res.record.macs[0]
    assert tn.export(hf, tmp_path / "bert.onnx", ids[:2]).parity.passed
