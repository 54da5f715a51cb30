"""Corpus BLEU and chrF with sacrebleu, reported with their signatures so scores are comparable."""

from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF


@dataclass
class Scores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    length_ratio: float  # hypothesis length / reference length (BLEU's sys_len / ref_len)

    def summary(self) -> str:
        return f"BLEU {self.bleu:.2f}  chrF {self.chrf:.2f}  length ratio {self.length_ratio:.3f}"

    def report(self) -> str:
        """The summary with sacrebleu's signatures, which say exactly how the scores were computed."""
        return f"{self.summary()}\n  BLEU|{self.bleu_signature}\n  chrF|{self.chrf_signature}"


def score(hypotheses: list[str], references: list[str]) -> Scores:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu_metric, chrf_metric = BLEU(), CHRF()
    bleu = bleu_metric.corpus_score(hypotheses, [references])
    chrf = chrf_metric.corpus_score(hypotheses, [references])
    ratio = bleu.sys_len / bleu.ref_len if bleu.ref_len else 0.0
    return Scores(bleu.score, chrf.score, str(bleu_metric.get_signature()), str(chrf_metric.get_signature()), ratio)
