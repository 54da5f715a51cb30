"""Checkpoints: one self-contained file of plain data, written atomically, loaded without pickle code.

This module owns the format both ways: `model_payload` assembles what training saves and
`read_model` rebuilds the config, the network and both vocabularies from it.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from seq2seq import __version__
from seq2seq.config import Config, config_from_dict, config_to_dict
from seq2seq.errors import UserError
from seq2seq.files import atomic_write
from seq2seq.model.build import build_model
from seq2seq.model.interface import EncoderDecoder
from seq2seq.vocab import Vocab

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "package_version", "config", "src_vocab", "tgt_vocab", "model")
# What torch's weights_only unpickler (torch/_weights_only_unpickler.py, torch 2.13) raises for a GLOBAL opcode
# naming a global it does not allow: "Unsupported global: GLOBAL os.system was not an allowed global by default"
# or "Trying to load unsupported GLOBAL posix.system whose module posix is blocked".
DISALLOWED_GLOBAL = re.compile(r"\bGLOBAL (\S+) (?:was not an allowed global by default|whose module \S+ is blocked)")


def model_payload(config: Config, src_vocab: Vocab, tgt_vocab: Vocab, model: EncoderDecoder,
                  training: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a checkpoint holds: the config, both SentencePiece models, the weights, and (for resuming) the
    training state."""
    payload = {"config": config_to_dict(config), "src_vocab": src_vocab.model_proto,
               "tgt_vocab": tgt_vocab.model_proto, "model": model.state_dict()}
    if training is not None:
        payload["training"] = training
    return payload


def count_state_parameters(state: dict[str, Any]) -> int:
    """Distinct tensors of a state dict (a tied embedding counts once)."""
    seen, total = set(), 0
    for tensor in state.values():
        if hasattr(tensor, "numel") and tensor.is_floating_point():
            key = (tensor.data_ptr(), tensor.numel())
            if key not in seen:
                seen.add(key)
                total += tensor.numel()
    return total


def read_model(path: str | Path) -> tuple[Config, EncoderDecoder, Vocab, Vocab]:
    """The config, the network (on the CPU) and both vocabularies of a checkpoint file."""
    return model_from_payload(load_checkpoint(Path(path)), path)


def model_from_payload(payload: dict[str, Any], path: str | Path) -> tuple[Config, EncoderDecoder, Vocab, Vocab]:
    """read_model for a payload already loaded (path names it in errors)."""
    config = config_from_dict(payload["config"], source=f"{path} (stored config)")
    try:
        src_vocab, tgt_vocab = Vocab(payload["src_vocab"]), Vocab(payload["tgt_vocab"])
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
    model = build_model(config.model, len(src_vocab), len(tgt_vocab))
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise UserError(f"{path}: weights do not match the stored model config ({first})") from None
    return config, model, src_vocab, tgt_vocab


def save_checkpoint(path: Path, payload: dict[str, Any], like: Path | None = None) -> None:
    """Write atomically. `like`, an earlier checkpoint of the same run, sizes a free-space check made first:
    a run whose next checkpoint cannot fit stops before writing it rather than part-way through."""
    payload = {"format_version": FORMAT_VERSION, "package_version": __version__, **payload}
    expected = like.stat().st_size if like is not None and like.is_file() else 0
    atomic_write(path, lambda stream: torch.save(payload, stream), expected_size=expected)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with weights_only=True: tensors and plain containers only, never arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; train a model first (python train.py --config ...)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        name = disallowed_global(path, error)
        if name is not None:
            raise UserError(f"{path}: refused: the file holds Python objects ({name}), not plain checkpoint data"
                            ) from None
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


def disallowed_global(path: Path, error: pickle.UnpicklingError) -> str | None:
    """The global a hostile file asks for; None for any other error, and for a file that ends inside the request.

    torch reads the GLOBAL opcode's module and name lines and drops each one's last byte, newline or not, so a
    file cut inside the opcode is reported as asking for a shortened name: "c" gives ".", "cos\\n" gives "os.",
    "ctorch._utils\\n_reb" gives "torch._utils._re" (old, non-zip checkpoints hold such opcodes in the clear).
    """
    match = DISALLOWED_GLOBAL.search(str(error))
    if match is None:
        return None
    name = match.group(1)
    if "" in name.split("."):
        return None  # an empty module or name: the file ends inside the opcode (or spells no global at all)
    last = name.rsplit(".", 1)[-1].encode("utf-8")
    with path.open("rb") as stream:
        stream.seek(max(0, path.stat().st_size - len(last) - 1))
        end = stream.read()
    if not end.endswith(b"\n") and end[:-1].endswith(last):
        return None  # the name line runs to the end of the file without its newline: cut short
    return name
