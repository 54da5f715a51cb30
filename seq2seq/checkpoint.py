"""Checkpoints: one self-contained file of plain data, written atomically, loaded without pickle code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from seq2seq import __version__
from seq2seq.errors import UserError
from seq2seq.files import atomic_write

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "package_version", "config", "src_vocab", "tgt_vocab", "model")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    payload = {"format_version": FORMAT_VERSION, "package_version": __version__, **payload}
    atomic_write(path, lambda stream: torch.save(payload, stream))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with weights_only=True: tensors and plain containers only, never arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; train a model first (python train.py --config ...)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error) or "GLOBAL" in str(error):
            raise UserError(f"{path}: refused: the file holds Python objects, not plain checkpoint data") from None
        raise UserError(f"{path}: not a readable checkpoint (truncated or corrupt file)") from None
    except Exception:  # noqa: BLE001 - any other failure of a hostile or broken file is the same user error
        raise UserError(f"{path}: not a readable checkpoint (truncated or corrupt file)") from None
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED_KEYS):
        raise UserError(f"{path}: not a seq2seq checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {payload['format_version']} (seq2seq {payload['package_version']}) "
            f"is not supported by seq2seq {__version__} (format {FORMAT_VERSION})"
        )
    for key, kind in {"config": dict, "src_vocab": bytes, "tgt_vocab": bytes, "model": dict}.items():
        if not isinstance(payload[key], kind) or (kind is bytes and not payload[key]):
            raise UserError(f"{path}: not a seq2seq checkpoint (field {key!r} is missing or malformed)")
    return payload
