"""Crash-safe file writes and file digests, shared by checkpoints, vocabularies, caches and downloads.

A full disk (ENOSPC, or EDQUOT for a quota) is a DiskFull error that names the file, the space
it needed and the space free; the half-written temporary file or folder is removed first, so
what was there before stays whole and the space it took is free again.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from seq2seq.errors import UserError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(UserError):
    """A write that did not fit on its file system."""

    def __init__(self, path: Path, needed: int | None, free: int, advice: str, needed_is_lower_bound: bool = True):
        """needed: what the write needed (None: unknown), or with needed_is_lower_bound what it had written."""
        self.path, self.needed, self.free = Path(path), needed, free
        self.needed_is_lower_bound = needed_is_lower_bound
        if needed is None:
            amount = "more than is free"
        else:
            amount = f"{'over ' if needed_is_lower_bound else ''}{megabytes(needed)}"
        super().__init__(f"{path}: cannot write: the disk is full (needs {amount}, {megabytes(free)} free); {advice}")

    def with_advice(self, advice: str) -> DiskFull:
        """The same error, told what to do next by a caller that knows more (e.g. how to resume a run)."""
        return DiskFull(self.path, self.needed, self.free, advice, self.needed_is_lower_bound)


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def is_disk_full(error: BaseException | None) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


def free_bytes(path: Path) -> int:
    """Free space for unprivileged writers on the file system that holds path (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def ensure_free_space(path: Path, needed: int) -> None:
    """Refuse before writing what cannot fit: a clean stop instead of a write that fails part-way."""
    free = free_bytes(Path(path).parent)
    if free < needed:
        raise DiskFull(path, needed, free, "nothing was written", needed_is_lower_bound=False)


class CountingWriter:
    """A binary stream that counts what is written and keeps the OSError a write raised: torch.save reports a
    failed write as its own RuntimeError ("unexpected pos ..."), so the cause has to be caught on the way."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.written, self.error = stream, 0, None

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        try:
            self.stream.write(data)
        except OSError as error:
            self.error = error
            raise
        finally:
            self.written += size  # attempted bytes: with a failed write, a lower bound of what the file needs
        return size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def atomic_write(path: Path, write: Callable[[BinaryIO], None], expected_size: int = 0) -> None:
    """Write to a temporary file, fsync, then rename: a crash or a full disk leaves the old file intact.

    expected_size (0: unknown) is checked against the free space before anything is written."""
    path = Path(path)
    if expected_size:
        ensure_free_space(path, expected_size)
    temporary = None
    stream = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as raw:
            stream = CountingWriter(raw)
            write(stream)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, path)
        temporary = None
        fsync_folder(path.parent)
    except Exception as error:
        cause = error if isinstance(error, OSError) else getattr(stream, "error", None)
        if cause is None:
            raise
        _remove(temporary)
        temporary = None
        if is_disk_full(cause):
            written = stream.written if stream is not None else 0
            raise DiskFull(path, max(written, expected_size), free_bytes(path.parent),
                           "nothing was half-written; the previous file, if any, is intact") from None
        raise UserError(f"{path}: cannot write ({cause.strerror}); check free space and permissions") from None
    finally:
        _remove(temporary)


def _remove(temporary: str | None) -> None:
    if temporary is not None and os.path.exists(temporary):
        os.unlink(temporary)


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable: without it a power loss can undo the rename."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def folder_size(folder: Path) -> int:
    return sum(file.stat().st_size for file in Path(folder).rglob("*") if file.is_file())


@contextmanager
def removed_if_unfinished(folder: Path, advice: str) -> Iterator[None]:
    """Build `folder` inside the block: any failure removes it, and a full disk becomes DiskFull naming it."""
    try:
        yield
    except BaseException as error:
        written = folder_size(folder) if folder.exists() else 0
        shutil.rmtree(folder, ignore_errors=True)
        if is_disk_full(error):
            raise DiskFull(folder, written, free_bytes(folder.parent), advice) from None
        raise


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks so large corpora stay out of memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
