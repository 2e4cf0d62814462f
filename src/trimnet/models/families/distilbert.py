"""DistilBERT: heads in ``attention`` (``n_heads``), FFN in ``ffn.lin1``/``ffn.lin2`` (``hidden_dim``)."""

from trimnet.models.families import register_family
from trimnet.models.families.hf import HFEncoderFamily

register_family(HFEncoderFamily(
    name="distilbert", model_types=("distilbert",), inputs="tokens", layers="distilbert.transformer.layer",
    q="attention.q_lin", k="attention.k_lin", v="attention.v_lin", o="attention.out_lin",
    owner="attention", owner_heads="n_heads", up="ffn.lin1", down="ffn.lin2",
    heads_key="n_heads", ffn_key="hidden_dim", hidden_key="dim",
    classes=("DistilBertForSequenceClassification",),
))
