"""ViT: heads in ``attention`` (q/k/v/o_proj), FFN in ``mlp.fc1``/``mlp.fc2``; images in, logits out."""

from trimnet.models.families import register_family
from trimnet.models.families.hf import HFEncoderFamily

register_family(HFEncoderFamily(
    name="vit", model_types=("vit",), inputs="pixels", layers="vit.layers",
    q="attention.q_proj", k="attention.k_proj", v="attention.v_proj", o="attention.o_proj",
    owner="attention", owner_heads="num_attention_heads", up="mlp.fc1", down="mlp.fc2",
    classes=("ViTForImageClassification",),
))
