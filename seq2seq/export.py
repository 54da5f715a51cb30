"""Export a Transformer checkpoint to CTranslate2, a C++ inference engine for Transformers.

The weights go through CTranslate2's own model-spec API, so the engine checks every shape.
The export folder holds CTranslate2's model.bin and vocabularies, both SentencePiece models
the checkpoint's config (seq2seq.yaml), so translate.py --engine ctranslate2 cleans,
encodes and decodes text exactly as the PyTorch path does, and export.json (where the model
came from: checkpoint format, package version, parameters, weight type) for the server's /model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import yaml

from seq2seq import __version__
from seq2seq.checkpoint import FORMAT_VERSION, read_model
from seq2seq.config import config_to_dict
from seq2seq.errors import UserError
from seq2seq.files import removed_if_unfinished
from seq2seq.model.build import count_parameters
from seq2seq.model.transformer import MultiHeadAttention, Transformer
from seq2seq.vocab import Vocab

QUANTIZATIONS = ("float32", "int8", "float16")
CONFIG_FILE = "seq2seq.yaml"
INFO_FILE = "export.json"


def import_ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise UserError('CTranslate2 is not installed: pip install -e ".[ctranslate2]"') from None
    return ctranslate2


def _numpy(tensor: torch.Tensor):
    return tensor.detach().float().cpu().numpy()


def _linear(spec, weight: torch.Tensor, bias: torch.Tensor) -> None:
    spec.weight, spec.bias = _numpy(weight), _numpy(bias)


def _norm(spec, norm: torch.nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _numpy(norm.weight), _numpy(norm.bias)


def _self_attention(spec, attention: MultiHeadAttention, norm: torch.nn.LayerNorm) -> None:
    """CTranslate2 fuses query, key and value into one projection."""
    parts = (attention.query, attention.key, attention.value)
    _linear(spec.linear[0], torch.cat([p.weight for p in parts]), torch.cat([p.bias for p in parts]))
    _linear(spec.linear[1], attention.out.weight, attention.out.bias)
    _norm(spec.layer_norm, norm)


def _cross_attention(spec, attention: MultiHeadAttention, norm: torch.nn.LayerNorm) -> None:
    """Query alone, then key and value fused, then the output projection."""
    _linear(spec.linear[0], attention.query.weight, attention.query.bias)
    _linear(spec.linear[1], torch.cat([attention.key.weight, attention.value.weight]),
            torch.cat([attention.key.bias, attention.value.bias]))
    _linear(spec.linear[2], attention.out.weight, attention.out.bias)
    _norm(spec.layer_norm, norm)


def _feed_forward(spec, layer) -> None:
    _linear(spec.linear_0, layer.feed_forward.inner.weight, layer.feed_forward.inner.bias)
    _linear(spec.linear_1, layer.feed_forward.outer.weight, layer.feed_forward.outer.bias)
    _norm(spec.layer_norm, layer.feed_forward_residual.norm)


def _positions(embedder) -> object:
    table = embedder.sinusoids if embedder.learned is None else embedder.learned.weight
    return _numpy(table)


def transformer_spec(model: Transformer, src_vocab: Vocab, tgt_vocab: Vocab):
    """The CTranslate2 TransformerSpec holding this model's weights."""
    specs = import_ctranslate2().specs
    config = model.config
    pre_norm = config.norm == "pre"
    # the heatmap: the head average of model.attention_layer, as the PyTorch model draws it
    spec = specs.TransformerSpec.from_config((config.encoder_layers, config.decoder_layers), config.heads,
                                             pre_norm=pre_norm, no_final_norm=not pre_norm,
                                             alignment_layer=config.attention_layer, alignment_heads=config.heads)
    encoder, decoder = spec.encoder, spec.decoder
    encoder.embeddings[0].weight = _numpy(model.src_embedder.tokens.weight)
    encoder.position_encodings.encodings = _positions(model.src_embedder)
    decoder.embeddings.weight = _numpy(model.tgt_embedder.tokens.weight)
    decoder.position_encodings.encodings = _positions(model.tgt_embedder)
    for layer_spec, layer in zip(encoder.layer, model.encoder_layers):
        _self_attention(layer_spec.self_attention, layer.attention, layer.attention_residual.norm)
        _feed_forward(layer_spec.ffn, layer)
    for layer_spec, layer in zip(decoder.layer, model.decoder_layers):
        _self_attention(layer_spec.self_attention, layer.self_attention, layer.self_residual.norm)
        _cross_attention(layer_spec.attention, layer.cross_attention, layer.cross_residual.norm)
        _feed_forward(layer_spec.ffn, layer)
    if pre_norm:
        _norm(encoder.layer_norm, model.encoder_norm)
        _norm(decoder.layer_norm, model.decoder_norm)
    _linear(decoder.projection, model.output.weight, model.output.bias)
    spec.register_source_vocabulary(src_vocab.pieces(list(range(len(src_vocab)))))
    spec.register_target_vocabulary(tgt_vocab.pieces(list(range(len(tgt_vocab)))))
    return spec


def export_ctranslate2(checkpoint: Path, output: Path, quantization: str = "float32") -> None:
    if quantization not in QUANTIZATIONS:
        raise UserError(f"--quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    config, model, src_vocab, tgt_vocab = read_model(checkpoint)
    if not isinstance(model, Transformer):
        raise UserError(f"{checkpoint}: an RNN model; CTranslate2 runs Transformers only (model.type: transformer)")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"{output}: already exists and is not empty; choose a new folder")
    spec = transformer_spec(model.eval(), src_vocab, tgt_vocab)
    spec.validate()
    spec.optimize(quantization=quantization)
    # built beside the target and renamed into place: a failed export (a full disk) leaves no half folder behind
    # that would block the next try as "not empty"
    staging = output.parent / f".{output.name}.{os.getpid()}.tmp"
    with removed_if_unfinished(staging, "the half-written export was removed; free some space and export again"):
        staging.mkdir(parents=True)
        spec.save(str(staging))
        (staging / "src.spm.model").write_bytes(src_vocab.model_proto)
        (staging / "tgt.spm.model").write_bytes(tgt_vocab.model_proto)
        stored = yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)
        (staging / CONFIG_FILE).write_text(stored, encoding="utf-8")
        info = {"format_version": FORMAT_VERSION, "package_version": __version__, "checkpoint": checkpoint.name,
                "parameters": count_parameters(model), "quantization": quantization}
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(staging, output)  # over an empty folder too
