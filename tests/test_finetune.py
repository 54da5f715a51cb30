"""Fine-tuning (training.init_from): the checkpoint's vocabularies byte for byte, its weights, a new task learnt."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import WORDS, tiny_config
from seq2seq.checkpoint import load_checkpoint
from seq2seq.errors import UserError
from seq2seq.testsets import evaluate_tests
from seq2seq.startup import prepare_run
from seq2seq.training import Trainer
from seq2seq.translator import Translator


def write_copy_task(folder: Path, train: int = 2000, dev: int = 50, test: int = 100, seed: int = 5) -> Path:
    """A new task over the reversal task's words: the target is the source unchanged."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("dev", dev), ("test", test)):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(count)]
        for side in ("src", "tgt"):
            (folder / f"{split}.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def copy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_copy_task(tmp_path_factory.mktemp("copy"))


def copy_bleu(checkpoint: Path, config_tests: list) -> float:
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    return evaluate_tests(translator, config_tests, progress=False)["reverse-test"].bleu  # tiny.yaml's name; copy data


@pytest.mark.slow
def test_fine_tuning_keeps_the_vocabulary_and_learns_the_new_task(tiny_checkpoint: Path, copy_data: Path,
                                                                  tmp_path: Path) -> None:
    start = load_checkpoint(tiny_checkpoint)
    config = tiny_config(copy_data, tmp_path, f"training.init_from={tiny_checkpoint}", "training.max_steps=100",
                         "training.valid_every=100", "vocab.src_size=40", "vocab.tgt_size=40")
    trainer = Trainer(prepare_run(config))
    assert trainer.progress.step == 0 and trainer.lr.scale == 1.0  # fresh progress and schedule
    for name, value in trainer.model.state_dict().items():  # the checkpoint's weights, not a new initialisation
        assert value.equal(start["model"][name]), name
    before = copy_bleu(tiny_checkpoint, trainer.eval_sets.tests)
    trainer.train()
    tuned = load_checkpoint(trainer.run_path / "best.pt")
    assert tuned["src_vocab"] == start["src_vocab"] and tuned["tgt_vocab"] == start["tgt_vocab"]
    assert (trainer.run_path / "src.spm.model").read_bytes() == start["src_vocab"]
    after = copy_bleu(trainer.run_path / "best.pt", trainer.eval_sets.tests)
    assert after >= 60 and after > before + 20, (before, after)


def test_a_model_section_of_another_shape_is_one_clear_error(tiny_checkpoint: Path, copy_data: Path,
                                                             tmp_path: Path) -> None:
    config = tiny_config(copy_data, tmp_path, f"training.init_from={tiny_checkpoint}", "model.emb_size=32")
    with pytest.raises(UserError, match=r"training.init_from: .* another shape .*model\.emb_size") as error:
        prepare_run(config)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "tiny").exists()  # refused before the run folder is made


def test_a_missing_checkpoint_is_a_user_error(copy_data: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="training.init_from: .*none.pt: no such checkpoint"):
        prepare_run(tiny_config(copy_data, tmp_path, f"training.init_from={tmp_path / 'none.pt'}"))
