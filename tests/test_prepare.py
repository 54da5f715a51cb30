"""Training data prepared once: cleaning, vocabularies on a sample, the memory-mapped cache and its keys."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import seq2seq.data.prepare as prepare
from seq2seq.config import Config
from seq2seq.data.batching import make_batches, stored_batch
from seq2seq.data.cache import DamagedCache, EncodedCorpus
from seq2seq.data.corpus import load_eval_sets
from seq2seq.errors import UserError
from seq2seq.vocab import EOS_ID, UNK_ID, Vocab
from conftest import tiny_config, write_reversal_task


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = write_reversal_task(tmp_path / "data", train=300, dev=20, test=20)
    # an exact duplicate and a pair equal to a dev pair: cleaning must drop both
    with (folder / "train.src").open("a") as src, (folder / "train.tgt").open("a") as tgt:
        first_src, dev_src = (folder / "train.src").read_text().splitlines()[0], (folder / "dev.src").read_text()
        first_tgt = (folder / "train.tgt").read_text().splitlines()[0]
        src.write(f"{first_src}\n{dev_src.splitlines()[0]}\n")
        tgt.write(f"{first_tgt}\n{(folder / 'dev.tgt').read_text().splitlines()[0]}\n")
    return folder


def make_config(data_dir: Path, run_root: Path, *overrides: str) -> Config:
    config = tiny_config(data_dir, run_root, f"data.cache_dir={run_root.parent / 'cache'}", *overrides)
    config.run_path.mkdir(parents=True, exist_ok=True)
    return config


def prepared(config: Config) -> tuple[Path, prepare.TrainingData]:
    eval_sets = load_eval_sets(config.data, config.data_seed)
    folder = prepare.prepare_training_data(config, eval_sets, config.run_path)
    return folder, prepare.open_training_data(folder, config.run_path, config)


def test_encoded_cache_holds_exactly_the_cleaned_pairs(data_dir: Path, tmp_path: Path) -> None:
    config = make_config(data_dir, tmp_path / "runs")
    folder, data = prepared(config)
    assert data.report.dropped.get("duplicate") == 1 and data.report.dropped.get("eval overlap") >= 1
    assert data.report.kept == len(data.corpus) == 302 - sum(data.report.dropped.values())
    assert isinstance(data.corpus.src_ids, np.memmap) and data.corpus.src_ids.dtype == np.uint16
    sources = (data_dir / "train.src").read_text().splitlines()
    expected = data.src_vocab.encode(sources[:3])
    assert [data.corpus.src(i).tolist() for i in range(3)] == expected
    assert (config.run_path / "src.spm.model").read_bytes() == (
        next(folder.parent.glob("vocab-*")) / "src.spm.model").read_bytes()


def test_upsampling_repeats_a_corpus_without_counting_it_as_duplicates(data_dir: Path, tmp_path: Path) -> None:
    once = prepared(make_config(data_dir, tmp_path / "a"))[1]
    twice = prepared(make_config(data_dir, tmp_path / "b", "data.train=[{name: r, src: train.src, tgt: "
                                                            "train.tgt, upsample: 2}]"))[1]
    assert len(twice.corpus) == 2 * len(once.corpus)
    assert twice.report.kept == once.report.kept
    assert twice.corpus.tgt(len(once.corpus)).tolist() == twice.corpus.tgt(0).tolist()


def test_a_second_run_reuses_vocabularies_and_corpus(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_folder, first = prepared(make_config(data_dir, tmp_path / "a"))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(prepare, "train_vocab", forbidden)
    monkeypatch.setattr(prepare, "encode_training_pairs", forbidden)
    second_folder, second = prepared(make_config(data_dir, tmp_path / "b"))
    assert second_folder == first_folder
    assert second.src_vocab.model_proto == first.src_vocab.model_proto
    assert np.array_equal(second.corpus.tgt_ids, first.corpus.tgt_ids)


def test_changed_data_or_settings_make_a_new_cache_entry(data_dir: Path, tmp_path: Path) -> None:
    base, _ = prepared(make_config(data_dir, tmp_path / "a"))
    limited, data = prepared(make_config(data_dir, tmp_path / "b", "data.max_tgt_pieces=6"))
    assert limited != base and data.report.dropped.get("too many pieces", 0) > 0
    assert max(np.diff(data.corpus.tgt_offsets)) <= 6
    with (data_dir / "train.src").open("a") as src, (data_dir / "train.tgt").open("a") as tgt:
        src.write("alpha bravo\n")
        tgt.write("bravo alpha\n")
    changed, _ = prepared(make_config(data_dir, tmp_path / "c"))
    assert changed not in (base, limited)
    assert len(list((tmp_path / "cache").glob("vocab-*"))) == 2  # new text, new vocabulary


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt_format(path: Path) -> None:
    layout = json.loads(path.read_text())
    path.write_text(json.dumps({**layout, "pairs": layout["pairs"] - 1}))


@pytest.mark.parametrize("name,damage", [
    ("src_ids.bin", truncate),
    ("tgt_ids.bin", lambda path: path.write_bytes(b"")),
    ("tgt_offsets.npy", Path.unlink),
    ("src_offsets.npy", truncate),
    ("format.json", corrupt_format),
    ("format.json", lambda path: path.write_text("{")),
    ("report.json", Path.unlink),
])
def test_a_damaged_corpus_cache_is_rebuilt_not_trusted(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    name: str, damage: Callable[[Path], None],
) -> None:
    folder, first = prepared(make_config(data_dir, tmp_path / "a"))
    src_ids, tgt_offsets = np.array(first.corpus.src_ids), np.array(first.corpus.tgt_offsets)
    damage(folder / name)
    encodings: list[Path] = []
    encode = prepare.encode_training_pairs
    monkeypatch.setattr(prepare, "encode_training_pairs", lambda *args: encodings.append(args[-1]) or encode(*args))
    again_folder, again = prepared(make_config(data_dir, tmp_path / "b"))
    assert len(encodings) == 1 and again_folder == folder
    assert "is damaged" in caplog.text and name in caplog.text
    assert np.array_equal(again.corpus.src_ids, src_ids) and np.array_equal(again.corpus.tgt_offsets, tgt_offsets)
    assert not list(folder.parent.glob(".*"))  # neither the staging nor the damaged folder is left behind


def test_a_damaged_vocabulary_cache_is_retrained_not_trusted(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    prepared(make_config(data_dir, tmp_path / "a"))
    vocab_folder = next((tmp_path / "cache").glob("vocab-*"))
    truncate(vocab_folder / "tgt.spm.model")
    trainings: list[int] = []
    train = prepare.train_vocab
    monkeypatch.setattr(prepare, "train_vocab", lambda *args: trainings.append(args[1]) or train(*args))
    config = make_config(data_dir, tmp_path / "b")
    _, again = prepared(config)
    assert len(trainings) == 2 and "vocabularies" in caplog.text and "is damaged" in caplog.text
    assert (vocab_folder / "tgt.spm.model").read_bytes() == again.tgt_vocab.model_proto
    assert len(again.tgt_vocab) > 0


def test_a_damaged_cache_after_preparation_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    config = make_config(data_dir, tmp_path / "a")
    folder, _ = prepared(config)
    truncate(folder / "tgt_ids.bin")
    with pytest.raises(UserError, match="encoded corpus is damaged .*tgt_ids.bin.*run again"):
        prepare.open_training_data(folder, config.run_path, config)


def test_cache_files_reach_the_disk_before_the_folder_is_renamed_into_place(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(handle: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{handle}")))
        fsync(handle)

    def recording_replace(source: str | Path, target: str | Path) -> None:
        events.append(("rename", str(source)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    folder, _ = prepared(make_config(data_dir, tmp_path / "a"))
    cache = str(folder.parent)
    for published in (folder, next(folder.parent.glob("vocab-*"))):
        staging = next(source for kind, source in events if kind == "rename" and published.name in source)
        rename = events.index(("rename", staging))
        synced = {Path(path).name for _, path in events[:rename] if Path(path).parent == Path(staging)}
        assert synced == {file.name for file in published.iterdir()}
        assert events[rename - 1] == ("fsync", staging)
        assert ("fsync", cache) in events[rename + 1:]


def test_data_format_version_is_part_of_every_cache_key(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, _ = prepared(make_config(data_dir, tmp_path / "a"))
    monkeypatch.setattr(prepare, "DATA_FORMAT_VERSION", prepare.DATA_FORMAT_VERSION + 1)
    after, _ = prepared(make_config(data_dir, tmp_path / "b"))
    assert after != before
    assert len(list((tmp_path / "cache").glob("vocab-*"))) == 2


def test_joint_vocabulary_is_one_model_over_both_sides(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for split in ("train", "dev", "test"):  # targets in capitals: separate vocabularies would not share a piece
        (data_dir / f"{split}.tgt").write_text((data_dir / f"{split}.tgt").read_text().upper())
    trainings: list[tuple[list[str], int]] = []
    train = prepare.train_vocab
    monkeypatch.setattr(prepare, "train_vocab", lambda texts, size, *rest: trainings.append((list(texts), size))
                        or train(texts, size, *rest))
    config = make_config(data_dir, tmp_path / "a", "vocab.joint=true", "vocab.src_size=120", "vocab.tgt_size=60")
    _, data = prepared(config)
    [(texts, size)] = trainings
    assert size == 120 and any(t.isupper() for t in texts) and any(t.islower() for t in texts)
    assert (config.run_path / "src.spm.model").read_bytes() == (config.run_path / "tgt.spm.model").read_bytes()
    assert data.src_vocab.model_proto == data.tgt_vocab.model_proto and len(data.src_vocab) == len(data.tgt_vocab)
    sources = (data_dir / "train.src").read_text().splitlines()[:3]
    targets = (data_dir / "train.tgt").read_text().splitlines()[:3]
    assert [data.corpus.tgt(i).tolist() for i in range(3)] == data.src_vocab.encode(targets)
    assert [data.corpus.src(i).tolist() for i in range(3)] == data.tgt_vocab.encode(sources)
    assert UNK_ID not in {i for row in data.src_vocab.encode(targets) for i in row}


def test_sampling_settings_do_not_retrain_the_vocabularies(data_dir: Path, tmp_path: Path) -> None:
    prepared(make_config(data_dir, tmp_path / "a"))
    prepared(make_config(data_dir, tmp_path / "b", "vocab.sampling_alpha=0.1", "vocab.sampling_nbest=8"))
    assert len(list((tmp_path / "cache").glob("vocab-*"))) == 1


def test_the_data_seed_keeps_splits_and_vocabularies_when_the_run_seed_changes(data_dir: Path, tmp_path: Path) -> None:
    """Ensemble members differ in their weights' seed; their test sets and vocabularies must be the same."""
    with_holdout = 'data.train=[{"name": "reverse", "src": "train.src", "tgt": "train.tgt", "holdout": 40}]'

    def made(run: str, *seeds: str) -> tuple[list[str], bytes]:
        config = make_config(data_dir, tmp_path / run, with_holdout, *seeds)
        _, data = prepared(config)
        held = load_eval_sets(config.data, config.data_seed).tests[-1]
        return held.src, (config.run_path / "src.spm.model").read_bytes()

    first = made("a", "seed=1")
    assert made("b", "seed=2", "data.seed=1") == first
    assert made("c", "seed=2")[0] != first[0]  # without it the run's seed draws another held-out set


