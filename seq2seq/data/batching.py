"""Encoded corpora and token-budget batches: length buckets, padding masks, resumable order."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocab


def _utf8_rows(sentences: list[str]) -> tuple[bytes, np.ndarray]:
    """Sentences as one run of UTF-8 bytes and the byte length of each."""
    encoded = [sentence.encode("utf-8") for sentence in sentences]
    return b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))


@dataclass
class Texts:
    """Sentences stored as flat UTF-8 bytes with offsets, like the ids: memory-mapped, so any size fits."""

    data: np.ndarray  # (total_bytes,) uint8
    offsets: np.ndarray  # (sentences + 1,) int64

    @classmethod
    def from_list(cls, sentences: list[str]) -> Texts:
        flat, lengths = _utf8_rows(sentences)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.frombuffer(flat, dtype=np.uint8), offsets)

    def __getitem__(self, index: int) -> str:
        return self.data[self.offsets[index]:self.offsets[index + 1]].tobytes().decode("utf-8")


@dataclass
class EncodedCorpus:
    """Piece ids of both sides, stored flat with offsets (compact, and mmap-friendly).

    The cleaned text of both sides is kept too when training re-segments it (subword sampling).
    """

    src_ids: np.ndarray  # (total_src_pieces,) int32
    src_offsets: np.ndarray  # (pairs + 1,) int64
    tgt_ids: np.ndarray
    tgt_offsets: np.ndarray
    src_text: Texts | None = None
    tgt_text: Texts | None = None

    @classmethod
    def from_lists(cls, src: list[list[int]], tgt: list[list[int]],
                   texts: tuple[list[str], list[str]] | None = None) -> EncodedCorpus:
        def flatten(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
            offsets = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum([len(r) for r in rows], out=offsets[1:])
            flat = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(offsets[-1]))
            return flat, offsets

        src_text, tgt_text = (Texts.from_list(texts[0]), Texts.from_list(texts[1])) if texts else (None, None)
        return cls(*flatten(src), *flatten(tgt), src_text, tgt_text)

    @classmethod
    def open(cls, folder: Path) -> EncodedCorpus:
        """Map a corpus written by EncodedCorpusWriter; pages load on demand and are shared by processes.

        Raises DamagedCache when its files disagree with each other or with format.json (a torn
        write, a truncated copy), so that a broken cache is rebuilt instead of trained on.
        """
        try:
            layout = json.loads((folder / "format.json").read_text())
            dtype, pairs, with_text = np.dtype(layout["dtype"]), int(layout["pairs"]), bool(layout["text"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DamagedCache(f"format.json: {error}") from None
        texts = [Texts(*_map_rows(folder, f"{side}_text.bin", f"{side}_text_offsets.npy", np.dtype(np.uint8), pairs))
                 for side in ("src", "tgt")] if with_text else [None, None]
        return cls(*_map_rows(folder, "src_ids.bin", "src_offsets.npy", dtype, pairs),
                   *_map_rows(folder, "tgt_ids.bin", "tgt_offsets.npy", dtype, pairs), *texts)

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    @property
    def src_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    @property
    def tgt_lengths(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def src(self, index: int) -> np.ndarray:
        return self.src_ids[self.src_offsets[index]:self.src_offsets[index + 1]]

    def tgt(self, index: int) -> np.ndarray:
        return self.tgt_ids[self.tgt_offsets[index]:self.tgt_offsets[index + 1]]

    def select(self, indices: np.ndarray) -> EncodedCorpus:
        return EncodedCorpus.from_lists(
            [self.src(int(i)).tolist() for i in indices], [self.tgt(int(i)).tolist() for i in indices]
        )


class DamagedCache(Exception):
    """A cached folder whose files disagree: it must be rebuilt, never read."""


def _map_rows(folder: Path, flat_name: str, offsets_name: str, dtype: np.dtype, rows: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """A flat file (memory-mapped) and its offsets, once both agree with each other and with `rows`."""
    try:
        offsets = np.load(folder / offsets_name)
        size = (folder / flat_name).stat().st_size
    except (OSError, ValueError, EOFError) as error:
        raise DamagedCache(f"{offsets_name} or {flat_name}: {error}") from None
    if offsets.dtype != np.int64 or offsets.shape != (rows + 1,) or offsets[0] != 0 or (np.diff(offsets) < 0).any():
        raise DamagedCache(f"{offsets_name} does not hold the {rows + 1:,} increasing offsets from 0 "
                           f"that format.json's {rows:,} pairs need")
    if size != int(offsets[-1]) * dtype.itemsize:
        raise DamagedCache(f"{flat_name} has {size:,} bytes but its offsets need {int(offsets[-1]) * dtype.itemsize:,}")
    return (np.memmap(folder / flat_name, dtype=dtype, mode="r") if size else np.zeros(0, dtype)), offsets


class _RowsWriter:
    """Rows appended to one flat file; only their lengths (8 bytes a row) stay in memory."""

    def __init__(self, path: Path):
        self._file = path.open("wb")
        self._lengths: list[np.ndarray] = []

    def append(self, flat: bytes, lengths: np.ndarray) -> None:
        self._file.write(flat)
        self._lengths.append(lengths)

    def close(self, offsets_path: Path) -> int:
        """Close the flat file and save the offsets of its rows; returns how many rows it has."""
        self._file.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        np.save(offsets_path, offsets)
        return len(lengths)


class EncodedCorpusWriter:
    """Appends encoded pairs to flat files, so a corpus of any size is never whole in memory.

    Nothing is fsynced here: the folder is made durable as a whole when it is published. With
    `keep_text`, every append also takes the pairs' text, which subword sampling re-segments.
    """

    def __init__(self, folder: Path, vocab_size: int, keep_text: bool = False):
        self.folder = folder
        self.dtype = np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32)
        self._ids = {side: _RowsWriter(folder / f"{side}_ids.bin") for side in ("src", "tgt")}
        self._texts = {side: _RowsWriter(folder / f"{side}_text.bin") for side in ("src", "tgt")} if keep_text else {}

    def append(self, src: list[list[int]], tgt: list[list[int]],
               texts: tuple[list[str], list[str]] | None = None) -> None:
        for side, rows in (("src", src), ("tgt", tgt)):
            lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            flat = np.fromiter((i for r in rows for i in r), dtype=self.dtype, count=int(lengths.sum()))
            self._ids[side].append(flat.tobytes(), lengths)
        if self._texts:
            if texts is None:
                raise ValueError("this writer keeps text: append needs the texts of the pairs")
            for side, sentences in zip(("src", "tgt"), texts):
                self._texts[side].append(*_utf8_rows(sentences))

    def close(self) -> int:
        """Close the flat files, write the offsets and format.json; returns the number of pairs."""
        pairs = {side: rows.close(self.folder / f"{side}_offsets.npy") for side, rows in self._ids.items()}
        for side, rows in self._texts.items():
            rows.close(self.folder / f"{side}_text_offsets.npy")
        layout = {"dtype": self.dtype.name, "pairs": pairs["src"], "text": bool(self._texts)}
        (self.folder / "format.json").write_text(json.dumps(layout))
        return pairs["src"]


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


def collate(corpus: EncodedCorpus, indices: list[int]) -> Batch:
    """The batch of these pairs in their stored (best) segmentation."""
    return pad_pairs([corpus.src(i) for i in indices], [corpus.tgt(i) for i in indices])


@dataclass
class SubwordSampler:
    """Subword regularisation (Kudo 2018): every use of a training pair gets a fresh random segmentation.

    Seeded by (seed, epoch, batch index), so a resumed run sees exactly the pieces it would have
    seen. Batches are cut by best-segmentation lengths; a sample longer than its side's piece
    limit is cut to the limit (collate's EOS still follows it).
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

    def collate(self, indices: list[int], epoch: int, batch_index: int) -> Batch:
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
        # +1 for the EOS (source) and BOS/EOS (target) each sequence gains in collate
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
