"""export --format huggingface: a MarianMTModel folder that transformers reads as our model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import read_model
from seq2seq.cli import main
from seq2seq.config import load_config
from seq2seq.data.batching import pad_pairs
from seq2seq.errors import UserError
from seq2seq.model.transformer import sinusoids
from seq2seq.translator import Translator
from seq2seq.vocab import BOS_ID, PAD_ID

from conftest import tiny_config

transformers = pytest.importorskip("transformers")

MARIAN_SETTINGS = ("model.norm=post", "model.position_layout=split", "vocab.joint=true",
                   "model.tie_embeddings=true", "model.share_embeddings=true")


@pytest.fixture(scope="module")
def marian_checkpoint(reversal_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Transformer trained as MarianMTModel is built: post-norm, split sinusoids, one shared embedding."""
    from seq2seq.startup import prepare_run
    from seq2seq.training import Trainer

    run_dir = tmp_path_factory.mktemp("runs")
    config = tiny_config(reversal_data, run_dir, "training.max_steps=150", "training.valid_every=150",
                         "data.test=[]", *MARIAN_SETTINGS, family="transformer")
    Trainer(prepare_run(config)).train()
    return run_dir / "tiny-transformer" / "best.pt"


@pytest.fixture(scope="module")
def exported(marian_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("export") / "marian"
    assert main(["export", str(marian_checkpoint), "--format", "huggingface", "--output", str(output)]) == 0
    return output


def test_split_sinusoids_are_marians_table() -> None:
    """The table a MarianMTModel builds for itself (its positions are never saved, always rebuilt)."""
    for width in (64, 7):
        config = transformers.MarianConfig(vocab_size=10, d_model=width, max_position_embeddings=50,
                                           encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
                                           decoder_attention_heads=1, encoder_ffn_dim=8, decoder_ffn_dim=8,
                                           pad_token_id=PAD_ID, decoder_start_token_id=BOS_ID)
        marian = transformers.MarianMTModel(config).model.encoder.embed_positions.weight
        assert torch.equal(sinusoids(50, width, "split"), marian)
    assert not torch.allclose(sinusoids(50, 64, "interleaved"), sinusoids(50, 64, "split"))


def test_a_layout_for_learned_positions_is_a_config_error() -> None:
    with pytest.raises(UserError, match="model.position_layout: lays out the sinusoids"):
        load_config(None, ["model.type=transformer", "model.positions=learned", "model.position_layout=split"])


def test_the_export_gives_our_ids_and_our_logits(marian_checkpoint: Path, exported: Path,
                                                 reversal_data: Path) -> None:
    _, model, src_vocab, tgt_vocab = read_model(marian_checkpoint)
    model.eval()
    marian = transformers.MarianMTModel.from_pretrained(exported).eval()
    tokenizer = transformers.MarianTokenizer.from_pretrained(exported)
    sources = (reversal_data / "dev.src").read_text(encoding="utf-8").splitlines()[:6]
    targets = (reversal_data / "dev.tgt").read_text(encoding="utf-8").splitlines()[:6]
    batch = pad_pairs(src_vocab.encode(sources), tgt_vocab.encode(targets))
    inputs = tokenizer(sources, padding=True, return_tensors="pt")
    assert torch.equal(inputs["input_ids"], batch.src)
    labels = tokenizer(text_target=targets, padding=True, return_tensors="pt")["input_ids"]
    assert torch.equal(labels, batch.tgt_out)
    with torch.inference_mode():
        ours, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
        theirs = marian(**inputs, decoder_input_ids=batch.tgt_in).logits
    real = batch.tgt_out != PAD_ID
    assert (ours[real] - theirs[real]).abs().max() < 1e-4


def test_the_export_translates_as_our_greedy_search(marian_checkpoint: Path, exported: Path,
                                                    reversal_data: Path) -> None:
    sources = (reversal_data / "test.src").read_text(encoding="utf-8").splitlines()[:8]
    translator = Translator.from_checkpoint(marian_checkpoint, device="cpu", method="greedy")
    ours = [nbest[0].text for nbest in translator.translate(sources)]
    marian = transformers.MarianMTModel.from_pretrained(exported).eval()
    tokenizer = transformers.MarianTokenizer.from_pretrained(exported)
    with torch.inference_mode():
        generated = marian.generate(**tokenizer(sources, padding=True, return_tensors="pt"), num_beams=1)
    assert tokenizer.batch_decode(generated, skip_special_tokens=True) == ours
    # real outputs: a briefly trained model already starts most reversals with the source's last word
    assert sum(text.split()[:1] == s.split()[-1:] for text, s in zip(ours, sources)) >= 4


@pytest.mark.parametrize("fixture, setting", [
    ("tiny_checkpoint", "an RNN model"),
    ("tiny_transformer_checkpoint", "model.norm: post"),
])
def test_what_marian_cannot_express_is_refused_in_one_line(fixture: str, setting: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = request.getfixturevalue(fixture)
    capsys.readouterr()  # training the fixture's model prints progress
    code = main(["export", str(checkpoint), "--format", "huggingface", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and setting in err[0]
    assert not (tmp_path / "out").exists()


def test_a_quantized_hugging_face_export_is_refused(marian_checkpoint: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", str(marian_checkpoint), "--format", "huggingface", "--quantization", "int8",
                 "--output", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip() == ("error: --quantization is for --format ctranslate2; "
                                               "a Hugging Face export is float32")
    assert not (tmp_path / "out").exists()
