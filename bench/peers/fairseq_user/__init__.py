"""fairseq --user-dir plugin: the Transformer-tiny of Wu et al. (ACL 2021) for Multi30k.

Stock fairseq 0.12 already registers a `transformer_tiny` (2+2 layers, width 64), so the
paper's shape is registered under its own name, `transformer_tiny_mmt`: 4 encoder and 4
decoder layers, embeddings 128, feed-forward 256, 4 heads, on fairseq's base architecture
(post-norm layers, sinusoidal positions, ReLU), which fills in every setting not named here.
"""

from fairseq.models import register_model_architecture
from fairseq.models.transformer import base_architecture

ARCH = "transformer_tiny_mmt"
SHAPE = {"encoder_layers": 4, "decoder_layers": 4, "encoder_embed_dim": 128, "decoder_embed_dim": 128,
         "encoder_ffn_embed_dim": 256, "decoder_ffn_embed_dim": 256,
         "encoder_attention_heads": 4, "decoder_attention_heads": 4}


@register_model_architecture("transformer", ARCH)
def transformer_tiny_mmt(args) -> None:
    """Set the paper's shape where the command line left a setting open, then fairseq's defaults."""
    for name, value in SHAPE.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    base_architecture(args)
