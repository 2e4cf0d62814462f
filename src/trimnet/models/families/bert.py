"""BERT: heads in ``attention.self``, FFN in ``intermediate``/``output``."""

from trimnet.models.families import register_family
from trimnet.models.families.hf import HFEncoderFamily

register_family(HFEncoderFamily(
    name="bert", model_types=("bert",), inputs="tokens", layers="bert.encoder.layer",
    q="attention.self.query", k="attention.self.key", v="attention.self.value", o="attention.output.dense",
    owner="attention.self", owner_heads="num_attention_heads",
    up="intermediate.dense", down="output.dense",
    classes=("BertForSequenceClassification",),
))
