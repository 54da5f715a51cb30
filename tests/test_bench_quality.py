"""bench/quality.py: the test scores it reads from a run's log, and its ablation table."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import bench_script


@pytest.fixture(scope="module")
def quality():
    yield from bench_script("quality")


def test_reads_the_test_lines_training_logs(quality, tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("2026-12-01 23:00:00 step 500: dev loss 6.2  ppl 502.38  BLEU 0.08  chrF 10.40  length ratio 1.761\n"
                   "2026-12-01 23:30:00 test iitb-test: BLEU 1.25  chrF 15.50  length ratio 0.950\n"
                   "2026-12-01 23:31:00 test tatoeba: BLEU 7.00  chrF 26.02  length ratio 0.990\n", encoding="utf-8")
    assert quality.test_scores(log) == {"iitb-test": {"bleu": 1.25, "chrf": 15.5, "length_ratio": 0.95},
                                        "tatoeba": {"bleu": 7.0, "chrf": 26.02, "length_ratio": 0.99}}


def test_reads_the_ter_of_newer_training_logs(quality, tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("2026-12-07 23:30:00 test test2016-flickr: BLEU 35.10  chrF 60.20  TER 45.30  length ratio 0.990\n",
                   encoding="utf-8")
    assert quality.test_scores(log) == {
        "test2016-flickr": {"bleu": 35.1, "chrf": 60.2, "ter": 45.3, "length_ratio": 0.99}}


def test_table_shows_each_variants_dev_change(quality) -> None:
    def result(label: str, dev_chrf: float) -> dict:
        return {"label": label, "updates": 100, "scores": {
            "dev": {"bleu": 1.0, "chrf": dev_chrf, "length_ratio": 1.0},
            "test": {"bleu": 2.0, "chrf": 20.0, "length_ratio": 0.9}}}

    table = quality.table([result("base", 15.0), result("ls0.2", 16.25), result("small", 14.5)])
    rows = table.splitlines()
    assert rows[0].startswith("| variant | best at update | dev BLEU / chrF / len | test BLEU / chrF / len |")
    assert rows[2].endswith("| +0.00 |") and rows[3].endswith("| +1.25 |") and rows[4].endswith("| -0.50 |")
    assert "| 1.00 / 16.25 / 1.00 |" in rows[3]


def test_a_variant_needs_a_label(quality) -> None:
    assert quality.parse_variant("wd=training.src_word_dropout=0.1 training.tgt_word_dropout=0.1") == (
        "wd", ["training.src_word_dropout=0.1", "training.tgt_word_dropout=0.1"])
    assert quality.parse_variant("base=") == ("base", [])
    with pytest.raises(SystemExit):
        quality.parse_variant("=training.lr=1")
