"""Tests for seq2seq.quantization: which layers turn int8, agreement with the float model, the CPU-only rule."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from seq2seq.config import DecodingConfig, ModelConfig
from seq2seq.data.batching import pad_sources
from seq2seq.errors import UserError
from seq2seq.evaluation import score
from seq2seq.model.build import build_model
from seq2seq.model.interface import EncoderDecoder
from seq2seq.quantization import quantize_model, quantized_device
from seq2seq.search import search
from seq2seq.translator import Translator

VOCAB = 50
# The briefly trained tiny model reverses words; int8 may flip a few near-tied choices, no more
MIN_AGREEMENT_BLEU = 85.0
MAX_TASK_BLEU_LOSS = 3.0


def linear_names(model: nn.Module) -> set[str]:
    return {name for name, module in model.named_modules() if type(module) is nn.Linear}


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def float_translator(tiny_checkpoint: Path) -> Translator:
    return Translator.from_checkpoint(tiny_checkpoint, device="cpu", method="greedy")


@pytest.fixture(scope="module")
def int8_translator(tiny_checkpoint: Path) -> Translator:
    return Translator.from_checkpoint(tiny_checkpoint, device="cpu", quantize=True, method="greedy")


def test_every_linear_becomes_int8_with_per_row_scales(float_translator: Translator,
                                                       int8_translator: Translator) -> None:
    names = linear_names(float_translator.model)
    assert {"decoder.output", "decoder.embedding_to_gates", "decoder.attention.query_layer"} <= names
    modules = dict(int8_translator.model.named_modules())
    for name in names:
        assert type(modules[name]) is DynamicLinear, name
        weight = modules[name].weight()
        assert weight.dtype == torch.qint8 and weight.qscheme() == torch.per_channel_affine, name
        assert weight.q_per_channel_scales().numel() == modules[name].out_features, name
        assert not weight.q_per_channel_zero_points().any(), name  # symmetric: stored as affine with zero 0
    assert not linear_names(int8_translator.model)
    assert type(int8_translator.model.encoder.rnn) is nn.GRU  # kept float: see the module docstring
    assert int8_translator.device == torch.device("cpu")


def test_quantizing_leaves_the_float_model_alone() -> None:
    model = build_model(ModelConfig(emb_size=16, encoder_hidden=16, decoder_hidden=16), VOCAB, VOCAB).eval()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    quantized = quantize_model(model)
    assert quantized is not model and linear_names(model) and not linear_names(quantized)
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_one_output_per_input_that_mostly_matches_float(float_translator: Translator, int8_translator: Translator,
                                                        reversal_data: Path) -> None:
    texts = read_lines(reversal_data / "test.src")
    texts[5:5] = ["", "   "]
    float_texts = [nbest[0].text for nbest in float_translator.translate(texts)]
    int8_results = int8_translator.translate(texts)
    int8_texts = [nbest[0].text for nbest in int8_results]
    assert len(int8_results) == len(texts) and all(len(nbest) == 1 for nbest in int8_results)
    assert int8_texts[5:7] == ["", ""] and all(int8_texts[:5] + int8_texts[7:])
    assert score(int8_texts, float_texts).bleu >= MIN_AGREEMENT_BLEU


def test_task_bleu_stays_near_float_with_beam_search(float_translator: Translator, int8_translator: Translator,
                                                     reversal_data: Path) -> None:
    texts, references = read_lines(reversal_data / "test.src"), read_lines(reversal_data / "test.tgt")
    beam = DecodingConfig(method="beam", beam_size=4, n_best=2)
    bleu = {}
    for name, translator in (("float", float_translator), ("int8", int8_translator)):
        original, translator.decoding = translator.decoding, beam
        try:
            results = translator.translate(texts)
        finally:
            translator.decoding = original
        assert all(len(nbest) == 2 and nbest[0].score >= nbest[1].score for nbest in results)
        bleu[name] = score([nbest[0].text for nbest in results], references).bleu
    assert bleu["int8"] >= bleu["float"] - MAX_TASK_BLEU_LOSS, bleu


@pytest.mark.parametrize(("rnn", "attention", "layers", "tie"), [
    ("lstm", "luong_general", 2, False), ("gru", "luong_dot", 1, True), ("lstm", "none", 1, False),
    ("gru", "bahdanau", 2, True),
])
def test_every_architecture_quantizes_and_keeps_its_logits(rnn: str, attention: str, layers: int,
                                                           tie: bool) -> None:
    torch.manual_seed(0)
    config = ModelConfig(rnn=rnn, attention=attention, emb_size=64, encoder_hidden=32, decoder_hidden=64,
                         encoder_layers=layers, decoder_layers=layers, dropout=0.0, tie_embeddings=tie)
    model = build_model(config, VOCAB, VOCAB).eval()
    quantized = quantize_model(model)
    assert not linear_names(quantized)
    src, lengths = pad_sources([[5, 6, 7, 8, 2], [9, 10, 2]])
    tokens = torch.tensor([1, 1])

    def first_logits(network: EncoderDecoder) -> torch.Tensor:
        with torch.inference_mode():
            memory, state = network.encode(src, lengths)
            return network.step(tokens, state, memory)[0]  # (batch, vocab)

    cosine = nn.functional.cosine_similarity(first_logits(model), first_logits(quantized), dim=1)
    assert bool((cosine > 0.99).all()), cosine
    hypotheses = search(quantized, src, lengths, DecodingConfig(method="beam", beam_size=3, max_len=8))
    assert len(hypotheses) == 2 and all(len(nbest) == 1 and len(nbest[0].tokens) <= 8 for nbest in hypotheses)


def test_no_deprecation_notice_reaches_the_user() -> None:
    model = build_model(ModelConfig(emb_size=16, encoder_hidden=16, decoder_hidden=16), VOCAB, VOCAB)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize_model(model)
    assert not caught, [str(w.message) for w in caught]


def test_a_model_on_another_device_is_refused() -> None:
    model = build_model(ModelConfig(emb_size=16, encoder_hidden=16, decoder_hidden=16), VOCAB, VOCAB).to("meta")
    with pytest.raises(ValueError, match="CPU"):
        quantize_model(model)


@pytest.mark.parametrize("spec", ["auto", "cpu", "cpu:0"])
def test_auto_and_cpu_mean_the_cpu(spec: str) -> None:
    assert quantized_device(spec).type == "cpu"


@pytest.mark.parametrize("spec", ["cuda", "cuda:1", "mps"])
def test_an_accelerator_is_a_clear_error_even_without_one(spec: str) -> None:
    with pytest.raises(UserError, match=f"CPU only, but device '{spec}'"):
        quantized_device(spec)


def test_unknown_device_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown device 'tpu9'"):
        quantized_device("tpu9")


def test_the_device_is_checked_before_the_checkpoint_is_read(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="CPU only"):
        Translator.from_checkpoint(tmp_path / "missing.pt", device="cuda", quantize=True)
