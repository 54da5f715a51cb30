"""Parallel corpora: read aligned files, clean training pairs, hold out test pairs."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from seq2seq.config import CleaningConfig, CorpusConfig, DataConfig
from seq2seq.errors import UserError


@dataclass
class Corpus:
    name: str
    src: list[str]
    tgt: list[str]

    def __len__(self) -> int:
        return len(self.src)


@dataclass
class CleaningReport:
    """How many pairs each rule dropped, so a user can see what cleaning cost."""

    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, rule: str) -> None:
        self.dropped[rule] = self.dropped.get(rule, 0) + 1

    def summary(self) -> str:
        total = self.kept + sum(self.dropped.values())
        parts = ", ".join(f"{rule} {count}" for rule, count in sorted(self.dropped.items())) or "none"
        return f"kept {self.kept:,} of {total:,} pairs; dropped: {parts}"


def normalize_line(line: str) -> str:
    """NFC and collapsed whitespace: the same text always becomes the same pieces."""
    return " ".join(unicodedata.normalize("NFC", line).split())


def _read_lines(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
            return [line.rstrip("\n").rstrip("\r") for line in handle]
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None


def missing_file_error(path: Path, relative: str, data: DataConfig) -> UserError:
    fixes = [f"pass --data-dir DIR for a folder that holds {relative} (e.g. ../shared/data)"]
    if data.download:
        fixes.insert(0, f"run `python -m seq2seq download {data.download} --dir {data.root}`")
    return UserError(f"{path}: data file not found; " + " or ".join(fixes))


def read_corpus(spec: CorpusConfig, data: DataConfig) -> Corpus:
    """Read one corpus; misaligned files are an error that names both line counts."""
    root = Path(data.root)
    if spec.tsv:
        path = root / spec.tsv
        if not path.is_file():
            raise missing_file_error(path, spec.tsv, data)
        src, tgt = [], []
        for number, line in enumerate(_read_lines(path), 1):
            fields = line.split("\t")
            if len(fields) < 2:
                raise UserError(f"{path}:{number}: expected source<TAB>target, found {len(fields)} field(s)")
            src.append(normalize_line(fields[0]))
            tgt.append(normalize_line(fields[1]))
        return Corpus(spec.name, src, tgt)
    src_path, tgt_path = root / spec.src, root / spec.tgt
    for path, relative in ((src_path, spec.src), (tgt_path, spec.tgt)):
        if not path.is_file():
            raise missing_file_error(path, relative, data)
    src = [normalize_line(line) for line in _read_lines(src_path)]
    tgt = [normalize_line(line) for line in _read_lines(tgt_path)]
    if len(src) != len(tgt):
        raise UserError(
            f"{src_path} has {len(src):,} lines but {tgt_path} has {len(tgt):,}; "
            "the two sides must be aligned line by line"
        )
    return Corpus(spec.name, src, tgt)


def clean(corpus: Corpus, rules: CleaningConfig, report: CleaningReport) -> Corpus:
    """Drop empty, too short, too long and badly length-matched pairs."""
    src_kept, tgt_kept = [], []
    for src, tgt in zip(corpus.src, corpus.tgt):
        src_words, tgt_words = len(src.split()), len(tgt.split())
        if src_words == 0 or tgt_words == 0:
            report.drop("empty")
        elif min(src_words, tgt_words) < rules.min_words:
            report.drop("too short")
        elif max(src_words, tgt_words) > rules.max_words:
            report.drop("too long")
        elif max(src_words, tgt_words) > rules.max_ratio * min(src_words, tgt_words) + rules.ratio_slack:
            report.drop("length ratio")
        else:
            src_kept.append(src)
            tgt_kept.append(tgt)
    report.kept += len(src_kept)
    return Corpus(corpus.name, src_kept, tgt_kept)


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


@dataclass
class Splits:
    train: Corpus
    dev: Corpus | None
    tests: list[Corpus]
    report: CleaningReport


def load_splits(data: DataConfig, seed: int) -> Splits:
    """All corpora of a config: the cleaned training mix, dev, and every test set."""
    report = CleaningReport()
    train_src: list[str] = []
    train_tgt: list[str] = []
    tests = []
    for spec in data.train:
        corpus = read_corpus(spec, data)
        if spec.holdout:
            corpus, held = split_holdout(corpus, spec.holdout, seed)
            tests.append(held)
        corpus = clean(corpus, data.cleaning, report)
        train_src.extend(corpus.src * spec.upsample)
        train_tgt.extend(corpus.tgt * spec.upsample)
    dev = read_corpus(data.dev, data) if data.dev is not None else None
    tests = [read_corpus(spec, data) for spec in data.test] + tests
    if not train_src:
        raise UserError("data.train: no training pairs are left after cleaning; check data.cleaning and the files")
    return Splits(Corpus("train", train_src, train_tgt), dev, tests, report)
