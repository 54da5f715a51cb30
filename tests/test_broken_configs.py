"""Broken config files: each must stop `train` with exit 2 and one line naming the file, the key and the fix.

Every file in tests/broken_configs/ has a row in CASES. Most run in-process through
seq2seq.cli.main (the same code path as train.py); a handful run as real subprocesses to
prove the exit-code and no-traceback contract end to end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.cli import main

ROOT = Path(__file__).resolve().parents[1]
BROKEN = Path("tests") / "broken_configs"  # relative to ROOT, as a user in the repo would type it

# (file, key fragment that must appear, message fragment that must appear)
CASES = [
    # YAML syntax: the location stands in for the key
    ("syntax_bad_indent.yaml", "line 4", "YAML syntax error"),
    ("syntax_unclosed_bracket.yaml", "line 4", "YAML syntax error"),
    ("syntax_tab_indent.yaml", "line 3", "YAML syntax error"),
    ("syntax_unclosed_quote.yaml", "line 4", "YAML syntax error"),
    ("syntax_nested_colon.yaml", "line 2", "mapping values are not allowed"),
    # whole-file problems
    ("empty.yaml", "data.train", "no training corpora"),
    ("not_utf8.yaml", "", "not UTF-8"),
    ("top_level_list.yaml", "top level", "expected a mapping"),
    ("top_level_scalar.yaml", "top level", "expected a mapping"),
    # unknown keys at every level
    ("unknown_top_key.yaml", "trainig", "did you mean 'training'"),
    ("unknown_model_key.yaml", "model.hiden_size", "did you mean"),
    ("unknown_model_key_decoder.yaml", "model.decoder_hiden", "did you mean 'decoder_hidden'"),
    ("unknown_training_key.yaml", "training.learning_rate", "did you mean 'lr'"),
    ("unknown_training_key_warmup.yaml", "training.warmup_step", "did you mean 'warmup_steps'"),
    ("unknown_decoding_key.yaml", "decoding.beam_sise", "did you mean 'beam_size'"),
    ("unknown_vocab_key.yaml", "vocab.src_sise", "did you mean 'src_size'"),
    ("unknown_data_key.yaml", "data.trian", "did you mean 'train'"),
    ("unknown_cleaning_key.yaml", "data.cleaning.min_word", "did you mean 'min_words'"),
    ("unknown_corpus_key.yaml", "data.train[0].srcc", "did you mean 'src'"),
    ("unknown_key_no_match.yaml", "model.colour", "known keys: type, rnn, attention, emb_size"),
    ("bad_choice_rnn.yaml", "model.rnn", "did you mean 'lstm'"),
    ("bad_choice_attention.yaml", "model.attention", "did you mean 'bahdanau'"),
    # wrong types
    ("string_for_int.yaml", "model.emb_size", "expected a whole number, got 'big'"),
    ("list_for_mapping.yaml", "model", "expected a mapping of keys, got a list"),
    ("float_for_bool.yaml", "model.bidirectional", "expected true or false, got 0.5"),
    ("beam_size_float.yaml", "decoding.beam_size", "expected a whole number, got 2.5"),
    ("string_for_float.yaml", "training.lr", "expected a finite number, got 'fast'"),
    ("mapping_for_text.yaml", "name", "expected text, got a mapping"),
    ("string_for_list.yaml", "data.train", "expected a list"),
    ("bad_beta_type.yaml", "training.adam_betas[1]", "expected a finite number, got 'high'"),
    ("bool_for_int.yaml", "training.max_steps", "expected a whole number, got True"),
    # impossible values
    ("negative_size.yaml", "model.emb_size", "must be in [1, 65536], got -4"),
    ("zero_layers.yaml", "model.encoder_layers", "must be in [1, 64], got 0"),
    ("dropout_one.yaml", "model.dropout", "must be in [0, 1), got 1.0"),
    ("beam_size_zero.yaml", "decoding.beam_size", "must be at least 1, got 0"),
    ("n_best_over_beam.yaml", "decoding.n_best", "must not exceed beam_size (2), got 3"),
    ("top_p_zero.yaml", "decoding.top_p", "must be in (0, 1]"),
    ("lr_zero.yaml", "training.lr", "must be positive"),
    ("lr_nan.yaml", "training.lr", "expected a finite number, got nan"),
    ("max_time_soon.yaml", "training.max_time", "not a duration: 'soon'"),
    ("device_tpu.yaml", "training.device", "got 'tpu'"),
    ("luong_dot_mismatch.yaml", "model.attention", "luong_dot needs decoder_hidden (64) equal to the encoder output size (128)"),
    ("tie_embeddings_mismatch.yaml", "model.tie_embeddings", "emb_size (32) equal to decoder_hidden (64)"),
    ("duplicate_test_names.yaml", "data.test", "two test sets are named 'news'"),
    ("corpus_tsv_and_src.yaml", "data.train(mixed)", "either both src and tgt, or tsv"),
    ("corpus_only_src.yaml", "data.dev(half)", "either both src and tgt, or tsv"),
    ("min_words_over_max.yaml", "data.cleaning.min_words", "at most max_words"),
    ("missing_corpus_name.yaml", "data.train[0].name", "is required"),
    ("upsample_zero.yaml", "data.train(reverse).upsample", "must be at least 1"),
    ("vocab_too_small.yaml", "vocab.src_size", "must be in [8, 1000000], got 4"),
    ("min_len_over_max_len.yaml", "decoding.min_len", "[0, max_len)"),
    ("name_with_slash.yaml", "name", "without '/'"),
    ("label_smoothing_one.yaml", "training.label_smoothing", "must be in [0, 1)"),
    ("adam_betas_one_value.yaml", "training.adam_betas", "must be two numbers"),
    ("exponential_decay_base.yaml", "training.sampling_decay", "base below 1"),
    ("seed_too_large.yaml", "seed", "2**32"),
    ("rnn_key_in_transformer.yaml", "model.rnn", "is not a key of model.type: transformer"),
    ("transformer_key_in_rnn.yaml", "model.d_model", "is not a key of model.type: rnn"),
    ("positions_too_few.yaml", "data.max_src_pieces", "more than model.max_positions (64)"),
    # a valid config whose data is missing: the missing file is the thing to name
    ("missing_data_files.yaml", "no-such-folder/train.src", "data file not found"),
]

# Files whose error names a data file rather than the config file.
NAMES_DATA_FILE = {"missing_data_files.yaml"}
def case_params(cases):
    return [pytest.param(*case, id=case[0].removesuffix(".yaml")) for case in cases]


def check_one_line_error(returncode, stderr: str, name: str, key: str, fragment: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert returncode == 2, f"exit {returncode}; stderr: {stderr}"
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {stderr!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    if name not in NAMES_DATA_FILE:
        assert str(BROKEN / name) in line, f"config path not named: {line}"
    assert key in line, f"key {key!r} not named: {line}"
    assert fragment in line, f"{fragment!r} not in: {line}"


def test_every_fixture_file_has_a_case() -> None:
    files = {p.name for p in (ROOT / BROKEN).glob("*.yaml")}
    listed = [case[0] for case in CASES]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert files == set(listed)
    assert len(files) >= 30
    assert NAMES_DATA_FILE <= files


@pytest.mark.parametrize(("name", "key", "fragment"), case_params(CASES))
def test_broken_config_stops_train_with_one_line(name, key, fragment, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    run_dir = tmp_path / "runs"
    returncode = main(["train", "--config", str(BROKEN / name), "--set", f"run_dir={run_dir}"])
    captured = capsys.readouterr()
    check_one_line_error(returncode, captured.err, name, key, fragment)
    assert not run_dir.exists(), "a config or data error must not create the run folder"


def test_unknown_key_without_close_match_lists_all_keys(monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["train", "--config", str(BROKEN / "unknown_key_no_match.yaml")]) == 2
    line = capsys.readouterr().err.strip()
    for key in ("rnn", "attention", "emb_size", "decoder_hidden", "tie_embeddings"):
        assert key in line
    assert "did you mean" not in line


def test_top_level_list_without_overrides_is_a_clean_error(monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["train", "--config", str(BROKEN / "top_level_list.yaml")]) == 2
    check_one_line_error(2, capsys.readouterr().err, "top_level_list.yaml", "top level", "got a list")


def test_missing_config_file_is_one_line(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["train", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "config file not found" in err


@pytest.mark.parametrize(("override", "fragment"), [
    ("training.lr", "expected section.key=value"),
    ("model.emb_size.width=3", "emb_size is not a section"),
    ("model.hiden_size=3", "did you mean"),
    ("decoding.beam_size=0", "decoding.beam_size"),
])
def test_bad_override_is_one_line(override, fragment, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)
    config = tmp_path / "ok.yaml"
    config.write_text("model:\n  emb_size: 16\n", encoding="utf-8")
    assert main(["train", "--config", str(config), "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err


# --- real processes: exit status and stderr exactly as a user sees them ---------------------

SUBPROCESS_CASES = [
    ("syntax_tab_indent.yaml", ["train.py"]),
    ("unknown_training_key_warmup.yaml", ["-m", "seq2seq", "train"]),
    ("missing_data_files.yaml", ["train.py"]),
    ("top_level_list.yaml", ["train.py"]),
]


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Start every process at once (each spends seconds importing torch), then collect them."""
    running = {}
    for name, command in SUBPROCESS_CASES:
        run_dir = tmp_path_factory.mktemp("runs")
        argv = [sys.executable, *command, "--config", str(BROKEN / name), "--set", f"run_dir={run_dir}"]
        running[name] = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
    results = {}
    for name, process in running.items():
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


@pytest.mark.parametrize("name", case_params([(name,) for name, _ in SUBPROCESS_CASES]))
def test_subprocess_exit_code_and_single_line(name, subprocess_results) -> None:
    key, fragment = next((k, f) for n, k, f in CASES if n == name)
    result = subprocess_results[name]
    check_one_line_error(result.returncode, result.stderr, name, key, fragment)
    assert result.stdout == ""
