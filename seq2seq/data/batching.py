"""Token-budget batches: length buckets, padding, resumable order, and subword sampling per batch."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from seq2seq.data.cache import EncodedCorpus, Texts
from seq2seq.special_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seq2seq.vocab import Vocab


@dataclass
class Batch:
    """Padded tensors of one batch. Source ends with EOS; target input starts with BOS."""

    src: torch.Tensor  # (batch, src_len) long
    src_lengths: torch.Tensor  # (batch,) long, on CPU (pack_padded_sequence wants it there)
    tgt_in: torch.Tensor  # (batch, tgt_len): BOS y1 .. yn
    tgt_out: torch.Tensor  # (batch, tgt_len): y1 .. yn EOS

    @property
    def target_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def with_word_dropout(self, src_rate: float, tgt_rate: float) -> Batch:
        """Whole tokens replaced by <unk> at random (Sennrich & Zhang 2019), for training only.

        Padding, BOS and EOS stay, and `tgt_out` stays gold: the model learns to predict the
        right word from a context with holes in it.
        """
        def drop(tokens: torch.Tensor, rate: float) -> torch.Tensor:
            if rate == 0:
                return tokens
            words = (tokens != PAD_ID) & (tokens != BOS_ID) & (tokens != EOS_ID)
            holes = words & (torch.rand(tokens.shape, device=tokens.device) < rate)
            return tokens.masked_fill(holes, UNK_ID)

        return Batch(drop(self.src, src_rate), self.src_lengths, drop(self.tgt_in, tgt_rate), self.tgt_out)

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.src.to(device, non_blocking=True), self.src_lengths,
            self.tgt_in.to(device, non_blocking=True), self.tgt_out.to(device, non_blocking=True),
        )


def pad_sources(rows: list[list[int]] | list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Append EOS to each source and pad: (batch, max_len) ids and (batch,) lengths."""
    lengths = torch.tensor([len(r) + 1 for r in rows], dtype=torch.long)
    src = torch.full((len(rows), int(lengths.max())), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        src[i, : len(row)] = torch.as_tensor(np.asarray(row, dtype=np.int64))
        src[i, len(row)] = EOS_ID
    return src, lengths


def pad_pairs(sources: list[list[int]] | list[np.ndarray], targets: list[list[int]] | list[np.ndarray]) -> Batch:
    """A batch of id rows: EOS after each source, BOS before and EOS after each target, padded."""
    src, src_lengths = pad_sources(sources)
    tgt_len = max(len(t) for t in targets) + 1
    tgt_in = torch.full((len(targets), tgt_len), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((len(targets), tgt_len), PAD_ID, dtype=torch.long)
    for i, row in enumerate(targets):
        ids = torch.as_tensor(np.asarray(row, dtype=np.int64))
        tgt_in[i, 0] = BOS_ID
        tgt_in[i, 1 : len(row) + 1] = ids
        tgt_out[i, : len(row)] = ids
        tgt_out[i, len(row)] = EOS_ID
    return Batch(src, src_lengths, tgt_in, tgt_out)


def stored_batch(corpus: EncodedCorpus, indices: list[int]) -> Batch:
    """The batch of these pairs in their stored (best) segmentation."""
    return pad_pairs([corpus.src(i) for i in indices], [corpus.tgt(i) for i in indices])


@dataclass
class SubwordSampler:
    """Subword regularisation (Kudo 2018): every use of a training pair gets a fresh random segmentation.

    Seeded by (seed, epoch, batch index), so a resumed run sees exactly the pieces it would have
    seen. Batches are cut by best-segmentation lengths; a sample longer than its side's piece
    limit is cut to the limit (the EOS that padding adds still follows it).
    """

    src_text: Texts
    tgt_text: Texts
    src_vocab: Vocab
    tgt_vocab: Vocab
    alpha: float
    nbest: int
    max_src_pieces: int
    max_tgt_pieces: int
    seed: int

    def sampled_batch(self, indices: list[int], epoch: int, batch_index: int) -> Batch:
        """The batch of these pairs, each segmented afresh for this (epoch, batch index)."""
        # SentencePiece reserves seed 2**32 - 1 ("draw one at random"), so the range stops below it
        src_seed, tgt_seed = np.random.default_rng([self.seed, epoch, batch_index]).integers(0, 2**32 - 1, size=2)
        sources = self.src_vocab.sample([self.src_text[i] for i in indices], self.alpha, self.nbest, int(src_seed))
        targets = self.tgt_vocab.sample([self.tgt_text[i] for i in indices], self.alpha, self.nbest, int(tgt_seed))
        return pad_pairs([row[: self.max_src_pieces] for row in sources],
                         [row[: self.max_tgt_pieces] for row in targets])


def make_batches(
    src_lengths: np.ndarray, tgt_lengths: np.ndarray, budget: int, unit: str, seed: int, epoch: int
) -> list[list[int]]:
    """Every pair exactly once, in batches of similar length whose padded size fits the budget.

    Pairs are sorted by (target, source) length with a seeded random tie-break, cut into
    batches greedily, then the batch order is shuffled: a fresh order each epoch, the same
    order for the same (seed, epoch) — which is what makes resume exact.
    """
    rng = np.random.default_rng([seed, epoch])
    noise = rng.random(len(src_lengths))
    order = np.lexsort((noise, src_lengths, tgt_lengths))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order.tolist():
        # +1 for the EOS (source) and BOS/EOS (target) each sequence gains when padded
        length = int(max(src_lengths[index], tgt_lengths[index])) + 1
        longest_if_added = max(longest, length)
        size = len(current) + 1 if unit == "sentences" else longest_if_added * (len(current) + 1)
        if current and size > budget:
            batches.append(current)
            current, longest_if_added = [], length
        current.append(index)
        longest = longest_if_added
    if current:
        batches.append(current)
    random.Random(f"{seed}-{epoch}").shuffle(batches)
    return batches
