"""One run, one writer: a second trainer on a live run folder is refused; a killed one leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, tiny_config
from seq2seq.errors import UserError
from seq2seq.runlock import LOCK_FILE, acquire
from seq2seq.startup import prepare_run
from seq2seq.training import Trainer

HOLD = ("import sys, time; from seq2seq.runlock import acquire; lock = acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(600)")


def hold_in_child(run_path: Path) -> subprocess.Popen:
    """A process that takes the run's lock and keeps it until killed."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(run_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_held_folder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    lock = acquire(tmp_path / "run")
    with pytest.raises(UserError, match=rf"{tmp_path / 'run'}: another process \(pid {os.getpid()}\) is training"):
        acquire(tmp_path / "run")
    lock.release()
    acquire(tmp_path / "run").release()


def test_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path)
    with pytest.raises(UserError, match=rf"pid {child.pid}\)"):
        acquire(tmp_path)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(child.pid)  # the file stays; the kernel dropped the lock
    acquire(tmp_path).release()


def test_a_second_trainer_fresh_or_resuming_is_refused_while_the_first_lives(reversal_data: Path,
                                                                             tmp_path: Path) -> None:
    config = tiny_config(reversal_data, tmp_path, "training.max_steps=2", "training.valid_every=2",
                         "training.valid_limit=5", "data.test=[]")
    first = Trainer(prepare_run(config))
    for resume in (False, True):
        with pytest.raises(UserError, match=rf"{config.run_path}: another process \(pid {os.getpid()}\)"):
            prepare_run(config, resume=resume)
    first.train()
    assert Trainer(prepare_run(config, resume=True)).progress.step == 2  # a finished run frees its folder


def train_command(data: Path, run_dir: Path, *extra: str) -> list[str]:
    command = [sys.executable, "train.py", "--config", "configs/tiny.yaml", "--data-dir", str(data),
               "--set", f"run_dir={run_dir}", "--set", f"data.cache_dir={run_dir / 'cache'}"]
    for key_value in ("training.max_steps=100000", "training.valid_every=5", "training.valid_limit=5",
                      "data.test=[]", "training.log_every=5", "training.threads=1", "training.keep_last=1"):
        command += ["--set", key_value]
    return command + list(extra)


@pytest.mark.slow
def test_two_runs_racing_for_one_folder_one_trains(reversal_data: Path, tmp_path: Path) -> None:
    racers = [subprocess.Popen(train_command(reversal_data, tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and all(racer.poll() is None for racer in racers):
        time.sleep(0.1)
    finished = [racer for racer in racers if racer.poll() is not None]
    log = tmp_path / "tiny" / "train.log"
    while time.monotonic() < deadline and not (log.is_file() and "step 5 " in log.read_text()):
        time.sleep(0.1)  # SIGTERM stops a run cleanly once its training loop has begun
    for racer in racers:
        if racer.poll() is None:
            racer.send_signal(signal.SIGTERM)
    outputs = [racer.communicate(timeout=120)[1] for racer in racers]
    assert len(finished) == 1, "both trained in one folder"
    loser = racers.index(finished[0])
    winner = racers[1 - loser]
    assert racers[loser].returncode == 2, outputs[loser]
    message = outputs[loser].strip()
    assert message.startswith("error: ") and "\n" not in message
    assert f"{tmp_path / 'tiny'}: another process (pid {winner.pid})" in message
    assert winner.returncode == 0, outputs[1 - loser]
    assert "stopped by SIGTERM" in log.read_text()


@pytest.mark.slow
def test_resume_after_sigkill_is_not_blocked(reversal_data: Path, tmp_path: Path) -> None:
    run_path = tmp_path / "tiny"
    process = subprocess.Popen(train_command(reversal_data, tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not list(run_path.glob("step-*.pt")):
        time.sleep(0.05)
    refused = subprocess.run(train_command(reversal_data, tmp_path, "--resume"), cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert refused.returncode == 2 and f"another process (pid {process.pid})" in refused.stderr, refused.stderr
    saved = max(int(path.stem.split("-")[1]) for path in run_path.glob("step-*.pt"))
    config = tiny_config(reversal_data, tmp_path, f"training.max_steps={saved + 5}", "training.valid_every=5",
                         "training.valid_limit=5", "data.test=[]")
    resumed = Trainer(prepare_run(config, resume=True))
    assert resumed.progress.step == saved
    resumed.train()
    assert resumed.progress.step == saved + 5
