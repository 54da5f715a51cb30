"""Reading and splitting parallel corpora, and gathering the evaluation sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.config import CorpusConfig, DataConfig
from seq2seq.data.corpus import (
    Corpus, data_files, iter_pairs, load_eval_sets, read_corpus, split_holdout, training_pairs,
)
from seq2seq.errors import UserError


def data_config(root: Path, **kwargs) -> DataConfig:
    return DataConfig(root=str(root), **kwargs)


def test_reads_aligned_files_normalizing_whitespace_and_nfc(tmp_path: Path) -> None:
    (tmp_path / "a.en").write_text("  hello   world \nsecond\tline\n", encoding="utf-8")
    # "ि" written as a decomposed sequence is not changed by NFC, but "é" (e + combining acute) is
    (tmp_path / "a.hi").write_text("नमस्ते दुनिया\ncafe\u0301\n", encoding="utf-8")
    corpus = read_corpus(CorpusConfig("a", src="a.en", tgt="a.hi"), data_config(tmp_path))
    assert corpus.src == ["hello world", "second line"]
    assert corpus.tgt == ["नमस्ते दुनिया", "café"]


def test_misaligned_files_name_both_counts(tmp_path: Path) -> None:
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "a.hi").write_text("एक\nदो\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"a\.en has 3 lines but .*a\.hi has 2"):
        read_corpus(CorpusConfig("a", src="a.en", tgt="a.hi"), data_config(tmp_path))


def test_tsv_corpus_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "p.tsv").write_text("hi\tनमस्ते\tattribution\nbye\tअलविदा\n", encoding="utf-8")
    corpus = read_corpus(CorpusConfig("p", tsv="p.tsv"), data_config(tmp_path))
    assert corpus.src == ["hi", "bye"] and corpus.tgt == ["नमस्ते", "अलविदा"]
    (tmp_path / "bad.tsv").write_text("only one field\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.tsv:1: expected source<TAB>target"):
        read_corpus(CorpusConfig("p", tsv="bad.tsv"), data_config(tmp_path))


def test_missing_file_names_the_download_command_and_data_dir(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        read_corpus(CorpusConfig("a", src="en-hi/train.en", tgt="en-hi/train.hi"),
                    data_config(tmp_path, download="en-hi"))
    message = str(caught.value)
    assert "python -m seq2seq download en-hi" in message and "--data-dir" in message


def test_holdout_groups_by_source_and_is_seeded() -> None:
    corpus = Corpus("t", ["a", "a", "b", "c", "d", "e"], ["1", "2", "3", "4", "5", "6"])
    train, test = split_holdout(corpus, 2, seed=3)
    assert len(train) + len(test) == len(corpus)
    assert not set(train.src) & set(test.src)
    if "a" in test.src:
        assert test.src.count("a") == 2
    again_train, again_test = split_holdout(corpus, 2, seed=3)
    assert again_test.src == test.src and again_train.src == train.src


def test_heldout_pairs_are_a_test_set_and_never_training_pairs(tmp_path: Path) -> None:
    for name, count in (("big", 10), ("small", 6)):
        (tmp_path / f"{name}.en").write_text("".join(f"{name} sentence {i}\n" for i in range(count)))
        (tmp_path / f"{name}.hi").write_text("".join(f"वाक्य {i}\n" for i in range(count)))
    small = CorpusConfig("small", src="small.en", tgt="small.hi", holdout=2, upsample=3)
    data = data_config(
        tmp_path,
        train=[CorpusConfig("big", src="big.en", tgt="big.hi"), small],
        dev=CorpusConfig("dev", src="big.en", tgt="big.hi"),
        test=[CorpusConfig("big-test", src="big.en", tgt="big.hi")],
    )
    eval_sets = load_eval_sets(data, seed=1)
    assert [c.name for c in eval_sets.tests] == ["big-test", "small"]
    held = eval_sets.tests[1]
    assert len(held) == 2
    trained = list(training_pairs(small, data, seed=1))
    assert len(trained) == 4 and not {src for src, _ in trained} & set(held.src)
    assert len(list(eval_sets.sentences())) == 2 * (10 + 10 + 2)
    assert data_files(data) == [Path(n) for n in ("big.en", "big.hi", "small.en", "small.hi", "big.en",
                                                     "big.hi", "big.en", "big.hi")]


def test_pairs_stream_lazily(tmp_path: Path) -> None:
    """A reader that is not consumed has read nothing: big corpora never sit in memory whole."""
    (tmp_path / "a.en").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "a.hi").write_text("एक\nदो\n", encoding="utf-8")
    pairs = iter_pairs(CorpusConfig("a", src="a.en", tgt="a.hi"), data_config(tmp_path))
    assert next(pairs) == ("one", "एक")
    (tmp_path / "a.en").unlink()
    (tmp_path / "a.hi").unlink()
    assert next(pairs) == ("two", "दो")  # the open handles keep streaming
