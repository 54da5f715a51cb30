"""Translator: text in, text out. One text pipeline (cleaning, encoding, truncation, batching, output
rules) over a search engine: the PyTorch model here, or a CTranslate2 export (seq2seq.ctranslate2_engine).

Decoding settings are an argument of each call, never state that calls share: a server may run
requests with different settings through one Translator.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from seq2seq.checkpoint import read_model
from seq2seq.config import DecodingConfig, EvaluationConfig
from seq2seq.data.batching import pad_sources
from seq2seq.data.corpus import normalize_line
from seq2seq.data.text_form import TextForm
from seq2seq.errors import UserError
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

    def alignment(self) -> list[tuple[int, int]]:
        """(source index, target index) per target piece: the source piece it attends to most (EOS excluded)."""
        if self.attention is None or not self.source_pieces:
            return []
        best = self.attention[: len(self.pieces), : len(self.source_pieces)].argmax(dim=1).tolist()
        return [(source, target) for target, source in enumerate(best)]

    def alignment_text(self) -> str:
        """The alignment as fairseq and Marian print it: 'i-j' pairs, 0-based, source then target."""
        return " ".join(f"{source}-{target}" for source, target in self.alignment())


class Engine(Protocol):
    """What runs the search: n-best hypotheses for source piece ids (without EOS)."""

    device: torch.device

    def search(self, sources: list[list[int]], decoding: DecodingConfig, record_attention: bool,
               prefixes: list[list[int]] | None = None) -> list[list[Hypothesis]]: ...


class PyTorchEngine:
    """seq2seq's own search over an EncoderDecoder (one model, or an Ensemble of several)."""

    def __init__(self, model: EncoderDecoder, device: torch.device | None = None):
        self.device = device or next(model.parameters()).device
        self.model = model.to(self.device)

    def search(self, sources: list[list[int]], decoding: DecodingConfig, record_attention: bool,
               prefixes: list[list[int]] | None = None) -> list[list[Hypothesis]]:
        self.model.eval()
        src, lengths = pad_sources(sources)
        return search(self.model, src.to(self.device), lengths.to(self.device), decoding, record_attention,
                      prefixes)


def clean_input(text: str) -> str:
    """Printable, valid text: control characters become spaces, lone surrogates are replaced."""
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return normalize_line(text)


class Translator:
    """The text pipeline over an engine; `decoding` is only the default of each call (the checkpoint's)."""

    def __init__(self, engine: Engine | EncoderDecoder, src_vocab: Vocab, tgt_vocab: Vocab, decoding: DecodingConfig,
                 device: torch.device | None = None, text_form: TextForm | None = None,
                 evaluation: EvaluationConfig | None = None):
        # a bare model (the training loop's validation) gets seq2seq's own search
        self.engine = PyTorchEngine(engine, device) if isinstance(engine, EncoderDecoder) else engine
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab
        self.decoding = decoding
        # data.text_form of the checkpoint: typed input is prepared as the training text was, output detokenized
        self.text_form = text_form
        self.evaluation = evaluation or EvaluationConfig()  # the checkpoint's scoring options

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def model(self) -> EncoderDecoder:
        """The PyTorch engine's model (validation and tests reach into it)."""
        return self.engine.model

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | list[str | Path], device: str = "auto", quantize: bool = False,
        decoding: DecodingConfig | None = None, **decoding_overrides,
    ) -> Translator:
        """Several paths decode as an ensemble (seq2seq.model.ensemble) with the first one's decoding
        defaults; quantize=True decodes with int8 Linear layers on the CPU (see seq2seq.quantization)."""
        from seq2seq.model.ensemble import read_ensemble

        target = quantized_device(device) if quantize else select_device(device)  # fail before the load
        paths = path if isinstance(path, list) else [path]
        if len(paths) == 1:
            config, model, src_vocab, tgt_vocab = read_model(paths[0])
        else:
            config, model, src_vocab, tgt_vocab = read_ensemble(paths)
        if quantize:
            model = quantize_model(model)
        decoding = dataclasses.replace(decoding or config.decoding, **decoding_overrides)
        return cls(PyTorchEngine(model, target), src_vocab, tgt_vocab, decoding,
                   text_form=TextForm.of(config.data), evaluation=config.evaluation)

    def translate(
        self, texts: list[str], record_attention: bool = False, progress: bool = False,
        decoding: DecodingConfig | None = None, prefixes: list[str] | None = None, model_form: bool = False,
    ) -> list[list[Translation]]:
        """The n-best translations of each text, in input order; empty input gives empty output.
        prefixes (one per text, '' = none) are target text every output of that text starts with.
        model_form=True: the texts are already in the model's text form (a config's own dev and test
        files), so they are not prepared and the outputs stay in that form."""
        decoding = decoding or self.decoding
        limit = decoding.max_input_pieces
        form = None if model_form or self.text_form is None or not self.text_form.active else self.text_form
        cleaned = [clean_input(t) for t in texts]
        if form is not None:
            cleaned = [form.prepare_source(text) for text in cleaned]
        encoded = self.src_vocab.encode(cleaned)
        warnings = [
            f"input {i + 1} has {len(ids)} pieces; translated only its first {limit} (decoding.max_input_pieces)"
            if len(ids) > limit else None for i, ids in enumerate(encoded)
        ]
        encoded = [ids[:limit] for ids in encoded]
        forced = self.encode_prefixes(prefixes, len(texts), decoding, warnings)
        n_best = hypotheses_per_sentence(decoding)
        results = [[Translation("", 0.0, [], []) for _ in range(n_best)] for _ in texts]
        todo = sorted((i for i, text in enumerate(cleaned) if text), key=lambda i: len(encoded[i]))
        batches = [todo[s:s + decoding.batch_size] for s in range(0, len(todo), decoding.batch_size)]
        for batch in tqdm(batches, desc="translating", unit="batch", disable=not progress, leave=False):
            batch_prefixes = [forced[i] for i in batch] if forced is not None else None
            hypotheses = self.engine.search([encoded[i] for i in batch], decoding, record_attention, batch_prefixes)
            for index, nbest in zip(batch, hypotheses):
                source_pieces = self.src_vocab.pieces(encoded[index])
                texts_out = self.tgt_vocab.decode([h.tokens for h in nbest])
                if form is not None:
                    texts_out = [form.finish_output(text) for text in texts_out]
                results[index] = [
                    Translation(text, h.score, source_pieces, self.tgt_vocab.pieces(h.tokens),
                                h.attention[:, : len(source_pieces) + 1] if h.attention is not None else None)
                    for text, h in zip(texts_out, nbest)
                ]
        for index, warning in enumerate(warnings):
            for translation in results[index]:
                translation.warning = warning
        return results

    def encode_prefixes(self, prefixes: list[str] | None, count: int, decoding: DecodingConfig,
                        warnings: list[str | None]) -> list[list[int]] | None:
        """Target piece ids each output is forced to start with; a prefix longer than max_len is cut there."""
        if prefixes is None or not any(prefixes):
            return None
        if len(prefixes) != count:
            raise UserError(f"{len(prefixes)} prefixes for {count} inputs; give one prefix per input")
        encoded = self.tgt_vocab.encode([clean_input(p) for p in prefixes])
        for i, ids in enumerate(encoded):
            if len(ids) > decoding.max_len:
                cut = f"prefix {i + 1} has {len(ids)} pieces; kept only its first {decoding.max_len} (decoding.max_len)"
                warnings[i] = cut if warnings[i] is None else f"{warnings[i]}; {cut}"
        return [ids[: decoding.max_len] for ids in encoded]
