"""Checkpoints: one self-contained file of plain data, written atomically, loaded without pickle code."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

import torch

from seq2seq import __version__
from seq2seq.errors import UserError

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "package_version", "config", "src_vocab", "tgt_vocab", "model")


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write to a temporary file, fsync, then rename: a crash leaves the old file intact."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        temporary = None
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror}); check free space and permissions") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


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
