"""seq2seq.files: what reaches the disk, and in which order, when a file is replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seq2seq.files import atomic_write


def test_a_replaced_file_reaches_the_disk_before_the_rename_and_the_rename_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Power loss: without the first fsync the renamed file can be empty; without the second, the rename undone."""
    target = tmp_path / "best.pt"
    target.write_bytes(b"old")
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda handle: (events.append(("fsync", os.readlink(f"/proc/self/fd/{handle}"))),
                                                     fsync(handle))[1])
    monkeypatch.setattr(os, "replace", lambda source, dest: (events.append(("rename", str(source))),
                                                             replace(source, dest))[1])
    atomic_write(target, lambda stream: stream.write(b"new"))
    (_, temporary), rename, (_, folder) = events
    assert Path(temporary).parent == tmp_path and Path(temporary).name.startswith(".best.pt.")
    assert rename == ("rename", temporary) and folder == str(tmp_path)
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["best.pt"]
