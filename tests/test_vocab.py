"""SentencePiece vocabularies: fixed special ids, byte fallback, lossless round trips."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seq2seq.config import VocabConfig
from seq2seq.errors import UserError
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocab, train_vocab

HINDI = ["मैं भूखा हूँ।", "स्टेशन कहाँ है?", "आप कैसे हैं?", "यह एक परीक्षा है।", "मुझे पानी चाहिए।"] * 40


@pytest.fixture(scope="module")
def hindi_vocab() -> Vocab:
    return train_vocab(HINDI, 300, VocabConfig(), seed=1)


def test_special_ids_are_fixed(hindi_vocab: Vocab) -> None:
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert hindi_vocab.pieces([PAD_ID, UNK_ID, BOS_ID, EOS_ID]) == ["<pad>", "<unk>", "<s>", "</s>"]


@pytest.mark.parametrize("text", ["आप कैसे हैं?", "emoji 🙂 and 日本語 never seen", "मिट्टी ü"])
def test_byte_fallback_round_trips_unseen_characters(hindi_vocab: Vocab, text: str) -> None:
    ids = hindi_vocab.encode([text])[0]
    assert UNK_ID not in ids
    assert hindi_vocab.decode([ids]) == [text]


def test_model_bytes_reload_identically(hindi_vocab: Vocab) -> None:
    again = Vocab(hindi_vocab.model_proto)
    assert len(again) == len(hindi_vocab)
    assert again.encode(HINDI[:5]) == hindi_vocab.encode(HINDI[:5])


def test_bpe_and_sampling_options() -> None:
    vocab = train_vocab(HINDI * 5, 300, VocabConfig(type="bpe", sample_size=100), seed=1)
    assert vocab.decode(vocab.encode(HINDI[:3])) == HINDI[:3]


def test_invalid_model_bytes_are_a_user_error() -> None:
    with pytest.raises(UserError, match="invalid SentencePiece model"):
        Vocab(b"not a model")


def test_empty_training_text_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no text"):
        train_vocab(["", ""], 50, VocabConfig(), seed=1)


def test_sampling_is_fixed_by_the_seed_and_decodes_to_the_text(hindi_vocab: Vocab) -> None:
    texts = HINDI[:5] * 4
    first = hindi_vocab.sample(texts, alpha=0.1, nbest=-1, seed=5)
    other = hindi_vocab.sample(texts, alpha=0.1, nbest=-1, seed=6)
    assert hindi_vocab.sample(texts, alpha=0.1, nbest=-1, seed=5) == first  # a call in between changes nothing
    assert other != first and first != hindi_vocab.encode(texts)
    assert hindi_vocab.decode(first) == hindi_vocab.decode(other) == texts


def test_bpe_sampling_is_merge_dropout() -> None:
    vocab = train_vocab(HINDI * 5, 300, VocabConfig(type="bpe"), seed=1)
    texts = HINDI[:5] * 4
    sampled = vocab.sample(texts, alpha=0.3, nbest=-1, seed=1)
    assert sampled == vocab.sample(texts, alpha=0.3, nbest=-1, seed=1) and sampled != vocab.encode(texts)
    assert sum(map(len, sampled)) > sum(map(len, vocab.encode(texts)))  # dropped merges leave more pieces
    assert vocab.decode(sampled) == texts


def test_models_and_search_know_the_special_ids_without_sentencepiece() -> None:
    """The special ids live in a leaf module: building a model and searching never load SentencePiece."""
    code = ("import sys, seq2seq.model.build, seq2seq.search, seq2seq.loss\n"
            "print('sentencepiece' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False"]
    import seq2seq.special_ids as leaf
    assert (leaf.PAD_ID, leaf.UNK_ID, leaf.BOS_ID, leaf.EOS_ID) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
