"""Smoke runs on the real English-Hindi data in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import sentencepiece as spm
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, SHARED_DATA, cpu_has_int8_dot_products
from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import load_config
from seq2seq.startup import prepare_run
from seq2seq.training import Trainer
from seq2seq.translator import Translator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_DATA / "en-hi" / "train.en").is_file(), reason="../shared/data is not here"),
]

# Smaller shapes keep the smoke run to seconds; the real configs are exercised below
SMALL = ("vocab.src_size=1000", "vocab.tgt_size=1000", "model.d_model=64", "model.ff_size=256",
         "model.encoder_layers=2", "model.decoder_layers=2", "training.warmup_steps=50", "training.batch_size=1500",
         "data.test=[]")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    """The default config at a small width, 300 updates on the real data."""
    config = load_config(ROOT / "configs" / "en-hi.yaml",
                         [f"run_dir={tmp_path_factory.mktemp('runs')}", *SMALL, "training.max_steps=300",
                          "training.valid_every=300", "training.valid_limit=50", "training.log_every=50",
                          "training.lr=0.003"], str(SHARED_DATA))
    trainer = Trainer(prepare_run(config))
    trainer.train()
    return trainer


def test_loss_falls_on_real_data_and_tensorboard_has_the_curves(small_run: Trainer) -> None:
    trainer = small_run
    events = EventAccumulator(str(trainer.run_path))
    events.Reload()
    losses = [event.value for event in events.Scalars("train/loss")]
    # an untrained model scores about ln(1000) = 6.9 nats per token; 300 updates must take it well below
    assert losses[-1] < losses[0] and losses[-1] < math.log(1000) - 1.5, losses
    assert {"train/loss", "train/perplexity", "train/learning_rate", "dev/loss", "dev/bleu", "dev/chrf"} <= set(
        events.Tags()["scalars"])
    assert "dev/attention" in events.Tags()["images"]
    assert any(tag.startswith("dev/samples") for tag in events.Tags()["tensors"])


# On 2026-12-06's AVX2-only AMD CPU this gave int8 6.37 against 7.09 chrF, and passed with CT2_USE_MKL=1
# (the same int8 weights through MKL's 32-bit sums): the kernel, not the export (see tests/test_export.py).
@pytest.mark.skipif(not cpu_has_int8_dot_products(),
                    reason="this CPU has no VNNI/AMX: CTranslate2's int8 GEMM saturates 16-bit sums here")
def test_ctranslate2_int8_scores_within_half_a_chrf_point_of_pytorch(small_run: Trainer, tmp_path: Path) -> None:
    """The issue's bar for int8 export, on the real IITB dev set, greedy."""
    pytest.importorskip("ctranslate2", reason="CTranslate2 is not installed (pip install -e '.[ctranslate2]')")
    from seq2seq.ctranslate2_engine import CTranslate2Translator
    from seq2seq.evaluation import score
    from seq2seq.export import export_ctranslate2

    dev = small_run.eval_sets.dev
    export_ctranslate2(small_run.run_path / "best.pt", tmp_path / "int8", "int8")
    engines = {"pytorch": Translator.from_checkpoint(small_run.run_path / "best.pt", device="cpu", method="greedy"),
               "int8": CTranslate2Translator.from_directory(tmp_path / "int8", "cpu", method="greedy")}
    chrf = {name: score([n[0].text for n in engine.translate(dev.src)], dev.tgt).chrf
            for name, engine in engines.items()}
    assert chrf["pytorch"] > 5, chrf  # the model translates something, so the comparison means something
    assert abs(chrf["int8"] - chrf["pytorch"]) <= 0.5, chrf


@pytest.mark.parametrize("name", ["en-hi", "en-hi-gru", "en-hi-lstm-luong", "en-hi-noattn"])
def test_shipped_config_trains_and_decodes(name: str, tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / f"{name}.yaml",
                         [f"run_dir={tmp_path}", "training.max_steps=4", "training.valid_every=4",
                          "training.valid_limit=4", "data.test=[]", "training.batch_size=600",
                          "decoding.max_len=20"], str(SHARED_DATA))
    trainer = Trainer(prepare_run(config))
    trainer.train()
    translator = Translator.from_checkpoint(trainer.run_path / "best.pt", device="cpu")
    (nbest,) = translator.translate(["Hello, how are you?"])
    best = nbest[0]
    payload = load_checkpoint(trainer.run_path / "best.pt")
    source = spm.SentencePieceProcessor(model_proto=payload["src_vocab"])
    target = spm.SentencePieceProcessor(model_proto=payload["tgt_vocab"])
    assert best.source_pieces == source.encode("Hello, how are you?", out_type=str)
    # four updates teach the output layer Hindi's frequent pieces (है, की, ।): the output is Hindi, if not yet right
    assert 1 <= len(best.pieces) <= 20, best.pieces
    assert all(target.piece_to_id(piece) != target.unk_id() for piece in best.pieces), best.pieces
    assert best.text == target.decode_pieces(best.pieces)
    assert any("\u0900" <= ch <= "\u097f" for ch in best.text), best.text
