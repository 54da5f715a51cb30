"""Checkpoint averaging: the mean of several checkpoints' weights, one smoother model.

Averaging the last checkpoints of a run (as fairseq, JoeyNMT and OpenNMT-py offer) costs
nothing at training time and tends to score a little above any single one of them.
Only checkpoints of the same model and vocabularies can be averaged.
"""

from __future__ import annotations

from pathlib import Path

from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.errors import UserError


def _refuse_mismatch(first: dict, other: dict, first_path: Path, other_path: Path) -> None:
    if other["config"]["model"] != first["config"]["model"]:
        changed = sorted(k for k in first["config"]["model"]
                         if first["config"]["model"].get(k) != other["config"]["model"].get(k))
        raise UserError(f"{other_path}: a different model than {first_path} (model.{changed[0] if changed else 'type'}"
                        f" differs); only checkpoints of one model can be averaged")
    for side in ("src_vocab", "tgt_vocab"):
        if other[side] != first[side]:
            raise UserError(f"{other_path}: its {side.replace('_', ' ')}ulary differs from {first_path}'s; "
                            "only checkpoints of one run (one vocabulary) can be averaged")
    shapes = {name: tuple(t.shape) for name, t in first["model"].items()}
    if {name: tuple(t.shape) for name, t in other["model"].items()} != shapes:
        raise UserError(f"{other_path}: its weights do not match {first_path}'s")


def average_payloads(paths: list[Path]) -> dict:
    """A checkpoint payload whose weights are the element-wise mean of the given checkpoints'.

    The sum runs in float64, so the order of the files does not change the result beyond
    float32 rounding. The average has no optimizer state: it translates, it does not resume.
    """
    if len(paths) < 2:
        raise UserError("average: give at least two checkpoints")
    first = load_checkpoint(paths[0])
    sums = {name: t.double() if t.is_floating_point() else t for name, t in first["model"].items()}
    for path in paths[1:]:
        payload = load_checkpoint(path)
        _refuse_mismatch(first, payload, paths[0], path)
        for name, tensor in payload["model"].items():
            if tensor.is_floating_point():
                sums[name] += tensor.double()
    model = {name: (t / len(paths)).to(first["model"][name].dtype) if t.is_floating_point() else t
             for name, t in sums.items()}
    return {"config": first["config"], "src_vocab": first["src_vocab"], "tgt_vocab": first["tgt_vocab"],
            "model": model, "averaged_from": [str(p) for p in paths]}


def average_checkpoints(paths: list[Path], output: Path) -> None:
    save_checkpoint(output, average_payloads(paths))
