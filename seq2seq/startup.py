"""Everything a run needs before its model exists: device and processes, data files, run folder, encoded data.

`prepare_run` does the slow and fallible work once (downloads, cleaning, vocabularies, the
encoded corpus) and hands a `Setup` to the Trainer, which only builds the model and trains.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from seq2seq.config import Config
from seq2seq.data.catalogue import ensure_files
from seq2seq.data.corpus import EvalSets, check_files_exist, data_files, load_eval_sets
from seq2seq.data.prepare import TrainingData, open_training_data, prepare_training_data
from seq2seq.distributed import World, init_world
from seq2seq.finetune import StartingPoint, install_vocabularies, load_starting_point
from seq2seq.run_folder import open_run_dir, setup_logging, write_resolved_config
from seq2seq.runlock import RunLock, lock_run
from seq2seq.runtime import select_device

log = logging.getLogger("seq2seq")


@dataclass
class Setup:
    """A run ready to train: where it computes, its data, and the checkpoints a resume continues from."""

    config: Config
    device: torch.device
    world: World
    eval_sets: EvalSets
    data: TrainingData
    checkpoints: list[Path]  # the run folder's periodic checkpoints, oldest first; empty unless resuming
    initial_weights: dict[str, torch.Tensor] | None  # training.init_from's, for a new fine-tuning run
    run_lock: RunLock  # held while the run trains: one writer per run folder
    began: float  # time.monotonic() when start-up began, to report how long it took


def select_training_device(config: Config) -> tuple[torch.device, World]:
    """The configured device and, under torchrun, this process's place among the others."""
    device = select_device(config.training.device)
    world = init_world(device.type)
    if world.active and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    return device, world


def prepare_run(config: Config, resume: bool = False) -> Setup:
    """Download what is missing, check the data, open the run folder, and make or reuse the encoded corpus."""
    device, world = select_training_device(config)
    began = time.monotonic()
    run_path = config.run_path
    if world.is_main:
        ensure_files(config.data.download, Path(config.data.root), data_files(config.data))
    world.barrier()
    check_files_exist(config.data)
    eval_sets = load_eval_sets(config.data, config.data_seed)  # data errors come before any file is written
    # a resumed fine-tuning run continues from its own checkpoints, which hold what init_from gave it
    start = load_starting_point(config) if config.training.init_from and not resume else None
    run_lock = lock_run(run_path, world)  # before any check or write in the run folder
    try:
        return _prepare_locked_run(config, resume, device, world, eval_sets, start, run_lock, began)
    except BaseException:
        run_lock.release()
        raise


def _prepare_locked_run(config: Config, resume: bool, device: torch.device, world: World, eval_sets: EvalSets,
                        start: StartingPoint | None, run_lock: RunLock, began: float) -> Setup:
    run_path = config.run_path
    checkpoints = open_run_dir(run_path, resume, world)
    if world.is_main:
        setup_logging(run_path)
        write_resolved_config(config, run_path)
        if start is not None:
            install_vocabularies(start, run_path)
    else:
        log.setLevel(logging.WARNING)
    if config.training.threads:
        torch.set_num_threads(config.training.threads)
    folder = prepare_training_data(config, eval_sets, run_path) if world.is_main else None
    data = open_training_data(world.broadcast(folder), run_path, config)
    log.info("training data: %s", data.report.summary())
    return Setup(config, device, world, eval_sets, data, checkpoints, start.weights if start else None, run_lock,
                 began)
