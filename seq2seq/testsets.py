"""Whole test sets translated and scored: after training, by `evaluate`, and by bench/."""

from __future__ import annotations

from seq2seq.config import EvaluationConfig
from seq2seq.data.corpus import Corpus
from seq2seq.evaluation import Scores, score
from seq2seq.translator import Translator


def evaluate_tests(translator: Translator, tests: list[Corpus], progress: bool = True,
                   options: EvaluationConfig | None = None) -> dict[str, Scores]:
    """Translate and score every test set of a config, as read: its files are in the training form already."""
    results = {}
    for corpus in tests:
        translations = translator.translate(corpus.src, progress=progress, model_form=True)
        results[corpus.name] = score([nbest[0].text for nbest in translations], corpus.tgt, options)
    return results
