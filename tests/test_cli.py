"""The command line as a user runs it: train.py, translate.py and python -m seq2seq."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, other_vocabulary_checkpoint


def run(*args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, input=stdin, capture_output=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.fixture(scope="module")
def trained_runs(reversal_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("cli-runs")
    run("train.py", "--config", "configs/tiny.yaml", "--data-dir", str(reversal_data), "--set", f"run_dir={runs}",
        "--set", "training.max_steps=300", "--set", "training.valid_every=300", "--set", "training.lr=0.005")
    return runs


def test_train_writes_a_complete_run(trained_runs: Path) -> None:
    run_path = trained_runs / "tiny"
    assert {"best.pt", "config.yaml", "train.log", "src.spm.model", "tgt.spm.model"} <= {
        p.name for p in run_path.iterdir()}
    log = (run_path / "train.log").read_text(encoding="utf-8")
    assert "test reverse-test: BLEU" in log


def test_translate_positional_uses_the_newest_model(trained_runs: Path) -> None:
    out = run("translate.py", "--runs", str(trained_runs), "alpha bravo charlie", "delta echo foxtrot golf")
    assert out.stdout.decode().splitlines() == ["charlie bravo alpha", "golf foxtrot echo delta"]


def test_translate_stdin_keeps_line_count(trained_runs: Path) -> None:
    out = run("translate.py", "--runs", str(trained_runs), "-", stdin=b"kilo lima mike\n\n   \nzulu yankee\n")
    lines = out.stdout.decode().split("\n")
    assert lines[:4] == ["mike lima kilo", "", "", "yankee zulu"] and lines[4:] == [""]


def test_beam_n_best_prints_rank_score_text(trained_runs: Path) -> None:
    out = run("translate.py", "--runs", str(trained_runs), "--beam-size", "5", "--n-best", "3", "oscar papa quebec")
    rows = [line.split("\t") for line in out.stdout.decode().splitlines()]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True) and rows[0][2] == "quebec papa oscar"


def test_input_reference_prints_scores_with_signatures(trained_runs: Path, reversal_data: Path,
                                                       tmp_path: Path) -> None:
    output = tmp_path / "out.txt"
    out = run("translate.py", "--runs", str(trained_runs), "--input", str(reversal_data / "test.src"),
              "--reference", str(reversal_data / "test.tgt"), "--output", str(output))
    stderr = out.stderr.decode()
    assert "BLEU" in stderr and "chrF" in stderr and "nrefs:1|" in stderr
    assert "TER " in stderr and "TER|nrefs:1|" in stderr
    assert len(output.read_text().splitlines()) == len((reversal_data / "test.src").read_text().splitlines())


def test_attention_heatmap_is_a_png(trained_runs: Path, tmp_path: Path) -> None:
    image = tmp_path / "attention.png"
    run("translate.py", "--runs", str(trained_runs), "--attention", str(image), "alpha bravo")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sampling_with_seed_is_reproducible(trained_runs: Path) -> None:
    args = ("translate.py", "--runs", str(trained_runs), "--method", "sample", "--temperature", "1.5",
            "--top-p", "0.9", "--seed", "7", "alpha bravo charlie delta echo")
    assert run(*args).stdout == run(*args).stdout


def test_no_repeat_ngram_option_reaches_the_search(trained_runs: Path) -> None:
    """A repeated input sends the small model into a loop; blocking 2-grams cuts it at the second turn."""
    args = ("translate.py", "--runs", str(trained_runs), "--method", "greedy", "charlie delta echo charlie delta")
    assert run(*args, "--no-repeat-ngram", "0").stdout.decode().count("delta charlie") >= 2
    assert run(*args, "--no-repeat-ngram", "2").stdout.decode().count("delta charlie") == 1


def test_evaluate_command(trained_runs: Path, reversal_data: Path) -> None:
    out = run("-m", "seq2seq", "evaluate", "--config", "configs/tiny.yaml", "--data-dir", str(reversal_data),
              "--set", f"run_dir={trained_runs}", "--set", "evaluation.tokenize=none", "--set",
              "evaluation.lowercase=true", "--split", "test")
    text = out.stdout.decode()
    assert text.startswith("reverse-test: BLEU") and "chrF|nrefs:1" in text and "TER|nrefs:1" in text
    assert "BLEU|nrefs:1|case:lc|eff:no|tok:none|" in text  # the config's evaluation section reaches sacrebleu


def test_translate_quantize_end_to_end(trained_runs: Path) -> None:
    out = run("translate.py", "--runs", str(trained_runs), "--quantize", "alpha bravo charlie",
              "delta echo foxtrot golf")
    assert out.stdout.decode().splitlines() == ["charlie bravo alpha", "golf foxtrot echo delta"]
    assert out.stderr == b""  # torch's deprecation notices stay hidden


def test_evaluate_quantize_scores_close_to_float(trained_runs: Path, reversal_data: Path) -> None:
    args = ("-m", "seq2seq", "evaluate", "--config", "configs/tiny.yaml", "--data-dir", str(reversal_data),
            "--set", f"run_dir={trained_runs}", "--split", "test")
    bleu = {}
    for name, extra in (("float", ()), ("int8", ("--quantize",))):
        text = run(*args, *extra).stdout.decode()
        assert text.startswith("reverse-test: BLEU") and "chrF|nrefs:1" in text
        bleu[name] = float(text.split()[2])
    assert bleu["int8"] >= bleu["float"] - 3.0, bleu


@pytest.mark.parametrize(("args", "message"), [
    (("translate.py", "--checkpoint", "missing.pt", "hello"), "checkpoint not found"),
    (("translate.py", "--runs", "/nonexistent", "hello"), "no trained model"),
    (("translate.py", "--runs", "RUNS", "--beam-size", "0", "hello"), "decoding.beam_size"),
    (("translate.py", "--runs", "RUNS", "--no-repeat-ngram", "-1", "hello"), "decoding.no_repeat_ngram"),
    (("train.py", "--config", "configs/en-hi.yaml", "--data-dir", "/nonexistent", "--set", "run_dir=RUNS"),
     "python -m seq2seq download en-hi"),
    (("-m", "seq2seq", "download", "no-such-set"), "no-such-set"),
    (("translate.py", "--runs", "RUNS", "--quantize", "--device", "cuda", "hello"), "CPU only"),
])
def test_user_errors_are_one_line_with_exit_code_2(trained_runs: Path, args: tuple[str, ...], message: str) -> None:
    args = tuple(a.replace("RUNS", str(trained_runs)) for a in args)
    result = run(*args, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and message in stderr, stderr


def test_keys_command_prints_the_table() -> None:
    out = run("-m", "seq2seq", "keys").stdout.decode()
    assert "| `training.max_time` |" in out and "| `decoding.top_p` |" in out


def test_closed_output_pipe_ends_quietly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """`python -m seq2seq keys | head -2`: the reader leaves early, and no traceback follows."""
    import io
    import os

    from seq2seq.cli import main

    read_end, write_end = os.pipe()
    os.close(read_end)
    with capsys.disabled(), io.open(write_end, "w", buffering=1) as closed_pipe:
        monkeypatch.setattr("sys.stdout", closed_pipe)
        assert main(["keys"]) == 0


def test_prefix_and_prefix_file_lead_every_output(trained_runs: Path, tmp_path: Path) -> None:
    base = ("translate.py", "--runs", str(trained_runs), "alpha bravo charlie", "delta echo foxtrot")
    lines = run(*base, "--prefix", "zulu").stdout.decode().splitlines()
    assert len(lines) == 2 and all(line.startswith("zulu") for line in lines)
    prefixes = tmp_path / "prefixes.txt"
    prefixes.write_text("kilo lima\n\n", encoding="utf-8")
    lines = run(*base, "--prefix-file", str(prefixes)).stdout.decode().splitlines()
    assert lines[0].startswith("kilo lima") and lines[1] == "foxtrot echo delta"


def test_alignments_follow_a_tab_on_each_line(trained_runs: Path) -> None:
    out = run("translate.py", "--runs", str(trained_runs), "--alignments", "alpha bravo charlie").stdout.decode()
    (line,) = out.splitlines()
    text, alignment = line.split("\t")
    assert text == "charlie bravo alpha"
    pairs = [tuple(map(int, pair.split("-"))) for pair in alignment.split()]
    assert [target for _, target in pairs] == list(range(len(pairs))) and pairs


def test_ensemble_of_checkpoints_and_a_vocabulary_mismatch(trained_runs: Path, tmp_path: Path) -> None:
    checkpoint = str(trained_runs / "tiny" / "best.pt")
    args = ("translate.py", "--checkpoint", checkpoint, "alpha bravo charlie")
    single = run(*args).stdout
    assert run(*args, "--checkpoint", checkpoint).stdout == single
    other = other_vocabulary_checkpoint(Path(checkpoint), tmp_path / "other.pt")
    result = run(*args, "--checkpoint", str(other), check=False)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and stderr.count("\n") == 1 and "vocabulary differs" in stderr, stderr


def test_translate_flags_are_the_decoding_options_marked_for_the_command_line() -> None:
    import dataclasses

    from seq2seq.cli import build_parser
    from seq2seq.config import DecodingConfig, decoding_options

    args = build_parser().parse_args(["translate", "--beam-size", "3", "--top-p", "0.5", "hello"])
    flags = {f.name for f, _ in decoding_options("cli")}
    assert flags <= set(vars(args)) and {"beam_size", "method", "seed", "batch_size"} <= flags
    assert args.beam_size == 3 and args.top_p == 0.5 and args.method is None
    assert "max_input_pieces" not in vars(args)  # a config-only option gets no flag
    assert {f.name for f in dataclasses.fields(DecodingConfig)} >= flags
