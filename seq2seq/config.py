"""Typed configuration: every key, its default and its meaning live here, and nowhere else.

A YAML file has seven sections (top level, data, vocab, model, training, decoding, evaluation). Loading
checks every key against these dataclasses, so a typo or a bad value stops with one line
that names the file, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from seq2seq.errors import UserError


def doc(text: str, default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING,
        **metadata: Any) -> Any:
    """A dataclass field carrying its one-line description (shown in docs and errors) and any further
    metadata a section reads (DecodingConfig: where an option is exposed, and its bounds)."""
    return field(default=default, default_factory=default_factory, metadata={"doc": text, **metadata})


@dataclass
class CorpusConfig:
    name: str = doc("name of the corpus, used in logs and as the test-set name")
    src: str = doc("source-side file (one sentence per line), relative to data.root", "")
    tgt: str = doc("target-side file aligned line by line with src, relative to data.root", "")
    tsv: str = doc("alternative to src/tgt: one file of source<TAB>target lines", "")
    holdout: int = doc("training corpora only: pairs held out (by distinct source) as a test set", 0)
    upsample: int = doc("training corpora only: how many times the corpus is repeated in the mix", 1)


@dataclass
class CleaningConfig:
    min_words: int = doc("drop pairs with fewer whitespace words on either side", 1)
    max_words: int = doc("drop pairs with more whitespace words on either side", 100)
    max_ratio: float = doc("drop pairs whose word-count ratio exceeds this (longer/shorter)", 3.0)
    ratio_slack: int = doc("words added to the shorter side before the ratio test (short pairs vary more)", 5)
    src_script: Literal["", "latin", "devanagari"] = doc(
        "script most letters of the source side must be in ('' = no check)", ""
    )
    tgt_script: Literal["", "latin", "devanagari"] = doc(
        "script most letters of the target side must be in ('' = no check)", ""
    )
    min_script_share: float = doc("share of a side's letters that must be in its script", 0.5)
    legacy_font: bool = doc(
        "drop pairs whose Devanagari side holds legacy-font residue, mojibake or private-use characters", False
    )
    dedup: bool = doc("drop exact duplicate pairs (the first copy stays)", True)
    remove_eval_overlap: bool = doc(
        "drop training pairs whose source or target also appears in the dev or a test set", True
    )


@dataclass
class TextFormConfig:
    """How the training text was prepared, so translation can prepare typed text the same way."""

    lowercase: bool = doc("the training text is lowercased: inputs are lowercased too", False)
    normalize_punctuation: bool = doc(
        "the training text went through Moses punctuation normalisation (normalize-punctuation.perl -l LANG)", False
    )
    moses_tokenize: bool = doc(
        "the training text is Moses-tokenized (tokenizer.perl -l LANG, with its XML escapes such as &apos;): "
        "inputs are tokenized, outputs detokenized", False
    )
    split_hyphens: bool = doc("moses_tokenize: hyphens inside words are split off as @-@ (tokenizer.perl -a)", False)
    detokenize_output: bool = doc(
        "moses_tokenize: turn outputs back into ordinary text with the Moses detokenizer of data.tgt_lang", True
    )

    def prepares(self) -> bool:
        """Whether any preparation is recorded (the default, none, leaves text as it is)."""
        return self.lowercase or self.normalize_punctuation or self.moses_tokenize


@dataclass
class DataConfig:
    root: str = doc("folder the corpus paths are relative to (--data-dir overrides it)", "data")
    download: str = doc("dataset name for `python -m seq2seq download` that provides these files", "")
    src_lang: str = doc(
        "source language code, e.g. en (names the language in the web page; Moses rules of data.text_form)", ""
    )
    tgt_lang: str = doc("target language code, e.g. de ('' = read both codes from a name like en-de)", "")
    example: str = doc("a source sentence the web page offers as its example ('' = a neutral hint)", "")
    text_form: TextFormConfig = doc(
        "how the training text was prepared (lowercasing, Moses normalisation and tokenization); "
        "translate and serve prepare typed input the same way", default_factory=TextFormConfig
    )
    train: list[CorpusConfig] = doc("training corpora, mixed together", default_factory=list)
    dev: CorpusConfig | None = doc("validation corpus", None)
    test: list[CorpusConfig] = doc("test corpora, each scored on its own", default_factory=list)
    cleaning: CleaningConfig = doc("filters applied to training pairs", default_factory=CleaningConfig)
    max_src_pieces: int = doc("training pairs with longer source (in pieces) are dropped", 100)
    max_tgt_pieces: int = doc("training pairs with longer target (in pieces) are dropped", 100)
    cache_dir: str = doc(
        "folder of the encoded-corpus and vocabulary cache that later runs reuse ('' = inside the run folder)", "data/cache"
    )
    seed: int | None = doc(
        "seed of the held-out splits, the cleaned corpus and the vocabularies (none = the run's seed): runs that "
        "differ only in the run's seed but share this one share test sets and vocabularies, as ensembles need", None
    )

    def check(self, check: Check) -> None:
        c = self.cleaning
        check(0.0 < c.min_script_share <= 1.0, "data.cleaning.min_script_share", "must be in (0, 1]")
        check(1 <= c.min_words <= c.max_words, "data.cleaning.min_words", "must be at least 1 and at most max_words")
        check(c.max_ratio >= 1, "data.cleaning.max_ratio", "must be at least 1")
        check(c.ratio_slack >= 0, "data.cleaning.ratio_slack", "must be 0 or positive")
        for key in ("src_lang", "tgt_lang"):
            check(bool(re.fullmatch(r"([a-z]{2,3}([-_][A-Za-z0-9]+)*)?", getattr(self, key))), f"data.{key}",
                  f"must be a language code such as en, de or pt-BR, got {getattr(self, key)!r}")
        form = self.text_form
        if form.normalize_punctuation or form.moses_tokenize:
            check(bool(self.src_lang and self.tgt_lang), "data.text_form",
                  "Moses normalisation and tokenization follow each language's rules: "
                  "set data.src_lang and data.tgt_lang")
        check(not form.split_hyphens or form.moses_tokenize, "data.text_form.split_hyphens",
              "applies to Moses tokenization: set data.text_form.moses_tokenize: true as well")
        check(self.max_src_pieces >= 1, "data.max_src_pieces", "must be at least 1")
        check(self.max_tgt_pieces >= 1, "data.max_tgt_pieces", "must be at least 1")
        corpora = [("data.train", c) for c in self.train] + [("data.test", c) for c in self.test]
        if self.dev is not None:
            corpora.append(("data.dev", self.dev))
        for key, corpus in corpora:
            check(
                bool(corpus.tsv) != bool(corpus.src or corpus.tgt) and (bool(corpus.tsv) or bool(corpus.src and corpus.tgt)),
                f"{key}({corpus.name})", "give either both src and tgt, or tsv",
            )
            check(corpus.holdout >= 0, f"{key}({corpus.name}).holdout", "must be 0 or positive")
            check(corpus.upsample >= 1, f"{key}({corpus.name}).upsample", "must be at least 1")
        names = [c.name for c in self.test] + [c.name for c in self.train if c.holdout]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        check(duplicate is None, "data.test", f"two test sets are named {duplicate!r}; names must differ")


@dataclass
class VocabConfig:
    type: Literal["unigram", "bpe"] = doc("SentencePiece model type", "unigram")
    src_size: int = doc("source vocabulary size (pieces, specials included)", 8000)
    tgt_size: int = doc("target vocabulary size (pieces, specials included)", 8000)
    character_coverage: float = doc("share of characters the vocabulary must cover (1.0 keeps Devanagari whole)", 1.0)
    byte_fallback: bool = doc("spell unknown characters as UTF-8 bytes so nothing is lost", True)
    sample_size: int = doc(
        "sentences sampled to train SentencePiece (0 = all); its memory grows by about 5 kB per sentence", 200_000
    )
    joint: bool = doc(
        "one SentencePiece model over both sides (src_size pieces); lets model.share_embeddings share all three", False
    )
    sampling_alpha: float = doc(
        "subword regularisation: sample a new segmentation of each training sentence per epoch with this "
        "SentencePiece smoothing alpha (0 = off; dev, test and translation always use the best segmentation)", 0.0
    )
    sampling_nbest: int = doc("subword regularisation: sample among this many best segmentations (-1 = all)", -1)

    def check(self, check: Check) -> None:
        for key in ("src_size", "tgt_size"):
            check(8 <= getattr(self, key) <= MAX_VOCAB, f"vocab.{key}",
                  f"must be in [8, {MAX_VOCAB}], got {getattr(self, key)}")
        check(0.9 <= self.character_coverage <= 1.0, "vocab.character_coverage", "must be in [0.9, 1.0]")
        check(self.sample_size >= 0, "vocab.sample_size", "must be 0 (all) or positive")
        check(0.0 <= self.sampling_alpha <= 1.0, "vocab.sampling_alpha", "must be in [0, 1] (0 = off)")
        check(self.sampling_nbest == -1 or self.sampling_nbest >= 1, "vocab.sampling_nbest",
              "must be -1 (all segmentations) or positive")


Check = Callable[[bool, str, str], None]  # check(ok, dotted key, message) raises when not ok

# Size keys are bounded at load time, so a typo never reaches torch as an overflow or a huge allocation
MAX_WIDTH = 65_536
MAX_LAYERS = 64
MAX_VOCAB = 1_000_000


@dataclass
class ModelConfig:
    type: Literal["rnn", "transformer"] = doc(
        "model family: recurrent encoder-decoder or Transformer (the key defaults to rnn, so configs and checkpoints "
        "without it stay RNNs; the default config, configs/en-hi.yaml, sets transformer)", "rnn")
    rnn: Literal["gru", "lstm"] = doc("rnn: recurrent cell of encoder and decoder", "gru")
    attention: Literal["bahdanau", "luong_dot", "luong_general", "none"] = doc(
        "rnn: attention: additive (Bahdanau), multiplicative (Luong dot/general) or none", "bahdanau"
    )
    emb_size: int = doc("rnn: embedding size of both sides", 256)
    encoder_hidden: int = doc("rnn: encoder hidden size per direction", 256)
    decoder_hidden: int = doc("rnn: decoder hidden size", 256)
    bidirectional: bool = doc("rnn: read the source in both directions", True)
    layer_norm: bool = doc("rnn: LayerNorm on the encoder outputs", False)
    encoder_layers: int = doc("stacked encoder layers", 1)
    decoder_layers: int = doc("stacked decoder layers", 1)
    dropout: float = doc("dropout on embeddings, between layers and before the output layer", 0.1)
    tie_embeddings: bool = doc("share the decoder input embedding with the output layer", False)
    share_embeddings: bool = doc(
        "one embedding matrix for source, target and output (needs vocab.joint: true and tie_embeddings)", False
    )
    d_model: int = doc("transformer: width of every layer and embedding", 256)
    heads: int = doc("transformer: attention heads (must divide d_model)", 4)
    ff_size: int = doc("transformer: hidden size of the position-wise feed-forward layers", 1024)
    attention_dropout: float = doc("transformer: dropout on attention weights", 0.1)
    activation_dropout: float = doc("transformer: dropout after the feed-forward activation", 0.0)
    norm: Literal["pre", "post"] = doc("transformer: LayerNorm before each sublayer (pre) or after the residual", "pre")
    positions: Literal["sinusoidal", "learned"] = doc("transformer: position encoding", "sinusoidal")
    position_layout: Literal["interleaved", "split"] = doc(
        "transformer: sinusoid channels: sin and cos interleaved (Vaswani et al.), or sin in the first half and cos "
        "in the second (Marian's layout, which export --format huggingface needs)", "interleaved"
    )
    max_positions: int = doc("transformer: longest source or target (pieces + EOS/BOS) the model accepts", 512)
    decoder_layerdrop: float = doc("transformer: probability of skipping each decoder layer in a training batch", 0.0)
    attention_layer: int = doc("transformer: decoder layer whose cross-attention heatmaps show (-1 = last)", -1)

    RNN_KEYS: ClassVar[tuple[str, ...]] = ("rnn", "attention", "emb_size", "encoder_hidden", "decoder_hidden", "bidirectional", "layer_norm")
    TRANSFORMER_KEYS: ClassVar[tuple[str, ...]] = ("d_model", "heads", "ff_size", "attention_dropout", "activation_dropout", "norm",
                        "positions", "position_layout", "max_positions", "decoder_layerdrop", "attention_layer")

    def foreign_keys(self) -> tuple[str, ...]:
        """The keys that belong to the other family."""
        return self.TRANSFORMER_KEYS if self.type == "rnn" else self.RNN_KEYS

    def check(self, check: Check) -> None:
        for key in ("encoder_layers", "decoder_layers"):
            check(0 < getattr(self, key) <= MAX_LAYERS, f"model.{key}",
                  f"must be in [1, {MAX_LAYERS}], got {getattr(self, key)}")
        check(0.0 <= self.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {self.dropout}")
        check(not self.share_embeddings or self.tie_embeddings, "model.share_embeddings",
              "shares the output layer too: set tie_embeddings: true as well")
        if self.type == "rnn":
            self._check_rnn(check)
        else:
            self._check_transformer(check)

    def _check_rnn(self, check: Check) -> None:
        for key in ("emb_size", "encoder_hidden", "decoder_hidden"):
            check(0 < getattr(self, key) <= MAX_WIDTH, f"model.{key}",
                  f"must be in [1, {MAX_WIDTH}], got {getattr(self, key)}")
        encoder_out = self.encoder_hidden * (2 if self.bidirectional else 1)
        check(
            self.attention != "luong_dot" or encoder_out == self.decoder_hidden, "model.attention",
            f"luong_dot needs decoder_hidden ({self.decoder_hidden}) equal to the encoder output size "
            f"({encoder_out}); use luong_general or change the sizes",
        )
        check(not (self.layer_norm and self.attention == "none"), "model.layer_norm",
              "normalises the encoder states that attention reads; with attention: none it does nothing")
        check(not self.tie_embeddings or self.emb_size == self.decoder_hidden, "model.tie_embeddings",
              f"needs emb_size ({self.emb_size}) equal to decoder_hidden ({self.decoder_hidden})")

    def _check_transformer(self, check: Check) -> None:
        for key in ("d_model", "ff_size", "heads"):
            check(0 < getattr(self, key) <= MAX_WIDTH, f"model.{key}",
                  f"must be in [1, {MAX_WIDTH}], got {getattr(self, key)}")
        check(self.d_model % self.heads == 0, "model.heads",
              f"must divide d_model ({self.d_model}), got {self.heads}")
        for key in ("attention_dropout", "activation_dropout", "decoder_layerdrop"):
            check(0.0 <= getattr(self, key) < 1.0, f"model.{key}", f"must be in [0, 1), got {getattr(self, key)}")
        check(self.positions == "sinusoidal" or self.position_layout == "interleaved", "model.position_layout",
              "lays out the sinusoids; with positions: learned it does nothing")
        check(1 <= self.max_positions <= 100_000, "model.max_positions",
              f"must be in [1, 100000], got {self.max_positions}")
        check(-self.decoder_layers <= self.attention_layer < self.decoder_layers, "model.attention_layer",
              f"must name one of the {self.decoder_layers} decoder layers (0..{self.decoder_layers - 1}, "
              f"or -1 for the last), got {self.attention_layer}")


@dataclass
class TrainingConfig:
    batch_size: int = doc("batch budget, in target tokens (with padding) or sentences (batch_unit)", 2000)
    batch_unit: Literal["tokens", "sentences"] = doc("what batch_size counts", "tokens")
    optimizer: Literal["adam", "adamw"] = doc("optimiser", "adam")
    lr: float = doc("peak learning rate", 0.001)
    weight_decay: float = doc("weight decay (decoupled for adamw)", 0.0)
    adam_betas: list[float] = doc("Adam beta1, beta2", default_factory=lambda: [0.9, 0.999])
    clip_grad_norm: float = doc("clip the global gradient norm to this (0 = off)", 1.0)
    label_smoothing: float = doc("label smoothing of the cross-entropy", 0.1)
    schedule: Literal["constant", "inverse_sqrt", "plateau", "linear_decay"] = doc(
        "learning-rate schedule; linear_decay falls linearly to min_lr at the end of the budget "
        "(max_time or max_steps, whichever ends first)", "constant")
    warmup_steps: int = doc("linear warm-up steps (constant, inverse_sqrt and linear_decay)", 0)
    plateau_factor: float = doc("plateau: multiply the rate by this when validation stalls", 0.5)
    plateau_patience: int = doc("plateau: validations without improvement before decaying", 2)
    min_lr: float = doc("the rate never goes below this", 1.0e-6)
    teacher_forcing_ratio: float = doc("probability of feeding the reference token (1 = teacher forcing)", 1.0)
    scheduled_sampling: Literal["none", "linear", "exponential", "inverse_sigmoid"] = doc(
        "decay of teacher_forcing_ratio over steps (none keeps it fixed)", "none"
    )
    sampling_decay: float = doc("linear: steps to decay to the minimum; exponential: base k<1; inverse_sigmoid: k>=1", 5000.0)
    sampling_min_ratio: float = doc("scheduled sampling never feeds gold less often than this", 0.0)
    max_steps: int = doc("stop after this many updates (0 = no limit)", 0)
    max_epochs: int = doc("stop after this many epochs (0 = no limit)", 0)
    max_time: str = doc("stop after this wall-clock time, e.g. 30m, 2h, 90s ('' = no limit)", "")
    valid_every: int = doc("validate every this many updates", 500)
    valid_metric: Literal["bleu", "chrf", "loss"] = doc("metric for best checkpoint and early stopping", "chrf")
    valid_limit: int = doc("translate at most this many dev sentences when validating (0 = all)", 0)
    early_stopping_patience: int = doc("stop after this many validations without improvement (0 = off)", 0)
    keep_last: int = doc("periodic checkpoints kept besides best.pt", 2)
    log_every: int = doc("log training scalars every this many updates", 50)
    samples: int = doc("dev translations printed and logged at each validation", 3)
    device: str = doc("auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps", "auto")
    amp: Literal["auto", "off", "bf16", "fp16"] = doc(
        "mixed precision: auto = bf16 on GPUs that have it, else fp16; on CPUs that compute bf16 natively "
        "(AVX512-BF16 or AMX) the faster of float32 and bf16, timed at start-up, float32 on other CPUs; bf16 = the same on GPUs, and bf16 on CPUs that compute it natively, else "
        "float32", "auto")
    threads: int = doc("CPU threads for PyTorch (0 = its default)", 0)
    max_nonfinite: int = doc("stop after this many non-finite losses or gradients in a row", 10)
    src_word_dropout: float = doc("probability of replacing each source token by <unk> in training", 0.0)
    tgt_word_dropout: float = doc("probability of replacing each target input token by <unk> in training", 0.0)
    ema_decay: float = doc("keep an exponential moving average of the weights; validation, best.pt and the test "
                           "scores use it (0 = off; 0.999 averages over about the last 1,000 updates)", 0.0)
    init_from: str = doc("fine-tune: start from this checkpoint's weights and SentencePiece models (taken, never "
                         "retrained), with a fresh optimiser and schedule; the model section must match it "
                         "('' = from scratch)", "")

    def check(self, check: Check) -> None:
        check(self.batch_size > 0, "training.batch_size", f"must be positive, got {self.batch_size}")
        check(self.lr > 0, "training.lr", f"must be positive, got {self.lr}")
        check(self.weight_decay >= 0, "training.weight_decay", "must be non-negative")
        check(
            len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
            "training.adam_betas", "must be two numbers in [0, 1), e.g. [0.9, 0.999]",
        )
        check(self.clip_grad_norm >= 0, "training.clip_grad_norm", "must be 0 (off) or positive")
        check(0 <= self.label_smoothing < 1, "training.label_smoothing", "must be in [0, 1)")
        check(0 <= self.teacher_forcing_ratio <= 1, "training.teacher_forcing_ratio", "must be in [0, 1]")
        check(0 <= self.sampling_min_ratio <= 1, "training.sampling_min_ratio", "must be in [0, 1]")
        check(self.sampling_decay > 0, "training.sampling_decay", "must be positive")
        if self.scheduled_sampling == "exponential":
            check(self.sampling_decay < 1, "training.sampling_decay",
                  "exponential decay needs a base below 1, e.g. 0.9995")
        if self.scheduled_sampling == "inverse_sigmoid":
            check(self.sampling_decay >= 1, "training.sampling_decay", "inverse_sigmoid needs k >= 1, e.g. 5000")
        for key in ("warmup_steps", "max_steps", "max_epochs", "early_stopping_patience", "valid_limit", "threads"):
            check(getattr(self, key) >= 0, f"training.{key}", f"must be 0 or positive, got {getattr(self, key)}")
        for key in ("valid_every", "log_every", "max_nonfinite"):
            check(getattr(self, key) > 0, f"training.{key}", f"must be positive, got {getattr(self, key)}")
        for key in ("src_word_dropout", "tgt_word_dropout"):
            check(0 <= getattr(self, key) < 1, f"training.{key}", f"must be in [0, 1), got {getattr(self, key)}")
        check(self.keep_last >= 1, "training.keep_last", "must be at least 1")
        check(0 <= self.ema_decay < 1, "training.ema_decay", f"must be in [0, 1) (0 = off), got {self.ema_decay}")
        check(0 < self.plateau_factor < 1, "training.plateau_factor", "must be in (0, 1)")
        check(self.min_lr >= 0, "training.min_lr", "must be non-negative")
        check(self.samples >= 0, "training.samples", "must be 0 or positive")
        try:
            parse_duration(self.max_time)
        except ValueError as error:
            check(False, "training.max_time", str(error))
        if self.schedule == "linear_decay":
            check(bool(self.max_steps or self.max_time), "training.schedule",
                  "linear_decay needs a budget to decay over: set training.max_time or training.max_steps")
        check(
            bool(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device)),
            "training.device", f"must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}",
        )


BOUNDS = ("ge", "gt", "le", "lt")  # field metadata keys: >=, >, <=, < (pydantic's names)


def option(text: str, default: Any, *, cli: bool = False, api: bool = False, **bounds: float) -> Any:
    """A decoding option: its description, default, whether translate/serve's command line (cli) and the
    HTTP request (api) expose it, and its bounds, which the config check and the API both enforce."""
    unknown = set(bounds) - set(BOUNDS)
    if unknown:
        raise TypeError(f"unknown bound {unknown}")
    return doc(text, default, cli=cli, api=api, bounds=bounds)


def _number(bound: float) -> str:
    """A bound as a reader takes it in: 2**63, not 9223372036854775808."""
    if isinstance(bound, int) and bound >= 2**32 and bound & (bound - 1) == 0:
        return f"2**{bound.bit_length() - 1}"
    return str(bound)


def bounds_message(bounds: dict[str, float], value: Any) -> str | None:
    """Why value breaks the bounds, or None when it keeps them."""
    low = ("[", bounds["ge"], value >= bounds["ge"]) if "ge" in bounds else (
        ("(", bounds["gt"], value > bounds["gt"]) if "gt" in bounds else None)
    high = ("]", bounds["le"], value <= bounds["le"]) if "le" in bounds else (
        (")", bounds["lt"], value < bounds["lt"]) if "lt" in bounds else None)
    if (low is None or low[2]) and (high is None or high[2]):
        return None
    if low and high:
        return f"must be in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}, got {value}"
    if low:
        return f"must be {'at least' if low[0] == '[' else 'more than'} {_number(low[1])}, got {value}"
    return f"must be {'at most' if high[0] == ']' else 'less than'} {_number(high[1])}, got {value}"


@dataclass(frozen=True)
class DecodingConfig:
    """Search settings. Each field is declared once here: translate's and serve's flags, the HTTP request's
    fields and the bounds checks are all derived from these declarations (see decoding_options)."""

    method: Literal["greedy", "beam", "sample"] = option(
        "search method; a beam_size, or an n_best above 1, without a method means beam", "beam", cli=True, api=True)
    beam_size: int = option("beam width", 5, cli=True, api=True, ge=1)
    n_best: int = option("hypotheses returned per sentence, best first (beam); translate prints rank, score, text",
                         1, cli=True, api=True, ge=1)
    length_penalty: float = option("GNMT length penalty alpha (0 = raw log-probability)", 1.0,
                                   cli=True, api=True, ge=0)
    max_len: int = option("absolute cap on output length in pieces", 200, cli=True, api=True, ge=1)
    max_len_ratio: float = option("output may be at most ratio * source pieces + max_len_extra", 2.0, gt=0)
    max_len_extra: int = option("see max_len_ratio", 10, ge=0)
    min_len: int = option("pieces produced before EOS is allowed", 1, ge=0)
    no_repeat_ngram: int = option("no n-gram of pieces may occur twice in one output (0 = off)", 4,
                                  cli=True, api=True, ge=0)
    temperature: float = option("sampling temperature (0 = greedy)", 1.0, cli=True, api=True, ge=0)
    top_k: int = option("sample among the k likeliest pieces (0 = all)", 0, cli=True, api=True, ge=0)
    top_p: float = option("sample within the smallest set of this probability mass (1 = all)", 1.0,
                          cli=True, api=True, gt=0, le=1)
    seed: int = option("sampling seed", 1, cli=True, api=True, ge=0, lt=2**63)
    batch_size: int = option("sentences decoded together", 64, cli=True, ge=1)
    max_input_pieces: int = option("longer inputs are truncated to this many pieces, with a warning", 250, ge=1)

    def check(self, check: Check) -> None:
        for f in dataclasses.fields(self):
            problem = bounds_message(f.metadata.get("bounds", {}), getattr(self, f.name))
            check(problem is None, f"decoding.{f.name}", problem or "")
        check(
            self.method != "beam" or self.n_best <= self.beam_size,
            "decoding.n_best", f"must not exceed beam_size ({self.beam_size}), got {self.n_best}",
        )
        check(self.min_len < self.max_len, "decoding.min_len", "must be in [0, max_len)")

    def override(self, changes: dict[str, Any]) -> DecodingConfig:
        """These settings with changes on top (None = keep). The one place of the rule that asking for a
        beam width, or an n-best list above 1, without naming a method means beam search."""
        changes = {name: value for name, value in changes.items() if value is not None}
        if "beam_size" in changes or changes.get("n_best", 1) > 1:
            changes.setdefault("method", "beam")
        return dataclasses.replace(self, **changes)


def decoding_options(where: Literal["cli", "api"]) -> list[tuple[dataclasses.Field, Any]]:
    """The decoding fields a surface exposes, with their types: the source of translate's and serve's
    flags and of the HTTP request model."""
    hints = typing.get_type_hints(DecodingConfig)
    return [(f, hints[f.name]) for f in dataclasses.fields(DecodingConfig) if f.metadata.get(where)]


@dataclass
class EvaluationConfig:
    """How BLEU, chrF and TER read the text, so a score means what the published ones mean."""

    tokenize: Literal["13a", "none", "intl", "char", "zh", "ja-mecab", "ko-mecab", "flores101", "flores200"] = doc(
        "sacrebleu tokenizer for BLEU and TER: 13a for ordinary text; none for text that is already tokenized "
        "(the multi-bleu convention of published tokenized scores)", "13a"
    )
    lowercase: bool = doc("score case-insensitively (BLEU, chrF and TER)", False)


@dataclass
class Config:
    name: str = doc("run name: checkpoints and logs go to run_dir/name", "en-hi")
    run_dir: str = doc("folder that holds runs", "runs")
    seed: int = doc("seed for weights, data order and dropout; also of the held-out splits and vocabularies unless data.seed is set", 1)
    data: DataConfig = doc("corpora and cleaning", default_factory=DataConfig)
    vocab: VocabConfig = doc("SentencePiece vocabularies", default_factory=VocabConfig)
    model: ModelConfig = doc("network shape", default_factory=ModelConfig)
    training: TrainingConfig = doc("optimisation and stopping", default_factory=TrainingConfig)
    decoding: DecodingConfig = doc("search used for validation and translation", default_factory=DecodingConfig)
    evaluation: EvaluationConfig = doc("how BLEU, chrF and TER are computed", default_factory=EvaluationConfig)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) / self.name

    @property
    def data_seed(self) -> int:
        """The seed of everything made from the data before training: held-out splits, cleaning, vocabularies."""
        return self.seed if self.data.seed is None else self.data.seed


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in '90s', '30m', '1.5h', '2d' or a bare number of seconds; 0 for ''."""
    if not text:
        return 0.0
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


