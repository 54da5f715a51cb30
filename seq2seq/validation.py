"""Validation during training: dev loss and scores, their TensorBoard curves, and which result is best."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch.utils.tensorboard import SummaryWriter

from seq2seq.config import EvaluationConfig
from seq2seq.data.batching import make_batches, stored_batch
from seq2seq.data.cache import EncodedCorpus
from seq2seq.data.corpus import Corpus
from seq2seq.evaluation import Scores, score
from seq2seq.loss import sequence_loss
from seq2seq.plots import attention_figure
from seq2seq.translator import Translator

log = logging.getLogger("seq2seq")


PERPLEXITY_CAP = 50.0  # the largest mean NLL (nats) turned into a perplexity: exp(50) is already meaningless


def perplexity(nll: float) -> float:
    """exp(mean NLL), capped so that an untrained or diverged model logs a number, not an overflow."""
    return math.exp(min(nll, PERPLEXITY_CAP))


@dataclass
class ScoreTracker:
    """The best validation score so far and the validations since it: the one record that best.pt,
    early stopping and the plateau schedule all read."""

    higher_is_better: bool
    best: float | None = None
    bad_validations: int = 0

    def observe(self, value: float) -> bool:
        """Record a validation's score; True when it is the best so far."""
        improved = self.best is None or (value > self.best if self.higher_is_better else value < self.best)
        if improved:
            self.best, self.bad_validations = value, 0
        else:
            self.bad_validations += 1
        return improved

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_validations = state["best"], state["bad_validations"]


@dataclass
class DevResult:
    loss: float
    scores: Scores

    def metric(self, name: str) -> float:
        return {"bleu": self.scores.bleu, "chrf": self.scores.chrf, "loss": self.loss}[name]


class Validator:
    """Scores the model on (the first `limit` sentences of) the dev set with the config's decoding."""

    def __init__(self, translator: Translator, dev: Corpus, limit: int, batch_size: int, batch_unit: str,
                 samples: int, writer: SummaryWriter, options: EvaluationConfig | None = None):
        count = limit or len(dev)
        self.sources, self.references = dev.src[:count], dev.tgt[:count]
        self.translator = translator
        self.batch_size, self.batch_unit = batch_size, batch_unit
        self.samples = samples
        self.writer = writer
        self.options = options

    def __call__(self, step: int) -> DevResult:
        result = DevResult(self.dev_loss(), self._scores(step))
        w = self.writer
        w.add_scalar("dev/loss", result.loss, step)
        w.add_scalar("dev/perplexity", perplexity(result.loss), step)
        w.add_scalar("dev/bleu", result.scores.bleu, step)
        w.add_scalar("dev/chrf", result.scores.chrf, step)
        w.add_scalar("dev/ter", result.scores.ter, step)
        w.add_scalar("dev/length_ratio", result.scores.length_ratio, step)
        w.flush()
        return result

    def _scores(self, step: int) -> Scores:
        translations = self.translator.translate(self.sources, record_attention=False, progress=True)
        hypotheses = [nbest[0].text for nbest in translations]
        samples = []
        for i in range(min(self.samples, len(self.sources))):
            samples.append(f"source: {self.sources[i]}  \nreference: {self.references[i]}  \n"
                           f"hypothesis: {hypotheses[i]}")
            log.info("  source:     %s\n  reference:  %s\n  hypothesis: %s",
                     self.sources[i], self.references[i], hypotheses[i])
        if samples:
            self.writer.add_text("dev/samples", "\n\n".join(samples), step)
            shown = self.translator.translate(self.sources[:1], record_attention=True)[0][0]
            if shown.attention is not None:
                self.writer.add_figure("dev/attention", attention_figure(shown), step)
        return score(hypotheses, self.references, self.options)

    def dev_loss(self) -> float:
        """Per-token NLL of the references under teacher forcing."""
        model, device = self.translator.model, self.translator.device
        model.eval()
        encoded = EncodedCorpus.from_lists(self.translator.src_vocab.encode(self.sources),
                                           self.translator.tgt_vocab.encode(self.references))
        batches = make_batches(encoded.src_lengths, encoded.tgt_lengths, self.batch_size, self.batch_unit,
                               seed=0, epoch=0)
        total = tokens = 0.0
        with torch.inference_mode():
            for indices in batches:
                batch = stored_batch(encoded, indices).to(device)
                logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
                total += float(sequence_loss(logits, batch.tgt_out, 0.0)[1])
                tokens += batch.target_tokens
        return total / max(tokens, 1)
