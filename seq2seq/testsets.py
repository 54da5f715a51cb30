"""Whole test sets translated and scored: after training, by `evaluate`, and by bench/."""

from __future__ import annotations

from seq2seq.data.corpus import Corpus
from seq2seq.evaluation import Scores, score
from seq2seq.translator import Translator


def evaluate_tests(translator: Translator, tests: list[Corpus], progress: bool = True) -> dict[str, Scores]:
    """Translate and score every test set of a config."""
    results = {}
    for corpus in tests:
        hypotheses = [nbest[0].text for nbest in translator.translate(corpus.src, progress=progress)]
        results[corpus.name] = score(hypotheses, corpus.tgt)
    return results