def before_eos(ids: torch.Tensor) -> list[list[int]]:
    return [row[: row.index(EOS_ID)] for row in ids.tolist()]


def test_subword_sampling_keeps_the_text_and_resegments_training_batches(data_dir: Path, tmp_path: Path) -> None:
    sizes = ("vocab.src_size=100", "vocab.tgt_size=100")  # room for whole words, which sampling can split
    plain_folder, plain = prepared(make_config(data_dir, tmp_path / "a", *sizes))
    config = make_config(data_dir, tmp_path / "b", "vocab.sampling_alpha=0.3", *sizes)
    folder, data = prepared(config)
    assert folder != plain_folder and plain.corpus.src_text is None and not list(plain_folder.glob("*text*"))
    assert np.array_equal(data.corpus.src_ids, plain.corpus.src_ids)  # batching still sees the best lengths
    assert [data.corpus.tgt_text[i] for i in range(3)] == (data_dir / "train.tgt").read_text().splitlines()[:3]
    indices = list(range(40))
    batch = data.training_batch(indices, epoch=0, batch_index=2)
    assert data.src_vocab.decode(before_eos(batch.src)) == [data.corpus.src_text[i] for i in indices]
    assert data.tgt_vocab.decode(before_eos(batch.tgt_out)) == [data.corpus.tgt_text[i] for i in indices]
    many = list(range(300))  # 40 short sentences can all draw their best segmentation; 300 cannot
    sampled = data.training_batch(many, epoch=0, batch_index=2).src
    assert not torch.equal(sampled, stored_batch(data.corpus, many).src)
    assert not torch.equal(sampled, data.training_batch(many, epoch=1, batch_index=2).src)
    resumed = prepare.open_training_data(folder, config.run_path, config)
    assert torch.equal(resumed.training_batch(indices, 0, 2).src, batch.src)
    assert torch.equal(resumed.training_batch(indices, 0, 2).tgt_out, batch.tgt_out)


