"""Tests for checkpoint averaging (python -m seq2seq average)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from seq2seq.averaging import average_checkpoints
from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.cli import main
from seq2seq.errors import UserError
from seq2seq.translator import Translator


def shifted(payload: dict, amount: float) -> dict:
    """The same checkpoint with every float weight moved by `amount`."""
    other = copy.deepcopy(payload)
    other["model"] = {name: t + amount if t.is_floating_point() else t for name, t in other["model"].items()}
    return other


@pytest.fixture
def three(tiny_checkpoint: Path, tmp_path: Path) -> list[Path]:
    payload = load_checkpoint(tiny_checkpoint)
    paths = []
    for index, amount in enumerate((0.0, 0.3, -0.3)):
        paths.append(tmp_path / f"c{index}.pt")
        save_checkpoint(paths[-1], shifted(payload, amount))
    return paths


def test_average_is_the_elementwise_mean_and_translates(three: list[Path], tmp_path: Path) -> None:
    """Shifts of +0.3 and -0.3 cancel: the average is the first checkpoint again, and translates as it does."""
    average_checkpoints(three, tmp_path / "avg.pt")
    averaged = load_checkpoint(tmp_path / "avg.pt")
    originals = [load_checkpoint(p)["model"] for p in three]
    for name, weight in averaged["model"].items():
        if weight.is_floating_point():
            assert torch.allclose(weight, originals[0][name], atol=1e-6), name
    assert "training" not in averaged  # translates, does not resume
    average_checkpoints(three[:2], tmp_path / "half.pt")
    half = load_checkpoint(tmp_path / "half.pt")["model"]
    assert all(torch.allclose(half[n], originals[0][n] + 0.15, atol=1e-6) for n in half if half[n].is_floating_point())
    texts = ["alpha bravo charlie", "delta echo foxtrot golf"]
    original = Translator.from_checkpoint(three[0], device="cpu").translate(texts)
    mean = Translator.from_checkpoint(tmp_path / "avg.pt", device="cpu").translate(texts)
    assert [n[0].text for n in mean] == [n[0].text for n in original]


def test_file_order_does_not_matter(three: list[Path], tmp_path: Path) -> None:
    average_checkpoints(three, tmp_path / "a.pt")
    average_checkpoints(three[::-1], tmp_path / "b.pt")
    a, b = load_checkpoint(tmp_path / "a.pt")["model"], load_checkpoint(tmp_path / "b.pt")["model"]
    assert all(torch.allclose(a[name], b[name], atol=1e-7, rtol=0) for name in a)


def test_incompatible_checkpoints_are_refused(three: list[Path], tmp_path: Path) -> None:
    payload = load_checkpoint(three[0])
    other_model = copy.deepcopy(payload)
    other_model["config"]["model"]["decoder_hidden"] += 1
    save_checkpoint(tmp_path / "other_model.pt", other_model)
    with pytest.raises(UserError, match="model.decoder_hidden differs"):
        average_checkpoints([three[0], tmp_path / "other_model.pt"], tmp_path / "x.pt")
    other_vocab = copy.deepcopy(payload)
    other_vocab["tgt_vocab"] = load_checkpoint(three[0])["src_vocab"] + b"x"
    save_checkpoint(tmp_path / "other_vocab.pt", other_vocab)
    with pytest.raises(UserError, match="tgt vocabulary differs"):
        average_checkpoints([three[0], tmp_path / "other_vocab.pt"], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_cli_averages_and_refuses_a_single_checkpoint(three: list[Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    assert main(["average", *map(str, three[:2]), "--output", str(tmp_path / "avg.pt")]) == 0
    assert "averaged 2 checkpoints" in capsys.readouterr().out
    assert main(["average", str(three[0]), "--output", str(tmp_path / "one.pt")]) == 2
    assert "at least two" in capsys.readouterr().err
