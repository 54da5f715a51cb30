"""The run folder: created or reopened once, with its log file, its resolved config and its checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from tqdm import tqdm

from seq2seq.config import Config, config_to_dict
from seq2seq.distributed import World
from seq2seq.errors import UserError
from seq2seq.files import atomic_write

log = logging.getLogger("seq2seq")


def checkpoint_files(run_path: Path) -> list[Path]:
    """Periodic checkpoints, oldest first."""
    return sorted(run_path.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))


def open_run_dir(run_path: Path, resume: bool, world: World) -> list[Path]:
    """Create or reopen the run folder; returns its periodic checkpoints, oldest first."""
    existing = checkpoint_files(run_path)
    if existing and not resume:
        raise UserError(f"{run_path} already holds a run; add --resume to continue it, "
                        "or choose another name (--set name=...)")
    if resume and not existing:
        raise UserError(f"{run_path}: nothing to resume (no step-*.pt checkpoint)")
    if world.is_main:
        try:
            run_path.mkdir(parents=True, exist_ok=True)
            probe = run_path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise UserError(f"{run_path}: cannot write the run directory ({error.strerror})") from None
    world.barrier()
    return existing


def setup_logging(run_path: Path) -> None:
    """Console and run_path/train.log; messages go through tqdm so progress bars stay intact."""

    class TqdmHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            tqdm.write(self.format(record))

    log.setLevel(logging.INFO)
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    console = TqdmHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    file_handler = logging.FileHandler(run_path / "train.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(console)
    log.addHandler(file_handler)
    log.propagate = False


def write_resolved_config(config: Config, run_path: Path) -> None:
    """run_path/config.yaml: every key with its value, defaults included, so --resume and readers see one truth."""
    resolved = yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True).encode("utf-8")
    atomic_write(run_path / "config.yaml", lambda stream: stream.write(resolved))