def test_without_sampling_training_batches_are_the_stored_segmentation(data_dir: Path, tmp_path: Path) -> None:
    config = make_config(data_dir, tmp_path / "a")
    _, data = prepared(config)
    assert data.sampler is None
    batches = make_batches(data.corpus.src_lengths, data.corpus.tgt_lengths, 64, "sentences", config.seed, 0)
    for index, indices in enumerate(batches):
        sampled, stored = data.training_batch(indices, 0, index), stored_batch(data.corpus, indices)
        for name in ("src", "src_lengths", "tgt_in", "tgt_out"):
            assert torch.equal(getattr(sampled, name), getattr(stored, name))


def test_writer_keeps_text_beside_the_ids(tmp_path: Path) -> None:
    from seq2seq.data.cache import EncodedCorpusWriter

    writer = EncodedCorpusWriter(tmp_path, vocab_size=100, keep_text=True)
    writer.append([[1, 2], [3]], [[4], [5, 6]], (["a b", "मिट्टी"], ["b a", "ü"]))
    assert writer.close() == 2
    corpus = EncodedCorpus.open(tmp_path)
    assert [corpus.src_text[i] for i in range(2)] == ["a b", "मिट्टी"] and corpus.tgt_text[1] == "ü"
    (tmp_path / "src_text.bin").write_bytes(b"a b")
    with pytest.raises(DamagedCache, match="src_text.bin"):
        EncodedCorpus.open(tmp_path)


