"""Training data made once per content: cleaned pairs -> SentencePiece models -> memory-mapped ids.

With subword sampling the cleaned text is kept beside the ids, memory-mapped the same way, and
each training batch is segmented afresh from it.

Each product is cached under `data.cache_dir` in a folder named by a hash of everything that
decides it (file contents, corpus specs, cleaning rules, vocabulary settings, the models
themselves), so later runs and every torchrun process reuse it, and a change anywhere makes
a new one. Nothing here holds the whole corpus in memory: pairs stream through cleaning and
encoding in chunks, and SentencePiece trains on a reservoir sample.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from seq2seq.config import Config
from seq2seq.data.batching import Batch, SubwordSampler, stored_batch
from seq2seq.data.cache import DamagedCache, EncodedCorpus, EncodedCorpusWriter
from seq2seq.data.cleaning import PairFilter
from seq2seq.data.corpus import EvalSets, data_files, training_pairs
from seq2seq.errors import UserError
from seq2seq.files import atomic_write, removed_if_unfinished, sha256_file
from seq2seq.vocab import Vocab, train_vocab

log = logging.getLogger("seq2seq")

# Pairs encoded per SentencePiece call: large enough to amortise the call, small enough to stay lean.
CHUNK_PAIRS = 20_000
VOCAB_FILES = {"src": "src.spm.model", "tgt": "tgt.spm.model"}
VOCAB_CHECKSUMS = "checksums.json"
# Part of every cache key. Bump it in the same commit as any change to what a given config and
# files produce: cleaning rules or their order, normalisation, holdout or reservoir sampling,
# vocabulary training, encoding, or the cache's file layout. Caches of other versions are then ignored.
DATA_FORMAT_VERSION = 2
CACHE_ADVICE = "the half-built cache entry was removed; free some space or set data.cache_dir to a larger disk"


@dataclass
class CleaningReport:
    """How many pairs each rule dropped, so a user can see what cleaning cost."""

    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, rule: str, count: int = 1) -> None:
        self.dropped[rule] = self.dropped.get(rule, 0) + count

    def summary(self) -> str:
        total = self.kept + sum(self.dropped.values())
        parts = ", ".join(f"{rule} {count:,}" for rule, count in sorted(self.dropped.items())) or "none"
        return f"kept {self.kept:,} of {total:,} pairs; dropped: {parts}"


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def data_fingerprint(config: Config) -> str:
    """What decides the cleaned training pairs: the bytes of every file read, the specs, rules and seed."""
    data = config.data
    contents = {str(relative): sha256_file(Path(data.root) / relative) for relative in data_files(data)}
    specs = [dataclasses.asdict(spec) for spec in data.train]
    return _key(DATA_FORMAT_VERSION, contents, specs, dataclasses.asdict(data.cleaning), config.data_seed)


def cleaned_pairs(config: Config, eval_sets: EvalSets, report: CleaningReport) -> Iterator[tuple[int, str, str]]:
    """(corpus index, source, target) of every training pair that passes cleaning, in file order."""
    pair_filter = PairFilter(config.data.cleaning, eval_sets.sentences())
    for index, spec in enumerate(config.data.train):
        for src, tgt in tqdm(training_pairs(spec, config.data, config.data_seed), desc=f"reading {spec.name}",
                             unit=" pairs", unit_scale=True, leave=False, mininterval=1.0):
            reason = pair_filter.reject_reason(src, tgt)
            if reason is None:
                report.kept += 1
                yield index, src, tgt
            else:
                report.drop(reason)


def vocab_sample(config: Config, eval_sets: EvalSets) -> tuple[list[str], list[str]]:
    """A uniform sample of vocab.sample_size cleaned pairs (reservoir sampling: one pass, bounded memory)."""
    size = config.vocab.sample_size
    rng = random.Random(config.data_seed)
    src: list[str] = []
    tgt: list[str] = []
    for seen, (_, s, t) in enumerate(cleaned_pairs(config, eval_sets, CleaningReport())):
        if not size or seen < size:
            src.append(s)
            tgt.append(t)
            continue
        slot = rng.randrange(seen + 1)
        if slot < size:
            src[slot], tgt[slot] = s, t
    return src, tgt


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _publish(staging: Path, folder: Path) -> None:
    """Rename a finished folder into place; if another process got there first, theirs stays.

    Files, then the folder, reach the disk before the rename and the parent after it: a crash
    leaves either no cache folder or a whole one, never a renamed folder of empty files.
    """
    for file in staging.iterdir():
        _fsync(file)
    _fsync(staging)
    try:
        os.replace(staging, folder)
    except OSError:
        if not folder.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    _fsync(folder.parent)


def _reusable(folder: Path, what: str, verify: Callable[[Path], None]) -> bool:
    """Whether a cached folder exists and passes `verify`; a damaged one is moved away to be rebuilt."""
    if not folder.exists():
        return False
    try:
        verify(folder)
    except DamagedCache as error:
        log.warning("%s: %s is damaged (%s); rebuilding it", what, folder, error)
        trash = folder.parent / f".{folder.name}.{os.getpid()}.damaged"
        shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(folder, trash)  # a rename, so a process still reading it keeps its files
        except FileNotFoundError:
            pass  # another process moved it first
        shutil.rmtree(trash, ignore_errors=True)
        return False
    log.info("%s: reusing %s", what, folder)
    return True


def _staging(cache: Path, name: str) -> Path:
    """A new folder of this process's own: a process in another container sharing the cache may have our pid."""
    staging = cache / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    staging.mkdir(parents=True)
    return staging


