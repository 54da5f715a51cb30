"""The form of a model's text: typed input prepared as the training text was, output made readable again.

A model trained on lowercased, Moses-tokenized text (Multi30k's tok/ files, say) only knows
that form. `data.text_form` records the preparation in the config, which every checkpoint
stores, so translate and serve apply it to what a user types and detokenize what comes out.
The dev and test files of a config are already in the training form and are read as they are.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from seq2seq.config import DataConfig, EvaluationConfig, TextFormConfig

Side = Literal["source", "target"]


class TextForm:
    """Prepares text as `data.text_form` says, with the Moses rules of each side's language."""

    def __init__(self, form: TextFormConfig, src_lang: str = "", tgt_lang: str = ""):
        self.form = form
        self.langs = {"source": src_lang, "target": tgt_lang}
        self._normalizers: dict[Side, object] = {}
        self._tokenizers: dict[Side, object] = {}
        self._detokenizer = None

    @classmethod
    def of(cls, data: DataConfig) -> TextForm:
        return cls(data.text_form, data.src_lang, data.tgt_lang)

    @property
    def active(self) -> bool:
        """Whether text is changed at all (a config without text_form leaves it as typed)."""
        return self.form.prepares()

    def prepare(self, text: str, side: Side) -> str:
        """Text of one side in the training form: lowercased, then normalised, then tokenized.

        The order is the one of Multi30k's task1-tokenize.sh (lowercase.perl, then
        normalize-punctuation.perl, then tokenizer.perl).
        """
        form = self.form
        if form.lowercase:
            text = text.lower()
        if form.normalize_punctuation:
            text = self._normalizer(side).normalize(text)
        if form.moses_tokenize:
            text = self._tokenizer(side).tokenize(
                text, escape=True, aggressive_dash_splits=form.split_hyphens, return_str=True)
        return " ".join(text.split())

    def prepare_source(self, text: str) -> str:
        """What a user typed, in the form the model was trained to read."""
        return self.prepare(text, "source")

    def prepare_target(self, text: str) -> str:
        """A reference translation in the form the model was trained to write."""
        return self.prepare(text, "target")

    def finish_output(self, text: str) -> str:
        """A model output as ordinary text: Moses-detokenized (XML escapes undone) where the form is tokenized.

        Lowercasing cannot be undone, so a lowercased model's output stays lowercase.
        """
        if not (self.form.moses_tokenize and self.form.detokenize_output):
            return text
        if self._detokenizer is None:
            from sacremoses import MosesDetokenizer

            self._detokenizer = MosesDetokenizer(lang=self.langs["target"])
        return self._detokenizer.detokenize(text.split(), unescape=True)

    def _normalizer(self, side: Side):
        if side not in self._normalizers:
            from sacremoses import MosesPunctNormalizer

            self._normalizers[side] = MosesPunctNormalizer(lang=self.langs[side])
        return self._normalizers[side]

    def _tokenizer(self, side: Side):
        if side not in self._tokenizers:
            from sacremoses import MosesTokenizer

            self._tokenizers[side] = MosesTokenizer(lang=self.langs[side])
        return self._tokenizers[side]


def output_scoring(evaluation: EvaluationConfig, form: TextForm | None) -> EvaluationConfig:
    """How to score finished outputs: detokenized text is ordinary text, so BLEU tokenizes it (13a).

    `evaluation` describes the training form (e.g. tokenize none on Moses-tokenized text); the
    case rule stays, since lowercasing cannot be undone.
    """
    if form is not None and form.form.moses_tokenize and form.form.detokenize_output:
        return dataclasses.replace(evaluation, tokenize="13a")
    return evaluation
