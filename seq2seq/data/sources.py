"""Downloads of public English-Hindi corpora: resumable fetches, checksums, safe extraction.

Each dataset in `DATASETS` names its remote files and an install step that puts the
text files where the configs read them (e.g. `data/en-hi/train.en`).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import IO, BinaryIO

from tqdm import tqdm

from seq2seq.errors import UserError

# Some hosts (manythings.org) answer 406 to urllib's default "Python-urllib/x.y".
BROWSER_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHUNK_BYTES = 1 << 16
RETRY_BACKOFF_S = 1.0
# Python versions before 3.10.12/3.11.4 lack extraction filters; members are checked first anyway.
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}

Installer = Callable[[dict[str, Path], Path], list[Path]]


@dataclass(frozen=True)
class RemoteFile:
    """One file to download; `sha256` is None where the host changes the file over time."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Dataset:
    """A downloadable corpus and the step that lays its files out for the configs."""

    name: str
    description: str
    license: str
    files: tuple[RemoteFile, ...]
    install: Installer


# --- fetching --------------------------------------------------------------------------


def fetch(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    headers: Mapping[str, str] | None = None,
    retries: int = 3,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Download `url` to `dest`, resuming and retrying; `dest` only ever holds a verified file.

    An existing `dest` is kept when it matches `sha256` (or when no checksum is known: it
    was renamed into place only after a complete download).
    """
    dest = Path(dest)
    if dest.exists() and (sha256 is None or _sha256_of(dest) == sha256.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    request_headers = {"User-Agent": BROWSER_USER_AGENT, **(headers or {})}
    error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
        try:
            _download_once(url, part, request_headers, progress, timeout)
            break
        except urllib.error.HTTPError as http_error:
            _raise_unless_retryable(url, http_error, part)
            error = http_error
        except (OSError, http.client.HTTPException) as network_error:
            error = network_error
    else:
        raise UserError(
            f"{url}: download failed after {retries + 1} attempts ({error}); check the network "
            "and run again (the partial download is kept and resumes)"
        ) from error
    if sha256 is not None:
        _verify(part, sha256, url)
    os.replace(part, dest)
    return dest


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _download_once(
    url: str, part: Path, headers: dict[str, str], progress: bool, timeout: float
) -> None:
    """One attempt: append to `part` if the server honours Range (206), else start over."""
    have = part.stat().st_size if part.exists() else 0
    if have:
        headers = {**headers, "Range": f"bytes={have}-"}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        start = have if response.status == 206 else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        _stream_to(response, part, start, total, progress)
    size = part.stat().st_size
    # urllib returns a short body without complaint when the connection drops early.
    if total is not None and size < total:
        raise ConnectionError(f"connection closed after {size} of {total} bytes")


def _stream_to(
    response: BinaryIO, part: Path, start: int, total: int | None, progress: bool
) -> None:
    """Write the body to `part` (appending at `start`), fsynced so the later rename is durable."""
    bar = tqdm(
        total=total,
        initial=start,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=part.name.removesuffix(".part"),
        disable=not progress,
    )
    with open(part, "ab" if start else "wb") as out, bar:
        for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
            out.write(chunk)
            bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())


def _raise_unless_retryable(url: str, error: urllib.error.HTTPError, part: Path) -> None:
    """Raise UserError for client errors: only 5xx and a stale `.part` (416) deserve a retry."""
    if error.code == 404:
        raise UserError(f"{url}: not found (HTTP 404); the file may have moved, check the URL")
    if error.code in (403, 406):
        raise UserError(
            f"{url}: the server refused this client (HTTP {error.code}); it may reject the "
            "User-Agent header, send a browser-like User-Agent"
        )
    if error.code == 416:
        part.unlink(missing_ok=True)
    elif error.code < 500:
        raise UserError(f"{url}: HTTP {error.code} {error.reason}; check the URL")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(part: Path, sha256: str, url: str) -> None:
    """Delete a download whose checksum is wrong: resuming it would only keep the bad bytes."""
    got = _sha256_of(part)
    if got != sha256.lower():
        part.unlink()
        raise UserError(
            f"{url}: checksum mismatch (expected sha256 {sha256.lower()}, got {got}); the "
            "download was removed, run again and report it if it repeats"
        )


# --- safe extraction -------------------------------------------------------------------


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


# --- datasets --------------------------------------------------------------------------


def _tar_installer(file_name: str, members: Mapping[str, str]) -> Installer:
    def install(downloaded: dict[str, Path], target_dir: Path) -> list[Path]:
        return safe_extract_tar(downloaded[file_name], target_dir, members)

    return install


def _install_tatoeba(downloaded: dict[str, Path], target_dir: Path) -> list[Path]:
    folder = target_dir / "tatoeba-hin-eng"
    installed = safe_extract_zip(
        downloaded["hin-eng.zip"], target_dir, {"hin.txt": "tatoeba-hin-eng/hin.txt"}
    )
    return installed + split_tatoeba(folder / "hin.txt", folder)


def split_tatoeba(tsv: Path, folder: Path) -> list[Path]:
    """Split `eng<TAB>hin<TAB>attribution` lines into aligned tatoeba.en / tatoeba.hi files."""
    english, hindi = [], []
    # newline="\n": a stray \r inside a sentence must not split it (that would misalign).
    with open(tsv, encoding="utf-8", newline="\n") as lines:
        for line in lines:
            fields = line.split("\t")
            if len(fields) >= 2:
                english.append(fields[0].strip())
                hindi.append(fields[1].strip())
    return [
        _write_lines(folder / "tatoeba.en", english),
        _write_lines(folder / "tatoeba.hi", hindi),
    ]


def _write_lines(path: Path, lines: list[str]) -> Path:
    part = _part_path(path)
    part.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(part, path)
    return path


def _combine(name: str, description: str, parts: tuple[Dataset, ...]) -> Dataset:
    """A dataset made of others: all their files, each install in turn."""

    def install(downloaded: dict[str, Path], target_dir: Path) -> list[Path]:
        return [path for part in parts for path in part.install(downloaded, target_dir)]

    licenses = "; ".join(dict.fromkeys(part.license for part in parts))
    files = tuple(dict.fromkeys(file for part in parts for file in part.files))
    return Dataset(name, description, licenses, files, install)


_IITB_LICENSE = "IITB English-Hindi corpus: non-commercial research only (CC BY-NC 4.0)"

_IITB_DEVTEST = Dataset(
    name="iitb-devtest",
    description="IIT Bombay English-Hindi dev (520) and test (2507) sets",
    license=_IITB_LICENSE,
    files=(
        RemoteFile(
            name="dev_test.tgz",
            urls=(
                "http://www.cfilt.iitb.ac.in/iitb_parallel/iitb_corpus_download/dev_test.tgz",
                (
                    "https://www.cfilt.iitb.ac.in/~parallelcorp/iitb_en_hi_parallel/"
                    "iitb_corpus_download/dev_test.tgz"
                ),
            ),
            sha256="1856c75b99d27e7b58899f0885103cee915d5e5771e3549244af003f9a50e265",
        ),
    ),
    install=_tar_installer(
        "dev_test.tgz",
        {f"dev_test/{split}.{lang}": f"en-hi/{split}.{lang}"
         for split in ("dev", "test") for lang in ("en", "hi")},
    ),
)

_IITB_TRAIN = Dataset(
    name="iitb-train",
    description="IIT Bombay English-Hindi parallel training corpus (1.66M pairs)",
    license=_IITB_LICENSE,
    files=(
        RemoteFile(
            name="parallel.tgz",
            urls=("http://www.cfilt.iitb.ac.in/iitb_parallel/iitb_corpus_download/parallel.tgz",),
        ),
    ),
    install=_tar_installer(
        "parallel.tgz",
        {f"parallel/IITB.en-hi.{lang}": f"en-hi/train.{lang}" for lang in ("en", "hi")},
    ),
)

_IITB = _combine(
    "iitb", "IIT Bombay English-Hindi train, dev and test", (_IITB_TRAIN, _IITB_DEVTEST)
)

_TATOEBA = Dataset(
    name="tatoeba-hin-eng",
    description="Tatoeba Hindi-English sentence pairs via manythings.org (a few thousand)",
    license="Tatoeba, CC-BY 2.0 France (attribution per line in hin.txt)",
    files=(RemoteFile(name="hin-eng.zip", urls=("https://www.manythings.org/anki/hin-eng.zip",)),),
    install=_install_tatoeba,
)

_FLORES200 = Dataset(
    name="flores200",
    description="FLORES-200 English and Hindi dev (997) and devtest (1012) sets",
    license="FLORES-200, CC BY-SA 4.0",
    files=(
        RemoteFile(
            name="flores200_dataset.tar.gz",
            urls=("https://dl.fbaipublicfiles.com/nllb/flores200_dataset.tar.gz",),
        ),
    ),
    install=_tar_installer(
        "flores200_dataset.tar.gz",
        {f"flores200_dataset/{split}/{lang}.{split}": f"flores200-{split}/{lang}.{split}"
         for split in ("dev", "devtest") for lang in ("eng_Latn", "hin_Deva")},
    ),
)

_OPUS100_URL = "https://data.statmt.org/opus-100-corpus/v1.0/supervised/en-hi"
_OPUS100_PARTS = tuple((split, lang) for split in ("train", "dev", "test") for lang in ("en", "hi"))


def _install_opus100(downloaded: dict[str, Path], target_dir: Path) -> list[Path]:
    """Copy rather than move: the copy in downloads/ is what stops a rerun from fetching again."""
    folder = target_dir / "opus100-en-hi"
    folder.mkdir(parents=True, exist_ok=True)
    installed = []
    for split, lang in _OPUS100_PARTS:
        dest = folder / f"{split}.{lang}"
        part = _part_path(dest)
        shutil.copyfile(downloaded[f"opus.en-hi-{split}.{lang}"], part)
        os.replace(part, dest)
        installed.append(dest)
    return installed


_OPUS100 = Dataset(
    name="opus100-en-hi",
    description="OPUS-100 v1.0 English-Hindi: train (534k pairs), dev (2000), test (2000)",
    license=(
        "OPUS-100 states no license of its own: it samples many OPUS corpora (subtitles, software "
        "localisation, religious texts, ...) and each pair keeps its source corpus's terms; "
        "see https://opus.nlpl.eu before redistributing or using it commercially"
    ),
    files=tuple(
        RemoteFile(
            name=f"opus.en-hi-{split}.{lang}",
            urls=(f"{_OPUS100_URL}/opus.en-hi-{split}.{lang}",),
        )
        for split, lang in _OPUS100_PARTS
    ),
    install=_install_opus100,
)

DATASETS: dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in (
        _IITB_DEVTEST,
        _IITB,
        _TATOEBA,
        _FLORES200,
        _OPUS100,
        _combine("en-hi", "The default bundle: IITB train/dev/test and Tatoeba", (_IITB, _TATOEBA)),
    )
}


def download_dataset(
    name: str,
    target_dir: Path,
    *,
    base_url: str | None = None,
    retries: int = 3,
    progress: bool = True,
) -> list[Path]:
    """Download, verify and install dataset `name` under `target_dir`; returns the installed files.

    `base_url` replaces the location of every URL but keeps its file name (for local mirrors
    and tests).
    """
    dataset = _lookup(name)
    target_dir = Path(target_dir)
    print(f"{dataset.name}: {dataset.description}\n  license: {dataset.license}")
    downloaded = {}
    for remote in dataset.files:
        print(f"  source: {remote.urls[0]}")
        downloaded[remote.name] = _fetch_any(
            remote, _rebase(remote.urls, base_url), target_dir / "downloads", retries, progress
        )
    return dataset.install(downloaded, target_dir)


def ensure_files(
    dataset: str,
    root: Path,
    needed: list[Path],
    *,
    base_url: str | None = None,
    progress: bool = True,
) -> None:
    """Download `dataset` into `root` when any of `needed` (absolute or root-relative) is missing.

    Training calls this so a fresh checkout downloads its corpora instead of failing; when
    offline, the error names the command to run elsewhere. With `dataset` empty the reader
    reports missing files itself.
    """
    root = Path(root)
    missing = [root / path for path in needed if not (root / path).exists()]
    if not missing or not dataset:
        return
    _lookup(dataset)
    print(f"missing {_listed(missing, root)}: downloading {dataset} into {root}")
    try:
        download_dataset(dataset, root, base_url=base_url, progress=progress)
    except UserError as error:
        raise UserError(
            f"could not download {dataset} into {root}: {error}. Fix: run `python -m seq2seq "
            f"download {dataset} --dir {root}` on a machine with internet access and copy that "
            "folder to this one, or pass --data-dir DIR to a folder that holds the files"
        ) from error
    still_missing = [path for path in missing if not path.exists()]
    if still_missing:
        raise UserError(
            f"dataset {dataset} does not provide {_listed(still_missing, root)}; set "
            "data.download to a dataset that does (see python -m seq2seq download --list) or "
            "fix the path in the config"
        )


def _listed(paths: list[Path], root: Path) -> str:
    """Paths relative to `root` where they lie under it: shorter and what the config says."""
    return ", ".join(
        str(path.relative_to(root)) if path.is_relative_to(root) else str(path) for path in paths
    )


def _lookup(name: str) -> Dataset:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def _rebase(urls: tuple[str, ...], base_url: str | None) -> tuple[str, ...]:
    if base_url is None:
        return urls
    return tuple(dict.fromkeys(f"{base_url.rstrip('/')}/{url.rsplit('/', 1)[-1]}" for url in urls))


def _fetch_any(
    remote: RemoteFile, urls: tuple[str, ...], folder: Path, retries: int, progress: bool
) -> Path:
    """Try the canonical URL, then each mirror; report every failure if none works."""
    errors = []
    for url in urls:
        try:
            return fetch(
                url,
                folder / remote.name,
                sha256=remote.sha256,
                headers=dict(remote.headers),
                retries=retries,
                progress=progress,
            )
        except UserError as error:
            errors.append(str(error))
    raise UserError(" | ".join(errors))
