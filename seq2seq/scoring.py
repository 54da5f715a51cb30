"""Forced decoding: the log-probability a model gives a translation it is handed.

A pair is cleaned and encoded exactly as translation does it, then read in one teacher-forced
pass in eval mode (no dropout, no label smoothing). The score of a target is the sum of its
pieces' log-probabilities, EOS included: what greedy search adds up for its own output (beam
search then divides by the length penalty), so a greedy result scored here gets back its score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seq2seq.data.batching import pad_pairs
from seq2seq.errors import UserError
from seq2seq.model.interface import EncoderDecoder
from seq2seq.translator import clean_input
from seq2seq.vocab import EOS_ID, PAD_ID, Vocab


@dataclass
class PairScore:
    pieces: list[str]  # the target's pieces, EOS last
    piece_scores: list[float]  # log-probability of each piece given the source and the pieces before it

    @property
    def total(self) -> float:
        return sum(self.piece_scores)

    @property
    def normalized(self) -> float:
        """Per piece, EOS included: comparable across targets of different lengths."""
        return self.total / len(self.piece_scores)


def score_ids(model: EncoderDecoder, sources: list[list[int]], targets: list[list[int]],
              batch_size: int = 64) -> list[list[float]]:
    """Per-piece log-probabilities (EOS last) of each target id row given its source id row (both without EOS).

    Pairs are batched by length, and padding never reaches a real position, so a pair's scores do not
    depend on what it is batched with. The model is read in eval mode and left in the mode it had.
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources for {len(targets)} targets")
    device = next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), len(targets[i])))
    scores: list[list[float]] = [[] for _ in sources]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                batch = pad_pairs([sources[i] for i in chunk], [targets[i] for i in chunk]).to(device)
                logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)  # (batch, tgt_len, vocab)
                log_probs = logits.float().log_softmax(dim=-1)
                picked = log_probs.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1).double().cpu()
                real = (batch.tgt_out != PAD_ID).cpu()
                for row, index in enumerate(chunk):
                    scores[index] = picked[row][real[row]].tolist()
    finally:
        model.train(was_training)
    return scores


def score_pairs(model: EncoderDecoder, src_vocab: Vocab, tgt_vocab: Vocab, sources: list[str], targets: list[str],
                batch_size: int = 64, max_source_pieces: int | None = None) -> list[PairScore]:
    """The score of each target text as a translation of its source text, in input order.

    Sources longer than max_source_pieces (the checkpoint's decoding.max_input_pieces) and targets
    longer than the model reads are errors: translation would truncate them, and a score of a cut
    sentence would pass for the whole one's.
    """
    if len(sources) != len(targets):
        raise UserError(f"{len(sources)} sources but {len(targets)} targets; give one target per source")
    src_ids = src_vocab.encode([clean_input(t) for t in sources])
    tgt_ids = tgt_vocab.encode([clean_input(t) for t in targets])
    target_limit = model.max_target_positions
    for line, (src, tgt) in enumerate(zip(src_ids, tgt_ids), 1):
        if max_source_pieces is not None and len(src) > max_source_pieces:
            raise UserError(f"source line {line} has {len(src)} pieces, more than the model reads "
                            f"({max_source_pieces}, decoding.max_input_pieces); shorten or split it")
        if target_limit is not None and len(tgt) + 1 > target_limit:
            raise UserError(f"target line {line} has {len(tgt)} pieces, more than the model reads "
                            f"({target_limit - 1}, model.max_positions - 1); shorten or split it")
    piece_scores = score_ids(model, src_ids, tgt_ids, batch_size)
    return [PairScore(tgt_vocab.pieces(ids + [EOS_ID]), scores) for ids, scores in zip(tgt_ids, piece_scores)]
