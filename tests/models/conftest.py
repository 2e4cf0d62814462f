import pytest
import torch

from trimnet.data.dataset import Dataset

SEQ, VOCAB, HIDDEN, HEADS, FFN, LAYERS, CLASSES = 16, 50, 32, 4, 64, 2, 3
IMAGE, PATCH = 16, 4


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=32, num_labels=CLASSES))


def tiny_distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    return DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN, max_position_embeddings=32,
        num_labels=CLASSES))


def tiny_vit():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    return ViTForImageClassification(ViTConfig(
        image_size=IMAGE, patch_size=PATCH, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, num_labels=CLASSES))


BUILDERS = {"bert": tiny_bert, "distilbert": tiny_distilbert, "vit": tiny_vit}


@pytest.fixture(params=sorted(BUILDERS))
def family_name(request):
    return request.param


@pytest.fixture
def wrapped(family_name):
    from trimnet.models.families import wrap

    return wrap(BUILDERS[family_name](), seq_len=SEQ).eval()


def token_dataset(n: int = 240, seed: int = 0) -> Dataset:
    """Token ids whose class is how many of the first four are in the lower half of the vocabulary,
    with the last three positions padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, VOCAB, (n, SEQ), generator=g)
    y = (x[:, :4] < VOCAB // 2).sum(1).clamp(max=CLASSES - 1)
    x[:, SEQ - 3:] = 0
    x = x.float()
    a, b = int(n * 0.7), int(n * 0.85)
    return Dataset(name="tokens", x_train=x[:a], y_train=y[:a], x_val=x[a:b], y_val=y[a:b], x_test=x[b:],
                   y_test=y[b:], class_names=[f"c{i}" for i in range(CLASSES)], kind="tokens", normalization=None)