def test_a_resumed_run_keeps_its_own_vocabularies(data_dir: Path, tmp_path: Path) -> None:
    config = make_config(data_dir, tmp_path / "a")
    prepared(config)
    own = Vocab((config.run_path / "tgt.spm.model").read_bytes())
    for folder in (tmp_path / "cache").iterdir():
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    _, again = prepared(config)
    assert again.tgt_vocab.model_proto == own.model_proto


def test_vocab_sample_is_a_seeded_aligned_subset(data_dir: Path, tmp_path: Path) -> None:
    config = make_config(data_dir, tmp_path / "a", "vocab.sample_size=25")
    eval_sets = load_eval_sets(config.data, config.seed)
    src, tgt = prepare.vocab_sample(config, eval_sets)
    assert len(src) == len(tgt) == 25
    assert all(s.split() == list(reversed(t.split())) for s, t in zip(src, tgt))
    assert (src, tgt) == prepare.vocab_sample(config, eval_sets)
    lines = (data_dir / "train.src").read_text().splitlines()
    assert src != lines[:25]  # a sample of the whole stream, not its head


def test_empty_cache_dir_keeps_the_data_in_the_run_folder(data_dir: Path, tmp_path: Path) -> None:
    config = make_config(data_dir, tmp_path / "a", "data.cache_dir=''")
    folder, data = prepared(config)
    assert folder.parent == config.run_path / "data" and len(data.corpus) > 0


def test_unusable_cache_dir_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = make_config(data_dir, tmp_path / "a", f"data.cache_dir={tmp_path / 'file' / 'cache'}")
    with pytest.raises(UserError, match="data.cache_dir: cannot create"):
        prepared(config)


def test_nothing_left_after_cleaning_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    config = make_config(data_dir, tmp_path / "a", "data.cleaning.min_words=50")
    with pytest.raises(UserError, match="no training pairs are left after cleaning"):
        prepared(config)


def test_writer_round_trips_rows_of_any_length(tmp_path: Path) -> None:
    from seq2seq.data.cache import EncodedCorpusWriter

    writer = EncodedCorpusWriter(tmp_path, vocab_size=70_000)
    writer.append([[1, 2, 3], [69_999]], [[4], [5, 6]])
    writer.append([[7]], [[8, 9, 10, 11]])
    assert writer.close() == 3
    corpus = EncodedCorpus.open(tmp_path)
    assert corpus.src_ids.dtype == np.int32  # ids above 65,535 need 32 bits
    assert [corpus.src(i).tolist() for i in range(3)] == [[1, 2, 3], [69_999], [7]]
    assert [corpus.tgt(i).tolist() for i in range(3)] == [[4], [5, 6], [8, 9, 10, 11]]
