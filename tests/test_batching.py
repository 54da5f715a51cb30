"""Token-budget batches: every pair once per epoch, within budget, reproducible order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seq2seq.config import VocabConfig
from seq2seq.data.batching import SubwordSampler, make_batches, pad_pairs, pad_sources, stored_batch
from seq2seq.data.cache import EncodedCorpus, Texts
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocab, train_vocab

ENGLISH = ["where is the station", "the station is closed today", "I am hungry", "how are you",
           "this is a test of the sampler", "please bring some water"]
HINDI = ["स्टेशन कहाँ है?", "स्टेशन आज बंद है।", "मैं भूखा हूँ।", "आप कैसे हैं?", "यह सैंपलर की परीक्षा है।",
         "कृपया थोड़ा पानी लाइए।"]


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


def test_stored_batch_pads_and_marks_sequences() -> None:
    corpus = EncodedCorpus.from_lists([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]])
    batch = stored_batch(corpus, [0, 1])
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


def test_pad_pairs_of_lists_matches_stored_batch_of_arrays() -> None:
    corpus = EncodedCorpus.from_lists([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]])
    batch, padded = stored_batch(corpus, [1, 0]), pad_pairs([[8], [5, 6, 7]], [[11, 12, 13], [9, 10]])
    for name in ("src", "src_lengths", "tgt_in", "tgt_out"):
        assert torch.equal(getattr(batch, name), getattr(padded, name))


def test_texts_round_trip_any_script() -> None:
    texts = Texts.from_list(["", "मिट्टी ü", "emoji 🙂"])
    assert [texts[i] for i in range(3)] == ["", "मिट्टी ü", "emoji 🙂"]


@pytest.fixture(scope="module")
def vocabs() -> tuple[Vocab, Vocab]:
    return (train_vocab(ENGLISH * 20, 400, VocabConfig(), seed=1), train_vocab(HINDI * 20, 400, VocabConfig(), seed=1))


def sampler(vocabs: tuple[Vocab, Vocab], max_pieces: int = 100) -> SubwordSampler:
    src_vocab, tgt_vocab = vocabs
    return SubwordSampler(Texts.from_list(ENGLISH), Texts.from_list(HINDI), src_vocab, tgt_vocab, alpha=0.1,
                          nbest=-1, max_src_pieces=max_pieces, max_tgt_pieces=max_pieces, seed=1)


def rows(ids: torch.Tensor) -> list[list[int]]:
    """The ids of each padded row before its EOS."""
    return [row[: row.index(EOS_ID)] for row in ids.tolist()]


def test_sampled_batches_are_fixed_by_seed_epoch_and_batch(vocabs: tuple[Vocab, Vocab]) -> None:
    indices = [0, 1, 2, 3, 4, 5]
    first = sampler(vocabs).sampled_batch(indices, epoch=0, batch_index=3)
    sampler(vocabs).sampled_batch(indices, epoch=5, batch_index=1)  # other draws in between change nothing
    again = sampler(vocabs).sampled_batch(indices, epoch=0, batch_index=3)
    assert torch.equal(again.src, first.src) and torch.equal(again.tgt_out, first.tgt_out)
    epochs = {str(sampler(vocabs).sampled_batch(indices, epoch, 3).src.tolist()) for epoch in range(4)}
    assert len(epochs) > 1
    batches = {str(sampler(vocabs).sampled_batch(indices, 0, index).tgt_out.tolist()) for index in range(4)}
    assert len(batches) > 1


def test_sampled_batches_decode_to_the_text_and_keep_batch_layout(vocabs: tuple[Vocab, Vocab]) -> None:
    src_vocab, tgt_vocab = vocabs
    batch = sampler(vocabs).sampled_batch([4, 0, 2], epoch=2, batch_index=0)
    assert src_vocab.decode(rows(batch.src)) == [ENGLISH[4], ENGLISH[0], ENGLISH[2]]
    assert tgt_vocab.decode(rows(batch.tgt_out)) == [HINDI[4], HINDI[0], HINDI[2]]
    assert batch.src_lengths.tolist() == [len(r) + 1 for r in rows(batch.src)]
    shifted = batch.tgt_out[:, :-1].masked_fill(batch.tgt_out[:, :-1] == EOS_ID, PAD_ID)
    assert batch.tgt_in[:, 0].eq(BOS_ID).all() and torch.equal(batch.tgt_in[:, 1:], shifted)


def test_samples_longer_than_the_limit_are_cut_and_still_end_with_eos(vocabs: tuple[Vocab, Vocab]) -> None:
    batch = sampler(vocabs, max_pieces=4).sampled_batch([0, 1, 4], epoch=0, batch_index=0)
    assert batch.src.shape[1] == batch.tgt_out.shape[1] == 5
    assert batch.src[:, 4].eq(EOS_ID).all() and batch.tgt_out[:, 4].eq(EOS_ID).all()


def test_word_dropout_replaces_only_words_and_keeps_the_gold_output() -> None:
    lengths = [3 + i % 37 for i in range(400)]  # about 8,000 words a side: the rate is checked to 6 sigma
    corpus = EncodedCorpus.from_lists([[5 + i % 7 for i in range(n)] for n in lengths],
                                      [[6 + i % 5 for i in range(n)] for n in reversed(lengths)])
    batch = stored_batch(corpus, list(range(len(corpus.src_lengths))))
    torch.manual_seed(0)
    dropped = batch.with_word_dropout(0.3, 0.2)
    for before, after, rate in ((batch.src, dropped.src, 0.3), (batch.tgt_in, dropped.tgt_in, 0.2)):
        words = (before != PAD_ID) & (before != BOS_ID) & (before != EOS_ID)
        assert torch.equal(after[~words], before[~words])  # padding, BOS and EOS stay
        changed = after != before
        assert (after[changed] == UNK_ID).all() and not (changed & ~words).any()
        assert abs(changed.sum().item() / words.sum().item() - rate) < 0.03
    assert torch.equal(dropped.tgt_out, batch.tgt_out) and torch.equal(dropped.src_lengths, batch.src_lengths)
    assert batch.with_word_dropout(0.0, 0.0).src is batch.src
