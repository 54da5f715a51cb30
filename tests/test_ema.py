"""The weight average: its arithmetic, the swap used for validation, and what checkpoints hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from seq2seq.checkpoint import count_state_parameters, load_checkpoint
from seq2seq.ema import WeightAverage
from seq2seq.evaluation import score
from seq2seq.startup import prepare_run
from seq2seq.training import Trainer
from seq2seq.translator import Translator

from conftest import tiny_config


def test_average_follows_the_warmed_up_decay() -> None:
    model = nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.5)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(float(step))
        ema.update(step)
        decay = min(0.5, (1 + step) / (10 + step))
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, model.parameters())]
    for average, value in zip(ema.average, expected):
        assert torch.allclose(average, value, atol=1e-6)
    assert not torch.allclose(ema.average[0], model.weight)


def test_swap_restores_the_trained_weights_even_after_an_error() -> None:
    model = nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.mul_(3)
    trained = model.weight.detach().clone()
    with pytest.raises(RuntimeError), ema.swapped_in():
        assert torch.equal(model.weight, ema.average[0])
        raise RuntimeError("validation failed")
    assert torch.equal(model.weight, trained)
    assert torch.equal(ema.averaged_state_dict()["weight"], ema.average[0])
    assert torch.equal(model.weight, trained)


def test_checkpoints_hold_the_average_for_translation_and_the_trained_weights_for_resume(
        reversal_data: Path, tmp_path: Path) -> None:
    config = tiny_config(reversal_data, tmp_path, "training.max_steps=40", "training.valid_every=20",
                         "training.valid_limit=5", "data.test=[]", "training.ema_decay=0.95", "vocab.joint=true",
                         "model.share_embeddings=true", "model.tie_embeddings=true", family="transformer")
    trainer = Trainer(prepare_run(config))
    trainer.train()
    payload = load_checkpoint(trainer.run_path / "step-00000040.pt")
    averaged, trained = payload["model"], payload["training"]["trained_weights"]
    assert trained.keys() == averaged.keys()
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(trained[name], value), name
    assert any(not torch.equal(trained[name], averaged[name]) for name in trained)
    # the shared embedding is one tensor in the average too: stored once, counted once
    shared = [name for name in averaged if name.endswith("tokens.weight")] + ["output.weight"]
    assert len({averaged[name].data_ptr() for name in shared}) == 1, shared
    assert count_state_parameters(averaged) == count_state_parameters(trained)
    for parameter, average in zip(trainer.ema.parameters, trainer.ema.average):
        name = next(n for n, p in trainer.model.named_parameters() if p is parameter)
        assert torch.equal(averaged[name], average), name
    # translate.py and the test scores read the average, and validation scored that same average
    translator = Translator.from_checkpoint(trainer.run_path / "step-00000040.pt", device="cpu")
    for name, value in translator.model.state_dict().items():
        assert torch.equal(value, averaged[name]), name
    dev = trainer.eval_sets.dev
    hypotheses = [nbest[0].text for nbest in translator.translate(dev.src[:5])]
    assert score(hypotheses, dev.tgt[:5]).chrf == trainer.progress.history[-1]["chrf"]
