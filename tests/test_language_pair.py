"""End to end for a pair other than English-Hindi: language codes, no script rules, a recorded text form."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import WORDS, tiny_config

from seq2seq.data.text_form import TextForm
from seq2seq.startup import prepare_run
from seq2seq.testsets import evaluate_tests
from seq2seq.training import Trainer
from seq2seq.translator import Translator

pytestmark = pytest.mark.slow  # one short training run (about half a minute on a busy CPU) for the module

TOKENIZED_FORM = ["data.src_lang=de", "data.tgt_lang=fr", "data.example=Alpha, bravo.",
                  "data.text_form={lowercase: true, normalize_punctuation: true, moses_tokenize: true}",
                  "evaluation.tokenize=none", "evaluation.lowercase=true"]


def write_tokenized_copy_task(folder: Path, seed: int = 0) -> Path:
    """Lowercased, Moses-tokenized lines ("alpha , bravo charlie .") on both sides; the target copies the source."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 3000), ("dev", 40), ("test", 40)):
        lines = []
        for _ in range(count):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
            words.insert(rng.randint(1, len(words) - 1), ",")
            lines.append(" ".join(words) + " .")
        for side in ("src", "tgt"):
            (folder / f"{split}.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def copy_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trainer]:
    data = write_tokenized_copy_task(tmp_path_factory.mktemp("copy"))
    run_dir = tmp_path_factory.mktemp("runs")
    config = tiny_config(data, run_dir, "name=de-fr", "training.max_steps=150", "training.valid_every=150",
                         *TOKENIZED_FORM, family="transformer")
    assert not config.data.cleaning.src_script and not config.data.cleaning.tgt_script
    trainer = Trainer(prepare_run(config))
    trainer.train()
    return run_dir / "de-fr" / "best.pt", trainer


def test_typed_text_is_prepared_and_the_output_detokenized(copy_checkpoint: tuple[Path, Trainer]) -> None:
    checkpoint, _ = copy_checkpoint
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    assert translator.text_form is not None and translator.text_form.active

    typed = ["Alpha, Bravo Charlie.", "Delta  Echo,Foxtrot.", "Golf, Hotel."]
    results = translator.translate(typed)

    form = TextForm.of(translator_config(checkpoint).data)
    for text, nbest in zip(typed, results):
        best = nbest[0]
        # the model read the training form: lowercased, punctuation split off
        assert "".join(best.source_pieces).replace("▁", " ").strip() == form.prepare_source(text)
        model_text = "".join(best.pieces).replace("▁", " ").strip()
        assert best.text == form.finish_output(model_text)
        assert " ," not in best.text and not best.text.endswith(" .")
    # the model writes the tokenized form, so detokenizing had something to undo
    assert any(" ," in "".join(n[0].pieces).replace("▁", " ") for n in results)


def test_test_sets_are_scored_in_the_training_form_with_ter(copy_checkpoint: tuple[Path, Trainer]) -> None:
    checkpoint, trainer = copy_checkpoint
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    options = trainer.config.evaluation

    scores = evaluate_tests(translator, trainer.eval_sets.tests, progress=False, options=options)["reverse-test"]

    assert translator.text_form is not None  # restored after the test sets
    assert "tok:none" in scores.bleu_signature and "case:lc" in scores.ter_signature
    assert scores.bleu > 50 and scores.ter < 50  # a copy task: the outputs are mostly the references


def test_the_web_page_learns_the_languages_and_example(copy_checkpoint: tuple[Path, Trainer]) -> None:
    pytest.importorskip("fastapi")
    from seq2seq.serve.app import languages_of

    config = translator_config(copy_checkpoint[0])
    assert languages_of(config) == {"source": "de", "target": "fr"}
    assert config.data.example == "Alpha, bravo."


def translator_config(checkpoint: Path):
    from seq2seq.checkpoint import read_model

    return read_model(checkpoint)[0]
