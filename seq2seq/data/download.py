"""HTTP downloads that resume, retry, try mirrors and rename a file into place only once verified."""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from seq2seq.errors import UserError
from seq2seq.files import sha256_file

# Some hosts (manythings.org) answer 406 to urllib's default "Python-urllib/x.y".
BROWSER_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHUNK_BYTES = 1 << 16
RETRY_BACKOFF_S = 1.0


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
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
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


def fetch_any(
    urls: tuple[str, ...],
    dest: Path,
    *,
    sha256: str | None = None,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Try the canonical URL, then each mirror; report every failure if none works."""
    errors = []
    for url in urls:
        try:
            return fetch(url, dest, sha256=sha256, retries=retries, progress=progress)
        except UserError as error:
            errors.append(str(error))
    raise UserError(" | ".join(errors))


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


def _verify(part: Path, sha256: str, url: str) -> None:
    """Delete a download whose checksum is wrong: resuming it would only keep the bad bytes."""
    got = sha256_file(part)
    if got != sha256.lower():
        part.unlink()
        raise UserError(
            f"{url}: checksum mismatch (expected sha256 {sha256.lower()}, got {got}); the "
            "download was removed, run again and report it if it repeats"
        )
