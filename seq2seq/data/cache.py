"""The encoded corpus and its on-disk cache format: flat id (and text) files with int64 offsets.

A folder holds src_ids.bin / tgt_ids.bin (the pieces of every pair, back to back),
src_offsets.npy / tgt_offsets.npy (where each pair starts), optionally src_text.bin /
tgt_text.bin with their offsets (the cleaned text, for subword sampling), and format.json
(id dtype, pair count, whether text is kept). Everything is memory-mapped when read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