# Names users bring from other toolkits, mapped to ours, for "did you mean" hints
ALIASES = {
    "learning_rate": "lr", "hidden_size": "decoder_hidden", "embedding_size": "emb_size", "epochs": "max_epochs",
    "steps": "max_steps", "beam": "beam_size", "cell": "rnn", "rnn_type": "rnn", "num_layers": "encoder_layers",
    "grad_clip": "clip_grad_norm", "clip_grad": "clip_grad_norm", "patience": "early_stopping_patience",
}


def suggest(name: str, known: list[str]) -> str | None:
    """The known key a misspelt or foreign name most likely means."""
    candidates = {key: key for key in known}
    candidates.update({alias: key for alias, key in ALIASES.items() if key in known})
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.7)
    return candidates[close[0]] if close else None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


class _Loader:
    """Turns plain YAML data into the dataclasses, collecting the dotted key for errors."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> UserError:
        return UserError(f"{self.source}: {key}: {message}")

    def build(self, cls: type, data: Any, key: str) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.fail(key or "top level", f"expected a mapping of keys, got {_kind(data)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for name, value in data.items():
            dotted = f"{key}.{name}" if key else str(name)
            if name not in fields:
                close = suggest(str(name), list(fields))
                hint = f"; did you mean '{close}'?" if close else f"; known keys: {', '.join(fields)}"
                raise self.fail(dotted, f"unknown key{hint}")
            values[name] = self.convert(hints[name], value, dotted)
        missing = [
            n for n, f in fields.items()
            if n not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise self.fail(f"{key}.{missing[0]}" if key else missing[0], "is required")
        built = cls(**values)
        if isinstance(built, ModelConfig):
            foreign = [name for name in values if name in built.foreign_keys()]
            if foreign:
                raise self.fail(f"{key}.{foreign[0]}", f"is not a key of model.type: {built.type}")
        return built

    def convert(self, hint: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            return None if value is None else self.convert(options[0], value, key)
        if origin is Literal:
            choices = typing.get_args(hint)
            if value is False and "off" in choices:  # YAML reads an unquoted off as false
                value = "off"
            if value not in choices:
                close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
                hint_text = f"; did you mean '{close[0]}'?" if close else ""
                raise self.fail(key, f"must be one of {', '.join(map(str, choices))}, got {value!r}{hint_text}")
            return value
        if origin is list:
            (item,) = typing.get_args(hint)
            if isinstance(value, dict) and dataclasses.is_dataclass(item):
                value = [value]
            if not isinstance(value, list):
                raise self.fail(key, f"expected a list, got {_kind(value)}")
            return [self.convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, key)
        if hint is bool:
            if not isinstance(value, bool):
                raise self.fail(key, f"expected true or false, got {value!r}")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(key, f"expected a whole number, got {value!r}")
            return value
        if hint is float:
            if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as text
                try:
                    value = float(value)
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise self.fail(key, f"expected a finite number, got {value!r}")
            return float(value)
        if hint is str:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            if not isinstance(value, str):
                raise self.fail(key, f"expected text, got {_kind(value)}")
            return value
        raise TypeError(f"unsupported config type {hint!r} at {key}")


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), repr(value))


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `section.key=value` override (value parsed as YAML) to raw config data."""
    if "=" not in assignment:
        raise UserError(f"--set {assignment}: expected section.key=value, e.g. training.lr=0.0005")
    dotted, raw = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"--set {assignment}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] = (), data_dir: str | None = None) -> Config:
    """Read, override and validate a config; every problem becomes a UserError naming the key."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise UserError(f"{path}: config file not found (see configs/ for the shipped ones)")
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
            data = {} if data is None else data
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "invalid YAML"
            raise UserError(f"{path}: YAML syntax error{where}: {problem}") from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    if not isinstance(data, dict):
        raise UserError(f"{source}: top level: expected a mapping of sections (data, model, ...), got {_kind(data)}")
    for assignment in overrides:
        apply_override(data, assignment)
    if data_dir is not None:
        data.setdefault("data", {})
        if not isinstance(data["data"], dict):
            raise UserError(f"{source}: data: expected a mapping of keys")
        data["data"]["root"] = data_dir
    config = config_from_dict(data, source)
    return config


def config_from_dict(data: Any, source: str = "config") -> Config:
    """Build and validate a Config from plain data (YAML or a checkpoint's stored copy)."""
    config = _Loader(source).build(Config, data, "")
    validate(config, source)
    return config


def config_to_dict(config: Config) -> dict:
    """Plain data that loads back to the same config; the other model family's keys are left out."""
    data = dataclasses.asdict(config)
    for name in config.model.foreign_keys():
        del data["model"][name]
    return data


def validate(config: Config, source: str) -> None:
    """Each section's own checks, then the checks that span sections."""

    def check(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise UserError(f"{source}: {key}: {message}")

    check(bool(config.name) and "/" not in config.name, "name", "must be a non-empty name without '/'")
    check(0 <= config.seed < 2**32, "seed", f"must be in [0, 2**32), got {config.seed}")
    check(0 <= config.data_seed < 2**32, "data.seed", f"must be in [0, 2**32), got {config.data_seed}")
    for section in (config.data, config.vocab, config.model, config.training, config.decoding):
        section.check(check)
    check_across_sections(config, check)


def check_across_sections(config: Config, check: Check) -> None:
    m, v, d, data = config.model, config.vocab, config.decoding, config.data
    check(not m.share_embeddings or v.joint, "model.share_embeddings",
          "needs one vocabulary for both sides: set vocab.joint: true")
    if m.type == "transformer":
        # positions are 0-based; a source gains EOS, a target input BOS, a decoded output up to max_len + 1 steps
        needs = {"data.max_src_pieces": data.max_src_pieces + 1, "data.max_tgt_pieces": data.max_tgt_pieces + 1,
                 "decoding.max_input_pieces": d.max_input_pieces + 1, "decoding.max_len": d.max_len + 1}
        for key, length in needs.items():
            check(length <= m.max_positions, key,
                  f"allows sequences of {length} positions, more than model.max_positions ({m.max_positions}); "
                  f"lower {key} or raise model.max_positions")
    check(m.type == "transformer" or m.decoder_layerdrop == 0, "model.decoder_layerdrop", "is for transformers only")


def describe_keys(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, description) for every key: the source of the config docs."""
    rows = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            rows.append((key, "", f.metadata["doc"]))
            rows.extend(describe_keys(hint, key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "required"
        )
        rows.append((key, repr(default), f.metadata["doc"]))
    return rows
