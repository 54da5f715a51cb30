"""Token-budget batches: every pair once per epoch, within budget, reproducible order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seq2seq.data.batching import EncodedCorpus, collate, make_batches, pad_sources
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID


def random_lengths(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 60, count), rng.integers(1, 60, count)


@pytest.mark.parametrize("unit,budget", [("tokens", 500), ("tokens", 61), ("sentences", 7)])
def test_every_pair_exactly_once_and_within_budget(unit: str, budget: int) -> None:
    src, tgt = random_lengths(1000)
    batches = make_batches(src, tgt, budget, unit, seed=1, epoch=0)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(1000))
    for batch in batches:
        longest = max(max(src[i], tgt[i]) + 1 for i in batch)
        size = len(batch) if unit == "sentences" else longest * len(batch)
        assert size <= budget or len(batch) == 1


def test_order_is_reproducible_per_epoch_and_changes_between_epochs() -> None:
    src, tgt = random_lengths(500)
    first = make_batches(src, tgt, 400, "tokens", seed=1, epoch=0)
    assert first == make_batches(src, tgt, 400, "tokens", seed=1, epoch=0)
    assert first != make_batches(src, tgt, 400, "tokens", seed=1, epoch=1)


def test_batches_group_similar_lengths() -> None:
    src, tgt = random_lengths(2000)
    batches = make_batches(src, tgt, 800, "tokens", seed=1, epoch=0)
    padded = sum(max(tgt[i] for i in b) * len(b) for b in batches)
    assert padded < 1.15 * tgt.sum()


def test_collate_pads_and_marks_sequences() -> None:
    corpus = EncodedCorpus.from_lists([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]])
    batch = collate(corpus, [0, 1])
    assert batch.src.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [4, 2]
    assert batch.tgt_in.tolist() == [[BOS_ID, 9, 10, PAD_ID], [BOS_ID, 11, 12, 13]]
    assert batch.tgt_out.tolist() == [[9, 10, EOS_ID, PAD_ID], [11, 12, 13, EOS_ID]]
    assert batch.target_tokens == 7


def test_encoded_corpus_lengths_and_select() -> None:
    corpus = EncodedCorpus.from_lists([[1, 2], [3], [4, 5, 6]], [[7], [8, 9], []])
    assert corpus.src_lengths.tolist() == [2, 1, 3] and corpus.tgt_lengths.tolist() == [1, 2, 0]
    picked = corpus.select(np.array([2, 0]))
    assert picked.src(0).tolist() == [4, 5, 6] and picked.tgt(1).tolist() == [7]


def test_pad_sources_of_empty_row_is_just_eos() -> None:
    src, lengths = pad_sources([[], [4, 5]])
    assert src.tolist() == [[EOS_ID, PAD_ID, PAD_ID], [4, 5, EOS_ID]]
    assert lengths.dtype == torch.long and lengths.tolist() == [1, 3]