def _verify_vocabs(folder: Path) -> None:
    try:
        expected = json.loads((folder / VOCAB_CHECKSUMS).read_text())
        found = {name: sha256_file(folder / name) for name in VOCAB_FILES.values()}
    except (OSError, ValueError) as error:
        raise DamagedCache(str(error)) from None
    if found != expected:
        raise DamagedCache(f"the models do not match {VOCAB_CHECKSUMS}")


def cached_vocabs(config: Config, eval_sets: EvalSets, fingerprint: str, cache: Path) -> Path:
    """The folder of both SentencePiece models for this data and vocab config, trained if new.

    A joint model is trained once on both sides and stored under both names, so that an id
    means the same piece on either side.
    """
    v = config.vocab
    # sampling only changes how training pairs are segmented later, not the models
    settings = dataclasses.asdict(dataclasses.replace(v, sampling_alpha=0.0, sampling_nbest=-1))
    folder = cache / f"vocab-{_key(fingerprint, settings, config.data_seed)}"
    if _reusable(folder, "vocabularies", _verify_vocabs):
        return folder
    # a pass of its own: cleaning the stream again later is cheaper than holding the cleaned corpus
    src, tgt = vocab_sample(config, eval_sets)
    if not src:
        raise UserError("data.train: no training pairs are left after cleaning; check data.cleaning and the files")
    staging = _staging(cache, folder.name)
    jobs = [(("src", "tgt"), src + tgt, v.src_size)] if v.joint else [(("src",), src, v.src_size),
                                                                      (("tgt",), tgt, v.tgt_size)]
    with removed_if_unfinished(staging, CACHE_ADVICE):
        for sides, texts, size in jobs:
            log.info("training the %s vocabulary (%s, %d pieces) on %s sentences", " and ".join(sides), v.type,
                     size, f"{len(texts):,}")
            proto = train_vocab(texts, size, v, config.data_seed).model_proto
            for side in sides:
                (staging / VOCAB_FILES[side]).write_bytes(proto)
            texts.clear()
        checksums = {name: sha256_file(staging / name) for name in VOCAB_FILES.values()}
        (staging / VOCAB_CHECKSUMS).write_text(json.dumps(checksums))
        _publish(staging, folder)
    return folder


def keeps_text(config: Config) -> bool:
    """Whether the encoded corpus keeps its text: only subword sampling reads it, and it costs disk."""
    return config.vocab.sampling_alpha > 0


def encode_training_pairs(
    config: Config, eval_sets: EvalSets, src_vocab: Vocab, tgt_vocab: Vocab, folder: Path
) -> CleaningReport:
    """Stream cleaned pairs through SentencePiece into the flat id files of `folder` (and their text, to sample)."""
    data = config.data
    report = CleaningReport()
    writer = EncodedCorpusWriter(folder, max(len(src_vocab), len(tgt_vocab)), keeps_text(config))
    chunk: list[tuple[str, str]] = []
    chunk_corpus = 0

    def flush() -> None:
        src_ids = src_vocab.encode([s for s, _ in chunk])
        tgt_ids = tgt_vocab.encode([t for _, t in chunk])
        keep = [i for i in range(len(chunk))
                if 0 < len(src_ids[i]) <= data.max_src_pieces and 0 < len(tgt_ids[i]) <= data.max_tgt_pieces]
        if len(keep) < len(chunk):
            report.kept -= len(chunk) - len(keep)
            report.drop("too many pieces", len(chunk) - len(keep))
        for _ in range(data.train[chunk_corpus].upsample):
            writer.append([src_ids[i] for i in keep], [tgt_ids[i] for i in keep],
                          ([chunk[i][0] for i in keep], [chunk[i][1] for i in keep]))
        chunk.clear()

    for index, src, tgt in cleaned_pairs(config, eval_sets, report):
        if chunk and (index != chunk_corpus or len(chunk) >= CHUNK_PAIRS):
            flush()
        chunk_corpus = index
        chunk.append((src, tgt))
    if chunk:
        flush()
    pairs = writer.close()
    log.info("encoded %s training pairs (upsampling included) into %s", f"{pairs:,}", folder)
    return report


