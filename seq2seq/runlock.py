"""One run, one writer: a lock on the run folder, held while a process trains in it.

The lock is fcntl.flock on `run.lock` in the folder. The kernel drops it when the holder's
file closes, which includes any death of the process (SIGKILL, OOM, power loss), so a
killed run never leaves a stale lock for the next --resume to trip over. The holder's pid
is written into the file only so that a refused process can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from seq2seq.errors import UserError

if TYPE_CHECKING:
    from seq2seq.distributed import World

LOCK_FILE = "run.lock"
# A winner writes its pid just after taking the lock; a loser reading in between waits this long for it.
PID_WAIT_SECONDS = 1.0


class RunLock:
    """The held lock of one run folder (no handle: a torchrun process other than the main one holds nothing);
    release() or the process ending frees it."""

    def __init__(self, path: Path, handle: int | None):
        self.path = path
        self._handle: int | None = handle

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing the only descriptor drops the flock
            self._handle = None

    def __del__(self) -> None:
        self.release()


def acquire(run_path: Path) -> RunLock:
    """Lock run_path (created if missing) for this process, or raise UserError naming the holder's pid."""
    path = Path(run_path) / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise UserError(f"{run_path}: cannot write the run directory ({error.strerror})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(handle)
        os.close(handle)
        raise UserError(f"{run_path}: another process ({holder}) is training in this run folder; wait for it "
                        "to finish or stop it, or choose another name (--set name=...)") from None
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    return RunLock(path, handle)


def _holder(handle: int) -> str:
    """'pid N' from the lock file, waiting briefly for a holder that has locked but not yet written."""
    deadline = time.monotonic() + PID_WAIT_SECONDS
    while True:
        text = os.pread(handle, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return f"pid {text}"
        if time.monotonic() >= deadline:
            return "pid unknown"
        time.sleep(0.02)


def lock_run(run_path: Path, world: World) -> RunLock:
    """The main process takes the run's lock for all of torchrun's processes (only it writes there);
    a refusal reaches every process, so they all stop together."""
    lock, refusal = RunLock(Path(run_path) / LOCK_FILE, None), None
    if world.is_main:
        try:
            lock = acquire(run_path)
        except UserError as error:
            refusal = str(error)
    refusal = world.broadcast(refusal)
    if refusal is not None:
        raise UserError(refusal)
    return lock
