"""Safe tar and zip extraction: no member may land outside the target folder.

Every member is checked before anything is written, files are extracted into a staging
folder beside the target and only then renamed into place, so a refused or broken archive
leaves the target as it was.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PureWindowsPath
from typing import IO

from seq2seq.errors import UserError

# Python versions before 3.10.12/3.11.4 lack extraction filters; members are checked first anyway.
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def safe_extract_tar(
    archive: Path, target_dir: Path, members: Mapping[str, str] | None = None
) -> list[Path]:
    """Extract a tar archive, refusing paths and links that could land outside `target_dir`.

    `members` maps member names to destinations relative to `target_dir`; None extracts
    everything under its own name. Returns the files written.
    """
    target_dir = Path(target_dir)
    with _readable(archive), tarfile.open(archive) as tar, _staging(target_dir) as staging:
        entries = tar.getmembers()
        for entry in entries:
            _check_tar_member(archive, entry)
        if members is None:
            tar.extractall(staging, members=entries, **_TAR_FILTER)
        else:
            chosen = _destinations(archive, [e.name for e in entries if e.isfile()], members)
            for entry in entries:
                if entry.name in chosen:
                    _write_stream(tar.extractfile(entry), staging / chosen[entry.name])
        return _move_tree(staging, target_dir)


def safe_extract_zip(
    archive: Path, target_dir: Path, members: Mapping[str, str] | None = None
) -> list[Path]:
    """Extract a zip archive, refusing absolute and `..` paths; `members` as in safe_extract_tar."""
    target_dir = Path(target_dir)
    with _readable(archive), zipfile.ZipFile(archive) as zipped, _staging(target_dir) as staging:
        infos = zipped.infolist()
        for info in infos:
            _check_path(archive, info.filename, "member")
        names = [info.filename for info in infos if not info.is_dir()]
        chosen = _destinations(archive, names, members)
        for info in infos:
            if info.filename in chosen:
                with zipped.open(info) as source:
                    _write_stream(source, staging / chosen[info.filename])
        return _move_tree(staging, target_dir)


@contextmanager
def _readable(archive: Path) -> Iterator[None]:
    """Hosts sometimes answer 200 with an HTML page: name the file, not a tarfile traceback."""
    try:
        yield
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise UserError(
            f"{archive}: not a readable archive ({err}); delete it and download again"
        ) from err


def _check_path(archive: Path, path: str, what: str) -> None:
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or PureWindowsPath(path).drive or ".." in parts:
        raise UserError(
            f"{archive}: refusing unsafe {what} {path!r} (absolute or containing '..'); "
            "the archive is corrupt or malicious, delete it and download again"
        )


def _check_tar_member(archive: Path, entry: tarfile.TarInfo) -> None:
    """Links may only point downwards: a link target without `..` cannot resolve outside."""
    if not (entry.isfile() or entry.isdir() or entry.issym() or entry.islnk()):
        raise UserError(
            f"{archive}: refusing special file {entry.name!r}; the archive is corrupt or "
            "malicious, delete it and download again"
        )
    _check_path(archive, entry.name, "member")
    if entry.issym() or entry.islnk():
        _check_path(archive, entry.linkname, f"link {entry.name!r} ->")


def _destinations(
    archive: Path, names: list[str], members: Mapping[str, str] | None
) -> dict[str, str]:
    """Map archive member names to relative destinations, failing if a wanted member is absent."""
    if members is None:
        return {name: name for name in names}
    by_key = {name.removeprefix("./"): name for name in names}
    missing = [key for key in members if key not in by_key]
    if missing:
        raise UserError(
            f"{archive}: missing {', '.join(missing)}; the host may have changed the archive, "
            "delete it and download again"
        )
    return {by_key[key]: dest for key, dest in members.items()}


@contextmanager
def _staging(target_dir: Path) -> Iterator[Path]:
    """A temp dir on the target's file system, so moving files out of it is an atomic rename."""
    target_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_stream(source: IO[bytes], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        shutil.copyfileobj(source, out)


def _move_tree(staging: Path, target_dir: Path) -> list[Path]:
    """Move every file and link out of `staging`, merging into folders that already exist."""
    moved = []
    for root, dirs, files in os.walk(staging):
        relative = Path(root).relative_to(staging)
        (target_dir / relative).mkdir(exist_ok=True)
        links = [name for name in dirs if (Path(root) / name).is_symlink()]
        for name in sorted(files + links):
            os.replace(Path(root) / name, target_dir / relative / name)
            moved.append(target_dir / relative / name)
    return moved