def prepare_training_data(config: Config, eval_sets: EvalSets, run_path: Path) -> Path:
    """Make sure the run folder holds both vocabularies and the encoded corpus exists; returns its folder.

    Runs in the main process only. A resumed run keeps the models already in its folder.
    """
    cache = Path(config.data.cache_dir) if config.data.cache_dir else run_path / "data"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"data.cache_dir: cannot create {cache} ({error.strerror})") from None
    log.info("hashing the data files")
    fingerprint = data_fingerprint(config)
    if not all((run_path / name).is_file() for name in VOCAB_FILES.values()):
        vocab_folder = cached_vocabs(config, eval_sets, fingerprint, cache)
        for name in VOCAB_FILES.values():
            proto = (vocab_folder / name).read_bytes()
            atomic_write(run_path / name, lambda stream, proto=proto: stream.write(proto))
    src_proto, tgt_proto = ((run_path / VOCAB_FILES[side]).read_bytes() for side in ("src", "tgt"))
    limits = (config.data.max_src_pieces, config.data.max_tgt_pieces)
    models = hashlib.sha256(src_proto + tgt_proto).hexdigest()
    folder = cache / f"corpus-{_key(fingerprint, models, limits, keeps_text(config))}"
    if _reusable(folder, "encoded corpus", _verify_corpus):
        return folder
    staging = _staging(cache, folder.name)
    with removed_if_unfinished(staging, CACHE_ADVICE):
        report = encode_training_pairs(config, eval_sets, Vocab(src_proto), Vocab(tgt_proto), staging)
        if report.kept == 0:
            raise UserError("data.train: no training pairs are left after cleaning; check data.cleaning and the files")
        (staging / "report.json").write_text(json.dumps(dataclasses.asdict(report)))
        _publish(staging, folder)
    return folder


@dataclass
class TrainingData:
    corpus: EncodedCorpus
    src_vocab: Vocab
    tgt_vocab: Vocab
    report: CleaningReport
    sampler: SubwordSampler | None

    def training_batch(self, indices: list[int], epoch: int, batch_index: int) -> Batch:
        """The training batch of these pairs: best segmentation, or a fresh sample per (epoch, batch)."""
        if self.sampler is None:
            return stored_batch(self.corpus, indices)
        return self.sampler.sampled_batch(indices, epoch, batch_index)


def _read_report(folder: Path) -> CleaningReport:
    try:
        fields = json.loads((folder / "report.json").read_text())
        return CleaningReport(kept=int(fields["kept"]), dropped={str(k): int(v) for k, v in fields["dropped"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DamagedCache(f"report.json: {error}") from None


def _verify_corpus(folder: Path) -> None:
    EncodedCorpus.open(folder)
    _read_report(folder)


def open_training_data(folder: Path, run_path: Path, config: Config) -> TrainingData:
    """The memory-mapped corpus, the run's vocabularies and, with vocab.sampling_alpha, its sampler.

    Every process calls this, on the folder that prepare_training_data made for the same config.
    """
    try:
        corpus, report = EncodedCorpus.open(folder), _read_report(folder)
    except DamagedCache as error:
        raise UserError(f"{folder}: the encoded corpus is damaged ({error}); run again to rebuild it") from None
    src_vocab, tgt_vocab = (Vocab((run_path / VOCAB_FILES[side]).read_bytes()) for side in ("src", "tgt"))
    sampler = None
    if keeps_text(config):
        assert corpus.src_text is not None and corpus.tgt_text is not None  # keeps_text is part of its cache key
        v, data = config.vocab, config.data
        sampler = SubwordSampler(corpus.src_text, corpus.tgt_text, src_vocab, tgt_vocab, v.sampling_alpha,
                                 v.sampling_nbest, data.max_src_pieces, data.max_tgt_pieces, config.seed)
    return TrainingData(corpus, src_vocab, tgt_vocab, report, sampler)
