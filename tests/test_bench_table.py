"""bench/run.py's table: the figures, the seq2seq / peer ratios, and the gaps a failed peer leaves."""

from __future__ import annotations

import pytest

from conftest import bench_script


@pytest.fixture(scope="module")
def run():
    yield from bench_script("run")


def results() -> dict[str, dict]:
    return {
        "seq2seq": {"version": "0.1.0", "train_tok_per_s": 3000.0, "greedy_sent_per_s": 200.0, "beam5_bleu": 10.0,
                    "int8_beam5_sent_per_s": 90.0,
                    "train_peak_rss_mb": 1500.0, "achieved_gflops": 70.0, "sgemm_gflops": 175.0,
                    "mflop_per_target_token": 23.3, "threads": 2, "test_sents": 2507, "flores_sents": 997,
                    "settings": {"no_repeat_ngram": 4}},
        "joeynmt": {"version": "2.3.0", "train_tok_per_s": 1200.0, "greedy_sent_per_s": 0.0, "beam5_bleu": 8.0,
                    "beam5_sent_per_s": 30.0,
                    "train_peak_rss_mb": 2000.0},
        "opennmt": {"error": "failed (exit status 1)"},
    }


def row(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_columns_are_systems_then_ratios(run):
    header = row(run.markdown_table(results(), quality=True), "figure")
    assert header == ["figure", "better", "seq2seq 0.1.0", "joeynmt 2.3.0", "opennmt",
                      "seq2seq / joeynmt", "seq2seq / opennmt"]


def test_figures_and_ratios(run):
    table = run.markdown_table(results(), quality=True)
    assert row(table, "training, target tokens/s") == [
        "training, target tokens/s", "higher", "3,000", "1,200", run.MISSING, "2.50×", run.MISSING]
    assert row(table, "training peak RSS, MB")[2:6] == ["1,500", "2,000", run.MISSING, "0.75×"]
    assert row(table, "BLEU, IITB test, beam 5")[2:6] == ["10.00", "8.00", run.MISSING, "1.25×"]


def test_zero_or_missing_peer_figure_gives_no_ratio(run):
    table = run.markdown_table(results(), quality=True)
    assert row(table, "greedy decoding, sentences/s")[5:] == [run.MISSING, run.MISSING]
    assert row(table, "beam-5 decoding, sentences/s")[2:] == [run.MISSING, "30.0"] + [run.MISSING] * 3


def test_int8_rows_set_seq2seq_against_the_peers_float_figures(run):
    table = run.markdown_table(results(), quality=True)
    assert row(table, "beam-5 decoding, sentences/s, seq2seq int8")[2:] == ["90.0", "30.0", run.MISSING, "3.00×",
                                                                            run.MISSING]


def test_speed_only_table_has_no_quality_rows(run):
    table = run.markdown_table(results(), quality=False)
    assert "BLEU" not in table and "chrF" not in table
    assert "length ratio, beam 5 (IITB test)" in table


def test_footer_reports_share_of_matmul_peak_and_failures(run):
    machine = {"date": "2026-11-21 12:00", "cpu": "AMD EPYC", "threads": 2, "torch": "2.13.0", "budget_s": 1800.0}
    lines = run.footer(results(), machine, quality=True)
    assert "= 40% of the measured fp32 torch.mm peak (175.0 GFLOP/s" in lines[0]
    assert "2,507 IITB test sentences, 997 FLORES-200 dev sentences" in lines[1]
    assert lines[1].endswith("at most 200 pieces, no 4-gram of pieces twice in one output.")
    assert lines[-1] == "opennmt: failed (exit status 1)"
