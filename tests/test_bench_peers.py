"""bench/peers/run_peer.py's Transformer recipe: the peer's config follows the seq2seq config it is given."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, bench_script
from seq2seq.config import load_config


@pytest.fixture(scope="module")
def run():
    yield from bench_script("run")


@pytest.fixture(scope="module")
def run_peer(run):
    return sys.modules["run_peer"]  # bench/run.py puts bench/peers on the path and imports run_peer


def write_pieces(tmp_path: Path, joint: bool = True) -> None:
    """A tiny prepared work folder: pieces and one joint vocabulary (or two that differ)."""
    for folder in ("vocab", "pieces"):
        (tmp_path / folder).mkdir()
    pieces = ["<pad>", "<unk>", "<s>", "</s>", "▁a", "▁b"]
    for side in ("src", "tgt"):
        words = pieces if joint or side == "src" else [*pieces, "▁c"]
        (tmp_path / "vocab" / f"{side}.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    (tmp_path / "pieces" / "train.en").write_text("▁a ▁b\n▁b\n", encoding="utf-8")


def opennmt_config(run_peer, tmp_path: Path, argv: list[str]) -> dict:
    """The OpenNMT training config run_peer.py writes for these arguments, on a tiny joint vocabulary."""
    write_pieces(tmp_path)
    settings = run_peer.parse_args(["--peer", "opennmt", "--budget", "60", "--work", str(tmp_path), *argv])
    settings.run_dir.mkdir(parents=True)
    command = run_peer.OpenNMT(settings).train_cmd()
    return yaml.safe_load(Path(command[-1]).read_text(encoding="utf-8"))


def test_the_peer_transformer_takes_the_shape_and_recipe_of_the_seq2seq_config(run_peer, tmp_path: Path):
    config = load_config(ROOT / "configs" / "en-hi.yaml")
    m, t = config.model, config.training
    onmt = opennmt_config(run_peer, tmp_path, ["--model", "transformer"])
    assert (onmt["enc_layers"], onmt["dec_layers"]) == (m.encoder_layers, m.decoder_layers)
    assert onmt["hidden_size"] == onmt["word_vec_size"] == m.d_model
    assert (onmt["heads"], onmt["transformer_ff"]) == (m.heads, m.ff_size)
    assert (onmt["dropout"], onmt["attention_dropout"]) == ([m.dropout], [m.attention_dropout])
    assert (onmt["label_smoothing"], onmt["max_grad_norm"]) == (t.label_smoothing, t.clip_grad_norm)
    assert (onmt["adam_beta2"], onmt["batch_size"], onmt["warmup_steps"]) == (t.adam_betas[1], t.batch_size,
                                                                              t.warmup_steps)
    assert onmt["average_decay"] == pytest.approx(1 - t.ema_decay)  # OpenNMT weighs the new parameters
    # OpenNMT's noam rate at the end of warm-up: learning_rate * d_model^-0.5 * warmup^-0.5 = seq2seq's peak
    peak = onmt["learning_rate"] * onmt["hidden_size"] ** -0.5 * onmt["warmup_steps"] ** -0.5
    assert peak == pytest.approx(t.lr, rel=1e-5)
    settings = run_peer.parse_args(["--peer", "opennmt", "--model", "transformer", "--budget", "60"])
    assert (settings.beam_alpha, settings.no_repeat_ngram) == (config.decoding.length_penalty,
                                                               config.decoding.no_repeat_ngram)


def test_the_joeynmt_transformer_takes_the_shape_and_recipe_of_the_seq2seq_config(run_peer, tmp_path: Path):
    config = load_config(ROOT / "configs" / "en-hi.yaml")
    m, t = config.model, config.training
    write_pieces(tmp_path)
    settings = run_peer.parse_args(["--peer", "joeynmt", "--model", "transformer", "--budget", "60",
                                    "--work", str(tmp_path)])
    settings.run_dir.mkdir(parents=True)
    joey = yaml.safe_load(run_peer.JoeyNMT(settings).config(beam=5).read_text(encoding="utf-8"))
    model, training = joey["model"], joey["training"]
    for side in ("encoder", "decoder"):
        layers = model[side]
        assert (layers["type"], layers["layer_norm"]) == ("transformer", "pre")
        assert layers["num_layers"] == (m.encoder_layers if side == "encoder" else m.decoder_layers)
        assert layers["hidden_size"] == layers["embeddings"]["embedding_dim"] == m.d_model
        assert (layers["num_heads"], layers["ff_size"], layers["dropout"]) == (m.heads, m.ff_size, m.dropout)
    assert model["tied_embeddings"] and model["tied_softmax"]
    assert joey["data"]["src"]["voc_file"] == joey["data"]["trg"]["voc_file"]
    assert (training["learning_rate_peak"], training["learning_rate_warmup"]) == (t.lr, t.warmup_steps)
    assert training["scheduling"] == "warmupinversesquareroot" and training["adam_betas"] == list(t.adam_betas)
    assert (training["batch_type"], training["batch_size"]) == ("token", t.batch_size)
    assert (training["label_smoothing"], training["clip_grad_norm"]) == (t.label_smoothing, t.clip_grad_norm)
    assert (joey["testing"]["beam_size"], joey["testing"]["beam_alpha"]) == (5, config.decoding.length_penalty)
    assert joey["testing"]["no_repeat_ngram_size"] == (config.decoding.no_repeat_ngram or -1)  # -1: JoeyNMT's off


@pytest.mark.parametrize("peer", ["joeynmt", "opennmt"])
def test_a_peer_transformer_refuses_two_vocabularies(run_peer, tmp_path: Path, peer: str):
    write_pieces(tmp_path, joint=False)
    settings = run_peer.parse_args(["--peer", peer, "--model", "transformer", "--budget", "60",
                                    "--work", str(tmp_path)])
    settings.run_dir.mkdir(parents=True)
    toolkit = run_peer.JoeyNMT(settings) if peer == "joeynmt" else run_peer.OpenNMT(settings)
    with pytest.raises(run_peer.PeerError, match="holds two: prepare the pieces with prepare_data.py --config"):
        toolkit.config() if peer == "joeynmt" else toolkit.train_cmd()


def test_command_line_values_win_over_the_config(run_peer, tmp_path: Path):
    onmt = opennmt_config(run_peer, tmp_path, ["--model", "transformer", "--label-smoothing", "0.3", "--clip", "5"])
    assert (onmt["label_smoothing"], onmt["max_grad_norm"]) == (0.3, 5.0)
    settings = run_peer.parse_args(["--peer", "opennmt", "--model", "transformer", "--budget", "60",
                                    "--beam-alpha", "0.6"])
    assert settings.beam_alpha == 0.6


def test_the_matched_gru_keeps_its_own_settings(run_peer, tmp_path: Path):
    defaults = run_peer.Settings(peer="opennmt", budget=60, work=tmp_path)
    onmt = opennmt_config(run_peer, tmp_path, [])
    assert onmt["encoder_type"] == "brnn"
    assert (onmt["label_smoothing"], onmt["max_grad_norm"]) == (defaults.label_smoothing, defaults.clip)
    assert run_peer.parse_args(["--peer", "opennmt", "--budget", "60"]).beam_alpha == defaults.beam_alpha


def test_a_config_the_template_cannot_follow_is_refused(run_peer):
    with pytest.raises(SystemExit, match="needs a Transformer"):
        run_peer.parse_args(["--peer", "opennmt", "--model", "transformer", "--budget", "60",
                             "--config", str(ROOT / "configs" / "en-hi-gru.yaml")])


def test_the_comparison_table_states_the_recipe_it_ran(run):
    config = load_config(ROOT / "configs" / "en-hi.yaml")
    machine = {"date": "2026-12-06 23:00", "cpu": "a CPU", "threads": 2, "budget_s": 1800.0}
    footer = run.transformer_footer({"seq2seq": {}, "opennmt": {"error": "failed (exit status 1)"}}, machine)
    assert f"width {config.model.d_model}" in footer[0]
    assert f"alpha {config.decoding.length_penalty:g}" in footer[0]
    assert f"no {config.decoding.no_repeat_ngram}-gram of pieces twice" in footer[0]
    assert f"the {config.training.ema_decay:g} moving average" in footer[0]
    assert footer[1] == "opennmt: failed (exit status 1)"


def test_seq2seq_scores_are_read_under_the_peers_keys(run, tmp_path: Path):
    scores = {"iitb-dev": {"bleu": 1.5, "chrf": 19.7, "length_ratio": 1.12},
              "iitb-test": {"bleu": 2.0, "chrf": 20.1, "length_ratio": 1.1},
              "tatoeba": {"bleu": 13.7, "chrf": 34.3, "length_ratio": 0.93}}
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"results": [{"label": "bench", "updates": 2711, "parameters": 4659776,
                                             "scores": scores}]}), encoding="utf-8")
    result = run.seq2seq_transformer_result(path)
    assert (result["train_steps"], result["params"]) == (2711, 4659776)
    assert (result["beam5_chrf"], result["dev_beam5_chrf"], result["tatoeba_beam5_len_ratio"]) == (20.1, 19.7, 0.93)
    assert "flores_beam5_chrf" not in result  # a set the run did not score leaves a gap, not a zero
    assert "error" in run.seq2seq_transformer_result(tmp_path / "missing.json")


def test_a_configs_pieces_are_written_anew_and_the_matched_ones_once(run, tmp_path: Path, monkeypatch):
    calls = []
    monkeypatch.setattr(run.subprocess, "run", lambda cmd, check: calls.append(cmd) or type("Done", (), {"returncode": 0}))
    (tmp_path / "manifest.json").write_text("{}", encoding="utf-8")  # pieces of an earlier run are there
    assert run.ensure_pieces(tmp_path, tmp_path)
    assert calls == []
    assert run.ensure_pieces(tmp_path, tmp_path, "configs/en-hi.yaml")
    assert calls and calls[0][-2:] == ["--config", "configs/en-hi.yaml"]
