"""Translator: text in, text out, for a model in memory or a checkpoint file."""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from seq2seq.checkpoint import read_model
from seq2seq.config import DecodingConfig
from seq2seq.data.batching import pad_sources
from seq2seq.data.corpus import normalize_line
from seq2seq.model.interface import EncoderDecoder
from seq2seq.quantization import quantize_model, quantized_device
from seq2seq.runtime import select_device
from seq2seq.search import Hypothesis, hypotheses_per_sentence, search
from seq2seq.vocab import Vocab


@dataclass
class Translation:
    text: str
    score: float
    source_pieces: list[str]
    pieces: list[str]
    attention: torch.Tensor | None = None  # (len(pieces) + 1, len(source_pieces) + 1), EOS rows/columns last
    warning: str | None = None


def clean_input(text: str) -> str:
    """Printable, valid text: control characters become spaces, lone surrogates are replaced."""
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return normalize_line(text)


class Translator:
    def __init__(self, model: EncoderDecoder, src_vocab: Vocab, tgt_vocab: Vocab, decoding: DecodingConfig,
                 device: torch.device | None = None):
        self.device = device or next(model.parameters()).device
        self.model = model.to(self.device)
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab
        self.decoding = decoding

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "auto", quantize: bool = False, **decoding_overrides
    ) -> Translator:
        """quantize=True decodes with int8 Linear layers on the CPU (see seq2seq.quantization)."""
        target = quantized_device(device) if quantize else select_device(device)  # fail before the load
        config, model, src_vocab, tgt_vocab = read_model(path)
        if quantize:
            model = quantize_model(model)
        decoding = dataclasses.replace(config.decoding, **decoding_overrides)
        return cls(model, src_vocab, tgt_vocab, decoding, target)

    def translate(
        self, texts: list[str], record_attention: bool = False, progress: bool = False
    ) -> list[list[Translation]]:
        """The n-best translations of each text, in input order; empty input gives empty output."""
        limit = self.decoding.max_input_pieces
        cleaned = [clean_input(t) for t in texts]
        encoded = self.src_vocab.encode(cleaned)
        warnings = [
            f"input {i + 1} has {len(ids)} pieces; translated only its first {limit} (decoding.max_input_pieces)"
            if len(ids) > limit else None for i, ids in enumerate(encoded)
        ]
        encoded = [ids[:limit] for ids in encoded]
        n_best = hypotheses_per_sentence(self.decoding)
        results = [[Translation("", 0.0, [], []) for _ in range(n_best)] for _ in texts]
        todo = sorted((i for i, text in enumerate(cleaned) if text), key=lambda i: len(encoded[i]))
        batches = [todo[s:s + self.decoding.batch_size] for s in range(0, len(todo), self.decoding.batch_size)]
        for batch in tqdm(batches, desc="translating", unit="batch", disable=not progress, leave=False):
            hypotheses = self.search([encoded[i] for i in batch], record_attention)
            for index, nbest in zip(batch, hypotheses):
                source_pieces = self.src_vocab.pieces(encoded[index])
                texts_out = self.tgt_vocab.decode([h.tokens for h in nbest])
                results[index] = [
                    Translation(text, h.score, source_pieces, self.tgt_vocab.pieces(h.tokens),
                                h.attention[:, : len(source_pieces) + 1] if h.attention is not None else None)
                    for text, h in zip(texts_out, nbest)
                ]
        for index, warning in enumerate(warnings):
            for translation in results[index]:
                translation.warning = warning
        return results

    def search(self, sources: list[list[int]], record_attention: bool) -> list[list[Hypothesis]]:
        """The n-best hypotheses of a batch of source piece ids (without EOS)."""
        self.model.eval()
        src, lengths = pad_sources(sources)
        return search(self.model, src.to(self.device), lengths.to(self.device), self.decoding, record_attention)
