"""Export a Transformer checkpoint as a Hugging Face MarianMTModel with its MarianTokenizer.

MarianMTModel (transformers/models/marian) is a post-norm Transformer without final LayerNorms,
token embeddings scaled by sqrt(d_model), fixed sinusoids with sin in the first half of the
channels and cos in the second, one embedding shared by encoder, decoder and output, and a
bias on the logits (final_logits_bias). A seq2seq model with model.norm: post,
model.position_layout: split, model.share_embeddings: true (one joint vocabulary) and sinusoidal
positions is exactly that network; anything else is refused rather than approximated.

MarianTokenizer segments with source.spm and target.spm (our joint SentencePiece model twice)
and maps pieces to ids with vocab.json, written here as piece -> our id, so ids agree one to one.
Decoding starts from our BOS (decoder_start_token_id), where Marian's own models start from pad.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seq2seq.checkpoint import read_model
from seq2seq.config import Config
from seq2seq.errors import UserError
from seq2seq.model.transformer import MultiHeadAttention, Sublayer, Transformer
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocab

SPECIAL_PIECES = {PAD_ID: "<pad>", UNK_ID: "<unk>", BOS_ID: "<s>", EOS_ID: "</s>"}  # MarianTokenizer's defaults


def import_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError('Hugging Face transformers is not installed: pip install -e ".[huggingface]"') from None
    return transformers


def check_compatible(config: Config, model: object, src_vocab: Vocab, tgt_vocab: Vocab, name: str) -> None:
    """One clear line for the first thing MarianMTModel cannot express."""
    m = config.model
    if not isinstance(model, Transformer):
        raise UserError(f"{name}: an RNN model; MarianMTModel is a Transformer (model.type: transformer)")
    needs = [
        (m.norm == "post", "model.norm: post (MarianMTModel normalises after each residual; this model is pre-norm)"),
        (m.positions == "sinusoidal", "model.positions: sinusoidal (MarianMTModel has no learned positions)"),
        (m.position_layout == "split", "model.position_layout: split (Marian puts sin in the first half of the "
                                       "channels, cos in the second)"),
        (m.share_embeddings, "vocab.joint: true, model.tie_embeddings: true and model.share_embeddings: true "
                             "(MarianMTModel shares one embedding across source, target and output)"),
        (src_vocab.model_proto == tgt_vocab.model_proto, "vocab.joint: true (one SentencePiece model for both sides)"),
    ]
    for ok, setting in needs:
        if not ok:
            raise UserError(f"{name}: cannot be expressed as a MarianMTModel; train it with {setting}")
    pieces = tgt_vocab.pieces(list(SPECIAL_PIECES))
    if pieces != list(SPECIAL_PIECES.values()):
        raise UserError(f"{name}: special pieces {pieces}; MarianTokenizer needs {list(SPECIAL_PIECES.values())}")


def _attention(prefix: str, attention: MultiHeadAttention) -> dict[str, torch.Tensor]:
    parts = {"q_proj": attention.query, "k_proj": attention.key, "v_proj": attention.value,
             "out_proj": attention.out}
    return {f"{prefix}.{hf}.{kind}": getattr(linear, kind) for hf, linear in parts.items()
            for kind in ("weight", "bias")}


def _norm(prefix: str, sublayer: Sublayer) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": sublayer.norm.weight, f"{prefix}.bias": sublayer.norm.bias}


def _feed_forward(prefix: str, layer) -> dict[str, torch.Tensor]:
    ff = layer.feed_forward
    return {f"{prefix}.fc1.weight": ff.inner.weight, f"{prefix}.fc1.bias": ff.inner.bias,
            f"{prefix}.fc2.weight": ff.outer.weight, f"{prefix}.fc2.bias": ff.outer.bias,
            **_norm(f"{prefix}.final_layer_norm", layer.feed_forward_residual)}


def marian_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our weights under MarianMTModel's names (the tied embeddings and sinusoid tables excluded)."""
    state = {"model.shared.weight": model.tgt_embedder.tokens.weight,
             "final_logits_bias": model.output.bias.unsqueeze(0)}
    for i, layer in enumerate(model.encoder_layers):
        prefix = f"model.encoder.layers.{i}"
        state |= _attention(f"{prefix}.self_attn", layer.attention)
        state |= _norm(f"{prefix}.self_attn_layer_norm", layer.attention_residual)
        state |= _feed_forward(prefix, layer)
    for i, layer in enumerate(model.decoder_layers):
        prefix = f"model.decoder.layers.{i}"
        state |= _attention(f"{prefix}.self_attn", layer.self_attention)
        state |= _norm(f"{prefix}.self_attn_layer_norm", layer.self_residual)
        state |= _attention(f"{prefix}.encoder_attn", layer.cross_attention)
        state |= _norm(f"{prefix}.encoder_attn_layer_norm", layer.cross_residual)
        state |= _feed_forward(prefix, layer)
    return {name: tensor.detach().float().cpu() for name, tensor in state.items()}


