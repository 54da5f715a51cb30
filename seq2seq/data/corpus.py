"""Parallel corpora: stream aligned files, hold out test pairs, gather the evaluation sets."""

from __future__ import annotations

import itertools
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seq2seq.config import CorpusConfig, DataConfig
from seq2seq.errors import UserError


@dataclass
class Corpus:
    name: str
    src: list[str]
    tgt: list[str]

    def __len__(self) -> int:
        return len(self.src)


def normalize_line(line: str) -> str:
    """NFC and collapsed whitespace: the same text always becomes the same pieces."""
    return " ".join(unicodedata.normalize("NFC", line).split())


def _lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 file without their ending; undecodable bytes become U+FFFD."""
    try:
        with path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
            for line in handle:
                yield line.rstrip("\n").rstrip("\r")
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None


def missing_file_error(path: Path, relative: str, data: DataConfig) -> UserError:
    fixes = [f"pass --data-dir DIR for a folder that holds {relative} (e.g. ../shared/data)"]
    if data.download:
        fixes.insert(0, f"run `python -m seq2seq download {data.download} --dir {data.root}`")
    return UserError(f"{path}: data file not found; " + " or ".join(fixes))


def corpus_files(spec: CorpusConfig) -> list[str]:
    """The files of one corpus, relative to data.root."""
    return [spec.tsv] if spec.tsv else [spec.src, spec.tgt]


def data_files(data: DataConfig) -> list[Path]:
    """Every file a config reads (training, dev and test corpora), relative to data.root."""
    specs = [*data.train, *([data.dev] if data.dev is not None else []), *data.test]
    return [Path(name) for spec in specs for name in corpus_files(spec)]


def _check_exist(relatives: list[str], data: DataConfig) -> None:
    for relative in relatives:
        if not (Path(data.root) / relative).is_file():
            raise missing_file_error(Path(data.root) / relative, relative, data)


def check_files_exist(data: DataConfig) -> None:
    """Fail on the first missing file before anything is read or written."""
    _check_exist([str(relative) for relative in data_files(data)], data)


def iter_pairs(spec: CorpusConfig, data: DataConfig) -> Iterator[tuple[str, str]]:
    """Normalised (source, target) pairs of one corpus, streamed so any size fits in memory."""
    root = Path(data.root)
    _check_exist(corpus_files(spec), data)
    if spec.tsv:
        path = root / spec.tsv
        for number, line in enumerate(_lines(path), 1):
            fields = line.split("\t")
            if len(fields) < 2:
                raise UserError(f"{path}:{number}: expected source<TAB>target, found {len(fields)} field(s)")
            yield normalize_line(fields[0]), normalize_line(fields[1])
        return
    src_path, tgt_path = root / spec.src, root / spec.tgt
    for src, tgt in itertools.zip_longest(_lines(src_path), _lines(tgt_path)):
        if src is None or tgt is None:
            raise UserError(
                f"{src_path} has {_count_lines(src_path):,} lines but {tgt_path} has {_count_lines(tgt_path):,}; "
                "the two sides must be aligned line by line"
            )
        yield normalize_line(src), normalize_line(tgt)


def _count_lines(path: Path) -> int:
    return sum(1 for _ in _lines(path))


def read_corpus(spec: CorpusConfig, data: DataConfig) -> Corpus:
    """One corpus in memory (dev, test and held-out sets are small)."""
    pairs = list(iter_pairs(spec, data))
    return Corpus(spec.name, [src for src, _ in pairs], [tgt for _, tgt in pairs])


def split_holdout(corpus: Corpus, count: int, seed: int) -> tuple[Corpus, Corpus]:
    """Hold out `count` pairs grouped by source sentence, so no test source is ever trained on."""
    by_source: dict[str, list[int]] = {}
    for index, src in enumerate(corpus.src):
        by_source.setdefault(src, []).append(index)
    sources = sorted(by_source)
    random.Random(seed).shuffle(sources)
    held: set[int] = set()
    for src in sources:
        if len(held) >= count:
            break
        held.update(by_source[src])
    keep = [i for i in range(len(corpus)) if i not in held]
    test = sorted(held)
    return (
        Corpus(corpus.name, [corpus.src[i] for i in keep], [corpus.tgt[i] for i in keep]),
        Corpus(corpus.name, [corpus.src[i] for i in test], [corpus.tgt[i] for i in test]),
    )


def training_pairs(spec: CorpusConfig, data: DataConfig, seed: int) -> Iterator[tuple[str, str]]:
    """The pairs of one training corpus that are not held out, before cleaning."""
    if not spec.holdout:
        yield from iter_pairs(spec, data)
        return
    kept, _ = split_holdout(read_corpus(spec, data), spec.holdout, seed)
    yield from zip(kept.src, kept.tgt)


@dataclass
class EvalSets:
    """Dev and test corpora of a config, held-out test sets included."""

    dev: Corpus | None
    tests: list[Corpus]

    def sentences(self) -> Iterator[str]:
        """Both sides of every evaluation pair (training pairs that match them are dropped)."""
        for corpus in [*([self.dev] if self.dev is not None else []), *self.tests]:
            yield from corpus.src
            yield from corpus.tgt


def load_eval_sets(data: DataConfig, seed: int) -> EvalSets:
    """Read dev and test sets, and cut the held-out test sets out of their training corpora."""
    held = [split_holdout(read_corpus(spec, data), spec.holdout, seed)[1] for spec in data.train if spec.holdout]
    dev = read_corpus(data.dev, data) if data.dev is not None else None
    return EvalSets(dev, [read_corpus(spec, data) for spec in data.test] + held)
