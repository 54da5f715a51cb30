"""Encoded corpora and token-budget batches: length buckets, padding masks, resumable order."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID


@dataclass
class EncodedCorpus:
    """Piece ids of both sides, stored flat with offsets (compact, and mmap-friendly)."""

    src_ids: np.ndarray  # (total_src_pieces,) int32
    src_offsets: np.ndarray  # (pairs + 1,) int64
    tgt_ids: np.ndarray
    tgt_offsets: np.ndarray

    @classmethod
    def from_lists(cls, src: list[list[int]], tgt: list[list[int]]) -> EncodedCorpus:
        def flatten(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
            offsets = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum([len(r) for r in rows], out=offsets[1:])
            flat = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(offsets[-1]))
            return flat, offsets

        return cls(*flatten(src), *flatten(tgt))

    @classmethod
    def open(cls, folder: Path) -> EncodedCorpus:
        """Map a corpus written by EncodedCorpusWriter; pages load on demand and are shared by processes."""
        dtype = np.dtype(json.loads((folder / "format.json").read_text())["dtype"])

        def ids(name: str) -> np.ndarray:
            path = folder / name
            return np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.zeros(0, dtype)

        return cls(ids("src_ids.bin"), np.load(folder / "src_offsets.npy"),
                   ids("tgt_ids.bin"), np.load(folder / "tgt_offsets.npy"))

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


class EncodedCorpusWriter:
    """Appends encoded pairs to flat files, so a corpus of any size is never whole in memory."""

    def __init__(self, folder: Path, vocab_size: int):
        self.folder = folder
        self.dtype = np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32)
        self._files = {side: (folder / f"{side}_ids.bin").open("wb") for side in ("src", "tgt")}
        self._lengths: dict[str, list[np.ndarray]] = {"src": [], "tgt": []}

    def append(self, src: list[list[int]], tgt: list[list[int]]) -> None:
        for side, rows in (("src", src), ("tgt", tgt)):
            lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            flat = np.fromiter((i for r in rows for i in r), dtype=self.dtype, count=int(lengths.sum()))
            self._files[side].write(flat.tobytes())
            self._lengths[side].append(lengths)

    def close(self) -> int:
        """Flush the id files, write the offsets; returns the number of pairs."""
        pairs = 0
        for side, handle in self._files.items():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            lengths = np.concatenate(self._lengths[side]) if self._lengths[side] else np.zeros(0, np.int64)
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            np.save(self.folder / f"{side}_offsets.npy", offsets)
            pairs = len(lengths)
        (self.folder / "format.json").write_text(json.dumps({"dtype": self.dtype.name, "pairs": pairs}))
        return pairs


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


def collate(corpus: EncodedCorpus, indices: list[int]) -> Batch:
    src, src_lengths = pad_sources([corpus.src(i) for i in indices])
    targets = [corpus.tgt(i) for i in indices]
    tgt_len = max(len(t) for t in targets) + 1
    tgt_in = torch.full((len(indices), tgt_len), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((len(indices), tgt_len), PAD_ID, dtype=torch.long)
    for i, row in enumerate(targets):
        ids = torch.as_tensor(row.astype(np.int64))
        tgt_in[i, 0] = BOS_ID
        tgt_in[i, 1 : len(row) + 1] = ids
        tgt_out[i, : len(row)] = ids
        tgt_out[i, len(row)] = EOS_ID
    return Batch(src, src_lengths, tgt_in, tgt_out)


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
