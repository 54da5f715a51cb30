"""Tests for seq2seq.model.ensemble: averaged log-probabilities, any mix of families, one vocabulary."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import model_payload, read_model, save_checkpoint
from seq2seq.config import DecodingConfig, load_config
from seq2seq.data.batching import pad_sources
from seq2seq.errors import UserError
from seq2seq.model.build import build_model
from seq2seq.model.ensemble import Ensemble, read_ensemble
from seq2seq.model.interface import EncoderDecoder
from seq2seq.search import Hypothesis, search
from seq2seq.translator import Translator
from seq2seq.vocab import BOS_ID, EOS_ID

from conftest import ROOT, WORDS, other_vocabulary_checkpoint

SCORE_TOL = 1e-4
CONFIGS = {
    "greedy": DecodingConfig(method="greedy"),
    "beam": DecodingConfig(method="beam", beam_size=4, length_penalty=0.0),
    "beam-nbest3": DecodingConfig(method="beam", beam_size=4, n_best=3, length_penalty=1.0),
    "sample": DecodingConfig(method="sample", seed=5),
}


@pytest.fixture(scope="module")
def transformer_member(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny Transformer on the trained RNN's vocabularies: a second family that differs."""
    config = load_config(ROOT / "configs" / "tiny-transformer.yaml")
    _, _, src_vocab, tgt_vocab = read_model(tiny_checkpoint)
    torch.manual_seed(4)
    model = build_model(config.model, len(src_vocab), len(tgt_vocab))
    path = tmp_path_factory.mktemp("ensemble") / "transformer.pt"
    save_checkpoint(path, model_payload(config, src_vocab, tgt_vocab, model))
    return path


@pytest.fixture(scope="module")
def rnn(tiny_checkpoint: Path) -> EncoderDecoder:
    return read_model(tiny_checkpoint)[1].eval()


@pytest.fixture(scope="module")
def sources(tiny_checkpoint: Path) -> list[list[int]]:
    rng = random.Random(3)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9))) for _ in range(12)]
    return read_model(tiny_checkpoint)[2].encode(texts)


def decode(model: EncoderDecoder, rows: list[list[int]], config: DecodingConfig) -> list[list[Hypothesis]]:
    src, lengths = pad_sources(rows)
    return search(model, src, lengths, config)


def teacher_forced(model: EncoderDecoder, source: list[int], tokens: list[int]) -> float:
    src, lengths = pad_sources([source])
    with torch.no_grad():
        logits, _ = model(src, lengths, torch.tensor([[BOS_ID, *tokens]]))
    gold = torch.tensor([[*tokens, EOS_ID]]).unsqueeze(2)
    return float(logits.float().log_softmax(-1).gather(2, gold).sum())


def assert_same(expected: list[list[Hypothesis]], got: list[list[Hypothesis]]) -> None:
    for mine, theirs in zip(expected, got):
        assert [h.tokens for h in mine] == [h.tokens for h in theirs]
        assert [h.score for h in theirs] == pytest.approx([h.score for h in mine], abs=SCORE_TOL)


@pytest.fixture(scope="module", params=["rnn", "transformer"])
def trained(request: pytest.FixtureRequest) -> EncoderDecoder:
    """Each trained tiny model in turn."""
    checkpoint = request.getfixturevalue("tiny_checkpoint" if request.param == "rnn" else "tiny_transformer_checkpoint")
    return read_model(checkpoint)[1].eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_an_ensemble_of_one_or_of_a_model_with_itself_is_the_model(trained, sources, name: str) -> None:
    expected = decode(trained, sources, CONFIGS[name])
    assert_same(expected, decode(Ensemble([trained]), sources, CONFIGS[name]))
    assert_same(expected, decode(Ensemble([trained, trained]), sources, CONFIGS[name]))


def test_greedy_score_is_the_mean_of_the_members_teacher_forced_log_probabilities(
        rnn, transformer_member: Path, sources) -> None:
    transformer = read_model(transformer_member)[1].eval()
    ensemble = Ensemble([rnn, transformer])
    for source, (hypothesis,) in zip(sources, decode(ensemble, sources, CONFIGS["greedy"])):
        mean = (teacher_forced(rnn, source, hypothesis.tokens) + teacher_forced(transformer, source, hypothesis.tokens)) / 2
        assert hypothesis.score == pytest.approx(mean, abs=SCORE_TOL)


def test_a_mixed_ensemble_decodes_n_best_lists_and_samples(rnn, transformer_member: Path, sources) -> None:
    ensemble = Ensemble([rnn, read_model(transformer_member)[1].eval()])
    assert ensemble.max_target_positions is not None  # the Transformer's limit binds the ensemble
    for nbest in decode(ensemble, sources, CONFIGS["beam-nbest3"]):
        scores = [h.score for h in nbest]
        assert len(nbest) == 3 and scores == sorted(scores, reverse=True)
    sampled = decode(ensemble, sources, CONFIGS["sample"])
    assert [h[0].tokens for h in sampled] == [h[0].tokens for h in decode(ensemble, sources, CONFIGS["sample"])]


def test_translator_from_several_checkpoints_translates_with_the_ensemble(tiny_checkpoint: Path) -> None:
    single = Translator.from_checkpoint(tiny_checkpoint, device="cpu", method="greedy")
    double = Translator.from_checkpoint([tiny_checkpoint, tiny_checkpoint], device="cpu", method="greedy")
    assert isinstance(double.model, Ensemble)
    texts = ["alpha bravo charlie", "delta echo foxtrot golf"]
    assert [n[0].text for n in double.translate(texts)] == [n[0].text for n in single.translate(texts)]


def test_members_with_another_vocabulary_are_refused_in_one_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    other = other_vocabulary_checkpoint(tiny_checkpoint, tmp_path / "other.pt")
    with pytest.raises(UserError, match=r"other.pt: its source vocabulary differs") as error:
        read_ensemble([tiny_checkpoint, other])
    assert "\n" not in str(error.value)
