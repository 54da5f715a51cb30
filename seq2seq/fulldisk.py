"""What a training run tells its user when the disk fills: what survived, and the command that goes on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seq2seq.files import DiskFull, free_bytes, is_disk_full


def resume_advice(run_path: Path) -> str:
    """Every checkpoint is written to a temporary file and renamed, so the newest one on disk is whole."""
    checkpoints = sorted(run_path.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if not checkpoints:
        return "no checkpoint was written yet; free some space, then start the run again"
    return (f"the previous checkpoint {checkpoints[-1]} is intact; free some space, then continue with: "
            f"python train.py --config {run_path / 'config.yaml'} --resume")


@contextmanager
def full_disk_stops_the_run(run_path: Path) -> Iterator[None]:
    """A full disk anywhere in a run (checkpoints, best.pt, the data cache, vocabularies, TensorBoard's event
    files) ends it with one line: the file, the space needed and free, and how to resume."""
    try:
        yield
    except DiskFull as error:
        raise error.with_advice(resume_advice(run_path)) from None
    except OSError as error:  # writers outside seq2seq.files, such as TensorBoard's
        if not is_disk_full(error):
            raise
        raise DiskFull(Path(error.filename or run_path), None, free_bytes(run_path), resume_advice(run_path)) from None