def marian_config(config: Config, vocab_size: int):
    m = config.model
    return import_transformers().MarianConfig(
        vocab_size=vocab_size, decoder_vocab_size=vocab_size, d_model=m.d_model,
        encoder_layers=m.encoder_layers, decoder_layers=m.decoder_layers,
        encoder_attention_heads=m.heads, decoder_attention_heads=m.heads,
        encoder_ffn_dim=m.ff_size, decoder_ffn_dim=m.ff_size, activation_function="relu",
        max_position_embeddings=m.max_positions, scale_embedding=True,
        dropout=m.dropout, attention_dropout=m.attention_dropout, activation_dropout=m.activation_dropout,
        # search settings live in generation_config alone (MarianConfig's own default would force EOS = 0)
        pad_token_id=PAD_ID, eos_token_id=EOS_ID, forced_eos_token_id=None, decoder_start_token_id=BOS_ID,
        share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
    )


def generation_config(config: Config):
    """Greedy search under our constraints: never PAD or BOS, no EOS before min_len, the n-gram block."""
    d = config.decoding
    return import_transformers().GenerationConfig(
        decoder_start_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, forced_eos_token_id=EOS_ID,
        bad_words_ids=[[PAD_ID], [BOS_ID]], min_new_tokens=d.min_len, no_repeat_ngram_size=d.no_repeat_ngram,
        max_length=min(d.max_len + 2, config.model.max_positions), num_beams=1, do_sample=False,
    )


def export_huggingface(checkpoint: Path, output: Path) -> None:
    config, model, src_vocab, tgt_vocab = read_model(checkpoint)
    check_compatible(config, model, src_vocab, tgt_vocab, str(checkpoint))
    if output.exists() and any(output.iterdir()):
        raise UserError(f"{output}: already exists and is not empty; choose a new folder")
    transformers = import_transformers()
    marian = transformers.MarianMTModel(marian_config(config, len(tgt_vocab))).eval()
    weights = marian_state_dict(model)
    missing, unexpected = marian.load_state_dict(weights, strict=False)
    left = [name for name in missing if "embed_positions" not in name and "embed_tokens" not in name
            and name != "lm_head.weight"]
    if left or unexpected:
        raise RuntimeError(f"MarianMTModel layout changed: missing {left}, unexpected {unexpected}")
    marian.generation_config = generation_config(config)
    output.mkdir(parents=True, exist_ok=True)
    marian.save_pretrained(output)
    for name in ("source.spm", "target.spm"):
        (output / name).write_bytes(tgt_vocab.model_proto)
    vocab = {piece: index for index, piece in enumerate(tgt_vocab.pieces(list(range(len(tgt_vocab)))))}
    (output / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tokenizer = transformers.MarianTokenizer(str(output / "source.spm"), str(output / "target.spm"),
                                             str(output / "vocab.json"), model_max_length=config.model.max_positions)
    tokenizer.save_pretrained(output)
