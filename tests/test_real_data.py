"""Smoke runs on the real English-Hindi data in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, SHARED_DATA
from seq2seq.config import load_config
from seq2seq.training import Trainer
from seq2seq.translator import Translator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_DATA / "en-hi" / "train.en").is_file(), reason="../shared/data is not here"),
]

# Smaller shapes keep the smoke run to seconds; the real configs are exercised below
SMALL = ("vocab.src_size=1000", "vocab.tgt_size=1000", "model.emb_size=64", "model.encoder_hidden=64",
         "model.decoder_hidden=64", "training.batch_size=1500", "data.test=[]")


def test_loss_falls_on_real_data_and_tensorboard_has_the_curves(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "en-hi.yaml",
                         [f"run_dir={tmp_path}", *SMALL, "training.max_steps=300", "training.valid_every=300",
                          "training.valid_limit=50", "training.log_every=50", "training.lr=0.003"],
                         str(SHARED_DATA))
    trainer = Trainer(config)
    trainer.train()
    events = EventAccumulator(str(trainer.run_path))
    events.Reload()
    losses = [event.value for event in events.Scalars("train/loss")]
    # an untrained model scores about ln(1000) = 6.9 nats per token; 300 updates must take it well below
    assert losses[-1] < losses[0] and losses[-1] < math.log(1000) - 1.5, losses
    assert {"train/loss", "train/perplexity", "train/learning_rate", "dev/loss", "dev/bleu", "dev/chrf"} <= set(
        events.Tags()["scalars"])
    assert "dev/attention" in events.Tags()["images"]
    assert any(tag.startswith("dev/samples") for tag in events.Tags()["tensors"])


@pytest.mark.parametrize("name", ["en-hi", "en-hi-lstm-luong", "en-hi-noattn"])
def test_shipped_config_trains_and_decodes(name: str, tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / f"{name}.yaml",
                         [f"run_dir={tmp_path}", "training.max_steps=4", "training.valid_every=4",
                          "training.valid_limit=4", "data.test=[]", "training.batch_size=600",
                          "decoding.max_len=20"], str(SHARED_DATA))
    trainer = Trainer(config)
    trainer.train()
    translator = Translator.from_checkpoint(trainer.run_path / "best.pt", device="cpu")
    (nbest,) = translator.translate(["Hello, how are you?"])
    assert isinstance(nbest[0].text, str) and len(nbest[0].pieces) <= 20
