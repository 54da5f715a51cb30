"""SentencePiece vocabularies with fixed special ids, kept as bytes so checkpoints carry them."""

from __future__ import annotations

import io
import random
from collections.abc import Iterable

import sentencepiece as spm

from seq2seq.config import VocabConfig
from seq2seq.errors import UserError
from seq2seq.special_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "Vocab", "train_vocab"]

# Threads SentencePiece trains a vocabulary with (once per data and vocab config).
TRAINING_THREADS = 2


class Vocab:
    """One side's SentencePiece model: text <-> piece ids."""

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self.model_proto)
        except RuntimeError as error:
            raise UserError(f"invalid SentencePiece model ({error})") from None
        specials = (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id())
        if specials != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise UserError(f"SentencePiece model has special ids {specials}; seq2seq needs pad 0, unk 1, bos 2, eos 3")

    def __len__(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self._sp.encode(texts, out_type=int)

    def sample(self, texts: list[str], alpha: float, nbest: int, seed: int) -> list[list[int]]:
        """A random segmentation of each text (Kudo 2018): the same for the same seed, another for another.

        `seed` is in [0, 2**32 - 1). alpha smooths the segmentation distribution (unigram) or is the
        merge-dropout rate (BPE); nbest limits the candidates (-1 = all, unigram only).
        """
        spm.set_random_generator_seed(seed)
        # one thread: each call's worker seeds its own generator from this seed, and with several
        # workers which one takes which text varies from call to call
        return self._sp.encode(texts, out_type=int, enable_sampling=True, alpha=alpha, nbest_size=nbest,
                               num_threads=1)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self._sp.decode(ids)

    def pieces(self, ids: list[int]) -> list[str]:
        return [self._sp.id_to_piece(i) for i in ids]

    def piece_id(self, piece: str) -> int:
        return self._sp.piece_to_id(piece)


def train_vocab(texts: list[str], size: int, config: VocabConfig, seed: int) -> Vocab:
    """Train a SentencePiece model in memory on (a sample of) the given sentences."""
    sample: Iterable[str] = texts
    if config.sample_size and len(texts) > config.sample_size:
        sample = random.Random(seed).sample(texts, config.sample_size)
    sample = [t for t in sample if t]
    if not sample:
        raise UserError("cannot train a vocabulary: the training data has no text")
    proto = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sample),
            model_writer=proto,
            model_type=config.type,
            vocab_size=size,
            character_coverage=config.character_coverage,
            byte_fallback=config.byte_fallback,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            hard_vocab_limit=False,
            minloglevel=2,
            num_threads=TRAINING_THREADS,
        )
    except RuntimeError as error:
        raise UserError(f"vocab: SentencePiece training failed ({error}); try a smaller vocab size") from None
    return Vocab(proto.getvalue())
