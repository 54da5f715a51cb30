"""CTranslate2 export: the exported model decodes as the PyTorch model does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from seq2seq.cli import main
from seq2seq.errors import UserError
from seq2seq.export import export_ctranslate2
from seq2seq.translator import Translator

from conftest import WORDS, cpu_has_int8_dot_products

pytest.importorskip("ctranslate2", reason="CTranslate2 is not installed (pip install -e '.[ctranslate2]')")

from seq2seq.ctranslate2_engine import CTranslate2Translator  # noqa: E402


def sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) for _ in range(count)]


@pytest.fixture(scope="module")
def exported(tiny_transformer_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "ct2"
    export_ctranslate2(tiny_transformer_checkpoint, folder)
    return folder


def test_float32_greedy_equals_pytorch_token_for_token(tiny_transformer_checkpoint: Path, exported: Path) -> None:
    """The briefly trained model makes mistakes, so equal outputs mean equal computations, not an easy task."""
    texts = sentences(40, seed=5)
    torch_side = Translator.from_checkpoint(tiny_transformer_checkpoint, device="cpu", method="greedy")
    engine = CTranslate2Translator.from_directory(exported, "cpu", method="greedy")
    expected, got = torch_side.translate(texts), engine.translate(texts)
    assert [n[0].pieces for n in got] == [n[0].pieces for n in expected]
    assert any(n[0].text != " ".join(reversed(t.split())) for n, t in zip(expected, texts))  # it does err
    for mine, theirs in zip(got, expected):
        # the same tokens; CTranslate2's own float32 kernels put its log-probabilities within ~0.2% of torch's
        assert mine[0].score == pytest.approx(theirs[0].score, rel=1e-2)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_prefixed_outputs_and_scores_match_pytorch(tiny_transformer_checkpoint: Path, exported: Path,
                                                   method: str) -> None:
    """With a prefix the score still covers the whole output, as the PyTorch engine's does."""
    texts = sentences(12, seed=9)
    prefixes = [("zulu yankee", "", "kilo")[i % 3] for i in range(len(texts))]
    options = {"method": method, "beam_size": 4, "n_best": 2, "length_penalty": 1.0}
    torch_side = Translator.from_checkpoint(tiny_transformer_checkpoint, device="cpu", **options)
    engine = CTranslate2Translator.from_directory(exported, "cpu", **options)
    expected = torch_side.translate(texts, prefixes=prefixes, record_attention=True)
    got = engine.translate(texts, prefixes=prefixes, record_attention=True)
    compared = 0
    for mine, theirs, prefix in zip(got, expected, prefixes):
        assert all(t.text.startswith(prefix) for t in mine)
        scores = [t.score for t in mine]
        assert scores == sorted(scores, reverse=True)
        assert len(mine[0].alignment()) == len(mine[0].pieces)
        if prefix and mine[0].pieces == theirs[0].pieces:
            assert mine[0].score == pytest.approx(theirs[0].score, rel=1e-2)
            compared += 1
    assert compared >= 4  # of the 8 prefixed sentences, most decode alike in both engines


def test_beam_n_best_and_empty_inputs(exported: Path) -> None:
    engine = CTranslate2Translator.from_directory(exported, "cpu", method="beam", beam_size=4, n_best=3)
    results = engine.translate(["alpha bravo charlie", "", "delta echo"])
    assert [len(n) for n in results] == [3, 3, 3]
    assert results[1][0].text == "" and results[0][0].text == "charlie bravo alpha"
    assert len({t.text for t in results[0]}) == 3


def test_the_engine_leaves_torchs_thread_count_alone(exported: Path) -> None:
    import torch

    before = torch.get_num_threads()
    CTranslate2Translator.from_directory(exported, "cpu").translate(["alpha bravo"])
    assert torch.get_num_threads() == before


# Without VNNI, the int8 GEMM CTranslate2 picks on non-Intel x86 (oneDNN, u8s8) adds pairs of products in
# saturating 16-bit lanes. On 2026-12-06's AVX2-only AMD CPU the tiny reversal model's int8 export then
# matched float on 24 of these 40 sentences, but on 38 with CT2_USE_MKL=1 (the same int8 weights, 32-bit
# sums): the export is right, that kernel is not. The real 30-minute model lost only 0.04 dev chrF there.
@pytest.mark.skipif(not cpu_has_int8_dot_products(),
                    reason="this CPU has no VNNI/AMX: CTranslate2's int8 GEMM saturates 16-bit sums here")
def test_int8_export_translates_like_float(tiny_transformer_checkpoint: Path, tmp_path: Path, exported: Path) -> None:
    export_ctranslate2(tiny_transformer_checkpoint, tmp_path / "int8", "int8")
    texts = sentences(40, seed=6)
    float_out = [n[0].text for n in CTranslate2Translator.from_directory(exported, "cpu").translate(texts)]
    int8_out = [n[0].text for n in CTranslate2Translator.from_directory(tmp_path / "int8", "cpu").translate(texts)]
    assert sum(a == b for a, b in zip(float_out, int8_out)) >= 36


def test_rnn_checkpoints_and_bad_targets_are_refused(tiny_checkpoint: Path, tiny_transformer_checkpoint: Path,
                                                      exported: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="CTranslate2 runs Transformers only"):
        export_ctranslate2(tiny_checkpoint, tmp_path / "rnn")
    with pytest.raises(UserError, match="not empty"):
        export_ctranslate2(tiny_transformer_checkpoint, exported)
    with pytest.raises(UserError, match="not a CTranslate2 export"):
        CTranslate2Translator.from_directory(tmp_path, "cpu")


def test_cli_export_and_translate(tiny_transformer_checkpoint: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tiny_transformer_checkpoint), "--format", "ctranslate2",
                 "--output", str(tmp_path / "m"), "--quantization", "int8"]) == 0
    capsys.readouterr()
    assert main(["translate", "--engine", "ctranslate2", "--checkpoint", str(tmp_path / "m"),
                 "--method", "greedy", "alpha bravo"]) == 0
    assert capsys.readouterr().out.strip() == "bravo alpha"
    assert main(["translate", "--engine", "ctranslate2", "alpha"]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
