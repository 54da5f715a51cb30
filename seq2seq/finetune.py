"""Fine-tuning: a new run that starts from a trained checkpoint's weights and SentencePiece models.

The vocabularies are taken as they are, never retrained (a piece id must keep its meaning for
the weights to make sense); the optimiser, the schedules and the progress start afresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import Config, config_to_dict
from seq2seq.data.prepare import VOCAB_FILES
from seq2seq.errors import UserError
from seq2seq.files import atomic_write
from seq2seq.model.build import build_model
from seq2seq.vocab import Vocab

log = logging.getLogger("seq2seq")


@dataclass
class StartingPoint:
    """What a fine-tuning run takes from its checkpoint."""

    path: Path
    weights: dict[str, torch.Tensor]
    vocab_protos: dict[str, bytes]  # "src"/"tgt" -> SentencePiece model bytes


def load_starting_point(config: Config) -> StartingPoint:
    """training.init_from's weights and vocabularies, once they fit the model this config builds."""
    path = Path(config.training.init_from)
    if not path.is_file():
        raise UserError(f"training.init_from: {path}: no such checkpoint; name a trained model's .pt file")
    payload = load_checkpoint(path)
    protos = {"src": payload["src_vocab"], "tgt": payload["tgt_vocab"]}
    sizes = [len(Vocab(protos[side])) for side in ("src", "tgt")]
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        expected = {name: tuple(t.shape) for name, t in build_model(config.model, *sizes).state_dict().items()}
    found = {name: tuple(t.shape) for name, t in payload["model"].items()}
    if expected != found:
        stored = payload["config"].get("model", {})
        differing = sorted(f"model.{key}" for key, value in config_to_dict(config)["model"].items()
                           if key in stored and stored[key] != value)
        raise UserError(f"training.init_from: {path} holds a model of another shape than this config's "
                        f"(keys that differ: {', '.join(differing) or 'none named; compare model sections'}); "
                        "set the model section as in that checkpoint's config")
    return StartingPoint(path, payload["model"], protos)


def install_vocabularies(start: StartingPoint, run_path: Path) -> None:
    """Put the checkpoint's SentencePiece models in the run folder, where data preparation takes them as given."""
    for side, name in VOCAB_FILES.items():
        proto = start.vocab_protos[side]
        atomic_write(run_path / name, lambda stream, proto=proto: stream.write(proto))
    log.info("fine-tuning from %s: its vocabularies and weights; vocab settings of this config are unused", start.path)
