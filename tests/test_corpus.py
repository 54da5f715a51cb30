"""Reading, cleaning and splitting parallel corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.config import CleaningConfig, CorpusConfig, DataConfig
from seq2seq.data.corpus import CleaningReport, Corpus, clean, load_splits, read_corpus, split_holdout
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


def test_cleaning_drops_by_rule_and_reports_counts() -> None:
    corpus = Corpus("c", ["ok pair", "", "a", " ".join(["w"] * 20), "one two", "x y z"],
                    ["ठीक जोड़ी", "खाली", "क", "श", " ".join(["श"] * 30), "क ख ग"])
    report = CleaningReport()
    kept = clean(corpus, CleaningConfig(min_words=2, max_words=25, max_ratio=2.0, ratio_slack=1), report)
    assert kept.src == ["ok pair", "x y z"]
    assert report.kept == 2
    assert report.dropped == {"empty": 1, "too short": 2, "too long": 1}
    assert "kept 2 of 6 pairs" in report.summary()


def test_length_ratio_rule() -> None:
    report = CleaningReport()
    corpus = Corpus("c", ["a b", "a b"], ["1 2 3 4 5 6 7", "1 2 3 4 5"])
    kept = clean(corpus, CleaningConfig(max_ratio=1.5, ratio_slack=2), report)
    assert kept.tgt == ["1 2 3 4 5"] and report.dropped == {"length ratio": 1}


def test_holdout_groups_by_source_and_is_seeded() -> None:
    corpus = Corpus("t", ["a", "a", "b", "c", "d", "e"], ["1", "2", "3", "4", "5", "6"])
    train, test = split_holdout(corpus, 2, seed=3)
    assert len(train) + len(test) == len(corpus)
    assert not set(train.src) & set(test.src)
    if "a" in test.src:
        assert test.src.count("a") == 2
    again_train, again_test = split_holdout(corpus, 2, seed=3)
    assert again_test.src == test.src and again_train.src == train.src


def test_load_splits_mixes_upsamples_and_adds_heldout_test(tmp_path: Path) -> None:
    for name, count in (("big", 10), ("small", 6)):
        (tmp_path / f"{name}.en").write_text("".join(f"{name} sentence {i}\n" for i in range(count)))
        (tmp_path / f"{name}.hi").write_text("".join(f"वाक्य {i}\n" for i in range(count)))
    data = data_config(
        tmp_path,
        train=[CorpusConfig("big", src="big.en", tgt="big.hi"),
               CorpusConfig("small", src="small.en", tgt="small.hi", holdout=2, upsample=3)],
        test=[CorpusConfig("big-test", src="big.en", tgt="big.hi")],
    )
    splits = load_splits(data, seed=1)
    assert len(splits.train) == 10 + 4 * 3
    assert [c.name for c in splits.tests] == ["big-test", "small"]
    assert len(splits.tests[1]) == 2
    assert not set(splits.tests[1].src) & set(splits.train.src)
