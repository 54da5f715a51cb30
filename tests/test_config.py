"""Config loading: defaults, overrides, validation messages, shipped configs and their docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from seq2seq.config import (Config, DecodingConfig, config_from_dict, config_to_dict, describe_keys, load_config,
                            parse_duration, validate)
from seq2seq.errors import UserError
from seq2seq.model.build import build_model
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file_are_valid() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.model.attention == "bahdanau" and config.training.max_time == ""


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_round_trip_and_build_a_model_that_runs(path: Path) -> None:
    """What a checkpoint stores loads back to the same config, without the other family's keys."""
    config = load_config(path)
    stored = config_to_dict(config)
    assert config_from_dict(stored) == config
    assert not set(stored["model"]) & set(config.model.foreign_keys())
    target_vocab = config.vocab.src_size if config.vocab.joint else config.vocab.tgt_size
    model = build_model(config.model, config.vocab.src_size, target_vocab).eval()
    src = torch.tensor([[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]])
    with torch.no_grad():
        logits, _ = model(src, torch.tensor([4, 2]), torch.tensor([[BOS_ID, 9], [BOS_ID, 10]]))
    assert logits.shape == (2, 2, target_vocab) and torch.isfinite(logits).all()


def test_overrides_parse_yaml_values_and_create_sections(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "training: {lr: 0.1}\n"),
                         ["training.lr=0.0005", "model.rnn=lstm", "decoding.n_best=2", "training.adam_betas=[0.8, 0.9]"])
    assert config.training.lr == 0.0005
    assert config.model.rnn == "lstm"
    assert config.decoding.n_best == 2
    assert config.training.adam_betas == [0.8, 0.9]
    assert load_config(None, ["training.lr=1e-4"]).training.lr == 0.0001  # YAML 1.1 would keep it as text


def test_an_unquoted_off_is_the_choice_off(tmp_path: Path) -> None:
    """YAML reads off as false; where a choice is named off, that is what the user meant."""
    assert load_config(write(tmp_path, "training: {amp: off}\n")).training.amp == "off"
    assert load_config(None, ["training.amp=off"]).training.amp == "off"
    with pytest.raises(UserError, match="training.amp: must be one of"):
        load_config(write(tmp_path, "training: {amp: on}\n"))


def test_data_dir_overrides_root(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "data: {root: here}\n"), data_dir="/elsewhere").data.root == "/elsewhere"


@pytest.mark.parametrize(("text", "fragments"), [
    ("model: {hidden: 3}\n", ["model.hidden", "unknown key", "did you mean"]),
    ("trainig: {}\n", ["trainig", "did you mean 'training'"]),
    ("model: {dropout: 1.0}\n", ["model.dropout", "[0, 1)"]),
    ("decoding: {beam_size: 0}\n", ["decoding.beam_size", "at least 1"]),
    ("model: {emb_size: -4}\n", ["model.emb_size", "must be in [1, 65536], got -4"]),
    ("model: {rnn: gru2}\n", ["model.rnn", "one of", "did you mean 'gru'"]),
    ("training: {lr: fast}\n", ["training.lr", "expected a finite number"]),
    ("training: {lr: .inf}\n", ["training.lr", "expected a finite number"]),
    ("training: {lr: 1}\ntraining: {lr: 2}\n", ["YAML syntax error", "appears twice"]),
    ("model: {hiden_size: 3}\n", ["model.hiden_size", "did you mean 'decoder_hidden'"]),
    ("training: {learning_rate: 3}\n", ["did you mean 'lr'"]),
    ("seed: -1\n", ["seed", "2**32"]),
    ("- a\n- b\n", ["top level", "expected a mapping"]),
    ("model: {bidirectional: 1}\n", ["model.bidirectional", "true or false"]),
    ("training: {max_time: soon}\n", ["training.max_time", "not a duration"]),
    ("training: {schedule: linear_decay}\n", ["training.schedule", "set training.max_time or training.max_steps"]),
    ("model: [1, 2]\n", ["model", "expected a mapping"]),
    ("model: {attention: luong_dot, encoder_hidden: 100, decoder_hidden: 256}\n", ["model.attention", "luong_dot"]),
    ("data: {train: [{src: a.en, tgt: a.hi}]}\n", ["data.train[0].name", "required"]),
    ("data: {train: [{name: a, src: a.en}]}\n", ["data.train(a)", "both src and tgt"]),
    ("model: {rnn: gru\n", ["YAML syntax error", "line"]),
])
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_config_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_bad_override_is_a_user_error() -> None:
    with pytest.raises(UserError, match="section.key=value"):
        load_config(None, ["training.lr"])


@pytest.mark.parametrize(("text", "seconds"), [("", 0), ("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_every_key_is_documented_in_configs_readme() -> None:
    readme = (ROOT / "configs" / "README.md").read_text(encoding="utf-8")
    for key, _default, meaning in describe_keys():
        assert f"`{key}`" in readme, f"configs/README.md lacks {key}; regenerate with python -m seq2seq keys"
        assert meaning in readme


def test_a_beam_size_or_an_n_best_list_without_a_method_means_beam() -> None:
    greedy = DecodingConfig(method="greedy")
    assert greedy.override({"beam_size": 3}).method == "beam"
    assert greedy.override({"n_best": 2, "beam_size": None}).method == "beam"
    assert greedy.override({"n_best": 1}).method == "greedy"
    assert greedy.override({"beam_size": 3, "method": "sample"}).method == "sample"
    assert greedy.override({"top_k": None}) == greedy


def test_decoding_bounds_are_checked_as_declared() -> None:
    for key, value, message in (("seed", -1, "must be in [0, 2**63), got -1"), ("top_p", 1.5, "must be in (0, 1], got 1.5"),
                                ("max_len_ratio", 0.0, "must be more than 0, got 0.0")):
        with pytest.raises(UserError, match=re.escape(f"decoding.{key}: {message}")):
            validate(Config(decoding=DecodingConfig(**{key: value})), "test")
