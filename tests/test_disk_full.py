"""A full disk is a clear stop, never a torn file: checkpoints, best.pt and the data cache.

Most tests inject a file that raises ENOSPC part-way, below the code under test; the last one
fills a real (tiny tmpfs) file system where the machine lets the tests mount one.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import seq2seq.data.prepare as prepare
import seq2seq.files as files
from conftest import ROOT, tiny_config, write_reversal_task
from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.cli import main
from seq2seq.data.cache import _RowsWriter
from seq2seq.data.corpus import load_eval_sets
from seq2seq.files import DiskFull
from seq2seq.fulldisk import full_disk_stops_the_run

ONE_LINE = re.compile(r"error: (?P<path>\S+): cannot write: the disk is full \(needs (?P<needed>over )?"
                      r"(?P<mb>[\d.]+) MB, [\d.]+ MB free\); (?P<advice>[^\n]+)\n\Z")


class FillingStream:
    """A real temporary file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, stream, room: int):
        self.stream, self.room = stream, room

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if size > self.room:
            self.stream.write(bytes(memoryview(data).cast("B")[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= size
        return self.stream.write(data)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stream.close()


def fill_disk_at(monkeypatch: pytest.MonkeyPatch, name: str, room: int) -> list[str]:
    """Temporary files whose name contains `name` hit a full disk after `room` bytes; returns all temporaries opened."""
    fdopen, opened = os.fdopen, []

    def filling_fdopen(handle: int, *args, **kwargs):
        stream = fdopen(handle, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{handle}")
        opened.append(target)
        return FillingStream(stream, room) if name in Path(target).name else stream

    monkeypatch.setattr(files.os, "fdopen", filling_fdopen)
    return opened


PAYLOAD = {"config": {"generation": 1}, "src_vocab": b"s", "tgt_vocab": b"t", "model": {"w": torch.ones(100_000)}}


def test_torch_save_failing_part_way_is_disk_full_and_keeps_the_old_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save turns the failed write into its own RuntimeError ("unexpected pos"); the cause is found anyway."""
    path = tmp_path / "best.pt"
    save_checkpoint(path, PAYLOAD)
    before = path.read_bytes()
    fill_disk_at(monkeypatch, "best.pt", room=50_000)
    with pytest.raises(DiskFull) as caught:
        save_checkpoint(path, {**PAYLOAD, "model": {"w": torch.zeros(100_000)}})
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot write: the disk is full (needs over ")
    assert caught.value.needed > 50_000 and "the previous file, if any, is intact" in message
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_a_write_that_cannot_fit_is_refused_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    like = tmp_path / "step-1.pt"
    save_checkpoint(like, PAYLOAD)
    opened = fill_disk_at(monkeypatch, "step-2.pt", room=10**9)
    monkeypatch.setattr(files, "free_bytes", lambda path: like.stat().st_size - 1)
    with pytest.raises(DiskFull, match=rf"needs {like.stat().st_size / 1e6:.1f} MB, .*nothing was written"):
        save_checkpoint(tmp_path / "step-2.pt", PAYLOAD, like=like)
    assert opened == [] and sorted(p.name for p in tmp_path.iterdir()) == ["step-1.pt"]


def train_args(data: Path, run_dir: Path, steps: int, *extra: str) -> list[str]:
    args = ["train", "--config", str(ROOT / "configs" / "tiny.yaml"), "--data-dir", str(data)]
    for key_value in (f"run_dir={run_dir}", f"data.cache_dir={run_dir / 'cache'}", f"training.max_steps={steps}",
                      "training.valid_every=5", "training.valid_limit=5", "data.test=[]", "training.log_every=5"):
        args += ["--set", key_value]
    return args + list(extra)


def assert_only_whole_checkpoints(run_path: Path) -> None:
    assert not list(run_path.glob(".*.tmp")), "a temporary file was left behind"
    for checkpoint in run_path.glob("*.pt"):
        load_checkpoint(checkpoint)


def test_a_checkpoint_filling_the_disk_stops_training_with_one_line_and_resumes(
        reversal_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    run_path = tmp_path / "tiny"
    fill_disk_at(monkeypatch, "step-00000010.pt", room=100_000)
    assert main(train_args(reversal_data, tmp_path, 20)) == 2
    error = capsys.readouterr().err
    line = ONE_LINE.search(error)
    assert line and line.group("path") == str(run_path / "step-00000010.pt") and line.group("needed"), error
    previous = run_path / "step-00000005.pt"
    assert line.group("advice") == (f"the previous checkpoint {previous} is intact; free some space, then continue "
                                    f"with: python train.py --config {run_path / 'config.yaml'} --resume")
    assert_only_whole_checkpoints(run_path)
    monkeypatch.undo()
    assert main(train_args(reversal_data, tmp_path, 12, "--resume")) == 0
    assert load_checkpoint(run_path / "step-00000012.pt")["training"]["progress"]["step"] == 12


def test_training_stops_before_a_checkpoint_that_cannot_fit(reversal_data: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """The first checkpoint shows how big they are; the free space is below that, so best.pt is not begun."""
    run_path = tmp_path / "tiny"
    first = run_path / "step-00000005.pt"
    opened = fill_disk_at(monkeypatch, "never", room=0)
    monkeypatch.setattr(files, "free_bytes", lambda path: 10**12 if not first.exists() else 1_000)
    assert main(train_args(reversal_data, tmp_path, 20)) == 2
    line = ONE_LINE.search(capsys.readouterr().err)
    assert line and line.group("path") == str(run_path / "best.pt") and not line.group("needed")
    assert line.group("mb") == f"{first.stat().st_size / 1e6:.1f}"
    assert line.group("advice").startswith(f"the previous checkpoint {first} is intact")
    assert not [name for name in opened if "best.pt" in name]
    assert_only_whole_checkpoints(run_path)


def test_any_other_writer_filling_the_disk_says_how_to_resume(tmp_path: Path) -> None:
    """TensorBoard's event files, for one, are written outside seq2seq.files."""
    save_checkpoint(tmp_path / "step-00000007.pt", PAYLOAD)
    events = tmp_path / "events.out.tfevents"
    with pytest.raises(DiskFull) as caught, full_disk_stops_the_run(tmp_path):
        raise OSError(errno.ENOSPC, "No space left on device", str(events))
    assert str(caught.value).startswith(f"{events}: cannot write: the disk is full (needs more than is free, ")
    assert f"the previous checkpoint {tmp_path / 'step-00000007.pt'} is intact" in str(caught.value)


def test_the_data_cache_filling_the_disk_leaves_no_half_built_entry(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_reversal_task(tmp_path / "data", train=300, dev=20, test=20)
    config = tiny_config(data, tmp_path / "runs")
    config.run_path.mkdir(parents=True)
    cache, eval_sets = Path(config.data.cache_dir), load_eval_sets(config.data, config.seed)
    write = _RowsWriter.append

    def half_then_full(self, flat: bytes, lengths) -> None:
        write(self, flat[: len(flat) // 2], lengths)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_RowsWriter, "append", half_then_full)
    with pytest.raises(DiskFull, match=r"/\.corpus-\w+\.\d+\.\w+\.tmp: cannot write: the disk is full \(needs over "
                                       r".*the half-built cache entry was removed"):
        prepare.prepare_training_data(config, eval_sets, config.run_path)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith("vocab-")) == []
    monkeypatch.undo()
    folder = prepare.prepare_training_data(config, eval_sets, config.run_path)
    assert prepare.open_training_data(folder, config.run_path, config).report.kept > 0


def mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def test_a_real_full_disk_stops_train_py_with_one_line(reversal_data: Path, tmp_path: Path) -> None:
    """5 MB holds the data cache, the vocabularies and one checkpoint of the tiny model (about 2.5 MB), not two."""
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "5000k"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        run = subprocess.run([sys.executable, "train.py", *train_args(reversal_data, disk, 60)[1:],
                              "--set", "training.threads=1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stderr
        line = ONE_LINE.search(run.stderr)
        assert line, run.stderr
        assert line.group("advice").startswith(f"the previous checkpoint {disk / 'tiny' / 'step-00000005.pt'} "
                                               "is intact")
        assert "Traceback" not in run.stderr
        assert_only_whole_checkpoints(disk / "tiny")
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_an_export_filling_the_disk_leaves_nothing_that_blocks_a_retry(tiny_transformer_checkpoint: Path,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ctranslate2", reason="CTranslate2 is not installed (pip install -e '.[ctranslate2]')")
    from seq2seq.export import export_ctranslate2

    write_bytes = Path.write_bytes

    def full_at_the_second_vocabulary(self: Path, data: bytes) -> int:
        if self.name == "tgt.spm.model":
            write_bytes(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_at_the_second_vocabulary)
    output = tmp_path / "exported"
    with pytest.raises(DiskFull, match=r"cannot write: the disk is full .*the half-written export was removed"):
        export_ctranslate2(tiny_transformer_checkpoint, output)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    export_ctranslate2(tiny_transformer_checkpoint, output)
    assert (output / "model.bin").is_file() and (output / "tgt.spm.model").is_file()
