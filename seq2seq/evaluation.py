"""Corpus BLEU, chrF and TER with sacrebleu, reported with their signatures so scores are comparable."""

from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF, TER

from seq2seq.config import EvaluationConfig


@dataclass
class Scores:
    bleu: float
    chrf: float
    ter: float  # edit rate: lower is better
    bleu_signature: str
    chrf_signature: str
    ter_signature: str
    length_ratio: float  # hypothesis length / reference length (BLEU's sys_len / ref_len)

    def summary(self) -> str:
        return (f"BLEU {self.bleu:.2f}  chrF {self.chrf:.2f}  TER {self.ter:.2f}  "
                f"length ratio {self.length_ratio:.3f}")

    def report(self) -> str:
        """The summary with sacrebleu's signatures, which say exactly how the scores were computed."""
        return (f"{self.summary()}\n  BLEU|{self.bleu_signature}\n  chrF|{self.chrf_signature}\n"
                f"  TER|{self.ter_signature}")


def metrics(options: EvaluationConfig) -> tuple[BLEU, CHRF, TER]:
    """The three sacrebleu metrics configured alike: one case rule for all, and TER tokenizes when BLEU does.

    TER on ordinary text uses tercom's normalisation, which splits punctuation off as BLEU's
    tokenizers do (without it "ran." against "ran ." costs an edit); with `tokenize: none` the
    text is already tokenized and TER splits it on whitespace only.
    """
    lowercase = options.lowercase
    return (BLEU(tokenize=options.tokenize, lowercase=lowercase), CHRF(lowercase=lowercase),
            TER(normalized=options.tokenize != "none", case_sensitive=not lowercase))


def score(hypotheses: list[str], references: list[str], options: EvaluationConfig | None = None) -> Scores:
    """BLEU, chrF and TER of one system output against one reference per sentence."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu_metric, chrf_metric, ter_metric = metrics(options or EvaluationConfig())
    bleu = bleu_metric.corpus_score(hypotheses, [references])
    chrf = chrf_metric.corpus_score(hypotheses, [references])
    ter = ter_metric.corpus_score(hypotheses, [references])
    ratio = bleu.sys_len / bleu.ref_len if bleu.ref_len else 0.0
    return Scores(bleu.score, chrf.score, ter.score, str(bleu_metric.get_signature()),
                  str(chrf_metric.get_signature()), str(ter_metric.get_signature()), ratio)
