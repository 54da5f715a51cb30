"""Forced decoding: scores of given translations, through the Python API and `python -m seq2seq score`."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from seq2seq.checkpoint import read_model
from seq2seq.cli import main
from seq2seq.errors import UserError
from seq2seq.model.build import build_model
from seq2seq.scoring import score_ids, score_pairs
from seq2seq.translator import Translator
from seq2seq.vocab import EOS_ID, UNK_ID

FIRST_SPECIAL_FREE_ID = 4  # pad, unk, bos, eos come first


@pytest.fixture(params=["rnn", "transformer"])
def checkpoint(request: pytest.FixtureRequest) -> Path:
    name = "tiny_checkpoint" if request.param == "rnn" else "tiny_transformer_checkpoint"
    return request.getfixturevalue(name)


def dev_sources(reversal_data: Path, count: int = 8) -> list[str]:
    return (reversal_data / "dev.src").read_text(encoding="utf-8").splitlines()[:count]


def greedy(checkpoint: Path, sources: list[str]) -> tuple[Translator, list[list[int]], list[list[int]], list[float]]:
    """The translator, the source ids, and the greedy outputs' ids and search scores."""
    translator = Translator.from_checkpoint(checkpoint, device="cpu", method="greedy", no_repeat_ngram=0)
    src_ids = translator.src_vocab.encode(sources)
    hypotheses = [nbest[0] for nbest in translator.engine.search(src_ids, translator.decoding, record_attention=False)]
    return translator, src_ids, [h.tokens for h in hypotheses], [h.score for h in hypotheses]


def test_a_greedy_output_gets_back_its_search_score(checkpoint: Path, reversal_data: Path) -> None:
    translator, src_ids, outputs, search_scores = greedy(checkpoint, dev_sources(reversal_data))
    scores = score_ids(translator.model, src_ids, outputs)
    for output, pieces, search_score in zip(outputs, scores, search_scores):
        assert len(pieces) == len(output) + 1  # EOS is scored too
        assert sum(pieces) == pytest.approx(search_score, abs=1e-4)


def test_a_greedy_output_outscores_random_outputs_of_its_length(checkpoint: Path, reversal_data: Path) -> None:
    translator, src_ids, outputs, _ = greedy(checkpoint, dev_sources(reversal_data))
    rng = random.Random(0)
    vocab_size = len(translator.tgt_vocab)
    own = [sum(s) for s in score_ids(translator.model, src_ids, outputs)]
    for _ in range(5):
        others = [[rng.randrange(FIRST_SPECIAL_FREE_ID, vocab_size) for _ in output] for output in outputs]
        for own_total, other in zip(own, score_ids(translator.model, src_ids, others)):
            assert own_total >= sum(other)


def test_each_greedy_piece_is_the_best_continuation_of_its_prefix(checkpoint: Path, reversal_data: Path) -> None:
    """Position t of a greedy output scores as high as the best piece search may pick after the same prefix."""
    translator, src_ids, outputs, _ = greedy(checkpoint, dev_sources(reversal_data, 3))
    own = score_ids(translator.model, src_ids, outputs)
    for src, output, own_scores in zip(src_ids, outputs, own):
        for t in range(len(output)):
            rivals = [output[:t] + [piece] for piece in [UNK_ID, *range(EOS_ID, len(translator.tgt_vocab))]]
            rival_scores = score_ids(translator.model, [src] * len(rivals), rivals)
            assert max(scores[t] for scores in rival_scores) == pytest.approx(own_scores[t], abs=1e-5)


def test_scores_do_not_depend_on_the_batch(checkpoint: Path, reversal_data: Path) -> None:
    config, model, src_vocab, tgt_vocab = read_model(checkpoint)
    sources = dev_sources(reversal_data, 12)
    targets = (reversal_data / "dev.tgt").read_text(encoding="utf-8").splitlines()[:12]
    targets[3] = ""  # the empty translation: EOS alone
    together = score_pairs(model, src_vocab, tgt_vocab, sources, targets, batch_size=len(sources))
    alone = score_pairs(model, src_vocab, tgt_vocab, sources, targets, batch_size=1)
    assert len(together[3].piece_scores) == 1
    for a, b in zip(together, alone):
        assert a.pieces == b.pieces and a.pieces[-1] == "</s>"
        assert a.piece_scores == pytest.approx(b.piece_scores, abs=1e-5)
        assert a.normalized == pytest.approx(a.total / len(a.pieces))


def test_scoring_leaves_a_training_model_in_training_mode_and_ignores_dropout(tiny_checkpoint: Path,
                                                                             reversal_data: Path) -> None:
    config, trained, src_vocab, tgt_vocab = read_model(tiny_checkpoint)
    model = build_model(dataclasses.replace(config.model, dropout=0.5), len(src_vocab), len(tgt_vocab))
    model.load_state_dict(trained.state_dict())
    sources = dev_sources(reversal_data, 4)
    in_eval = score_pairs(model.eval(), src_vocab, tgt_vocab, sources, sources)
    in_training = score_pairs(model.train(), src_vocab, tgt_vocab, sources, sources)
    assert model.training
    assert [s.total for s in in_training] == pytest.approx([s.total for s in in_eval], abs=1e-6)


def test_too_long_targets_and_sources_are_user_errors(tiny_transformer_checkpoint: Path) -> None:
    config, model, src_vocab, tgt_vocab = read_model(tiny_transformer_checkpoint)
    long = " ".join(["alpha"] * config.model.max_positions)
    with pytest.raises(UserError, match="target line 2 has"):
        score_pairs(model, src_vocab, tgt_vocab, ["alpha", "bravo"], ["alpha", long])
    with pytest.raises(UserError, match="source line 1 has"):
        score_pairs(model, src_vocab, tgt_vocab, [long], ["alpha"], max_source_pieces=10)


def test_the_score_command_prints_one_line_per_pair(tiny_transformer_checkpoint: Path, reversal_data: Path,
                                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, model, src_vocab, tgt_vocab = read_model(tiny_transformer_checkpoint)
    sources = dev_sources(reversal_data, 5)
    targets = (reversal_data / "dev.tgt").read_text(encoding="utf-8").splitlines()[:5]
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("\n".join(targets) + "\n", encoding="utf-8")
    expected = score_pairs(model, src_vocab, tgt_vocab, sources, targets)
    args = ["score", "--checkpoint", str(tiny_transformer_checkpoint), "--source", str(tmp_path / "src.txt"),
            "--target", str(tmp_path / "hyp.txt"), "--device", "cpu"]
    assert main([*args, "--batch-size", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(sources)
    for line, pair in zip(lines, expected):
        normalized, total = map(float, line.split("\t"))
        assert normalized == pytest.approx(pair.normalized, abs=1e-4)
        assert total == pytest.approx(pair.total, abs=1e-4)
    assert main([*args, "--pieces"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split("\t")
    assert first[2].split() == expected[0].pieces
    assert [float(s) for s in first[3].split()] == pytest.approx(expected[0].piece_scores, abs=1e-4)


def test_the_score_command_refuses_mismatched_line_counts(tiny_transformer_checkpoint: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src.txt").write_text("alpha\nbravo\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("alpha\n", encoding="utf-8")
    code = main(["score", "--checkpoint", str(tiny_transformer_checkpoint), "--source", str(tmp_path / "src.txt"),
                 "--target", str(tmp_path / "hyp.txt")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"error: {tmp_path / 'src.txt'} has 2 lines but {tmp_path / 'hyp.txt'} "
                                        "has 1; give one translation per source line"]
