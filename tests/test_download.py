"""Tests for seq2seq.data.download against a real HTTP server on 127.0.0.1.

The server (`site`) is also used by test_catalogue.py, which imports it from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seq2seq.data import download
from seq2seq.errors import UserError

# --- a local server with configurable misbehaviour -------------------------------------


@dataclasses.dataclass
class Route:
    """What the server does for one path: normal, corrupt, cutoff, missing, picky, no-range."""

    body: bytes
    mode: str = "normal"
    hits: int = 0


class Site:
    """Routes plus a log of (path, headers) for every request the server saw."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def serve(self, name: str, body: bytes, mode: str = "normal") -> str:
        self.routes[f"/{name}"] = Route(body, mode)
        return f"{self.url}/{name}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        site: Site = self.server.site  # type: ignore[attr-defined]
        site.requests.append((self.path, dict(self.headers)))
        route = site.routes.get(self.path)
        if route is None or route.mode == "missing":
            return self.send_error(404)
        if route.mode == "picky" and not self.headers.get("User-Agent", "").startswith("Mozilla/"):
            return self.send_error(406)
        route.hits += 1
        body = b"X" + route.body[1:] if route.mode == "corrupt" else route.body
        start = 0 if route.mode == "no-range" else _range_start(self.headers.get("Range"))
        if start >= len(body) > 0:
            return self.send_error(416)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        payload = body[start:]
        if route.mode == "cutoff" and route.hits == 1:
            payload = payload[: len(payload) // 2]
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def _range_start(header: str | None) -> int:
    return int(header.removeprefix("bytes=").split("-")[0]) if header else 0


@pytest.fixture
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.site = Site(f"http://127.0.0.1:{server.server_address[1]}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server.site  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "RETRY_BACKOFF_S", 0.0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- fetch -----------------------------------------------------------------------------


def test_corrupted_download_is_removed(site: Site, tmp_path: Path) -> None:
    body = b"payload " * 1000
    url = site.serve("data.bin", body, mode="corrupt")
    dest = tmp_path / "data.bin"

    with pytest.raises(UserError, match="checksum mismatch.*removed") as error:
        download.fetch(url, dest, sha256=sha256(body), progress=False)

    assert sha256(body) in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_cut_off_transfer_resumes_with_range(site: Site, tmp_path: Path) -> None:
    body = random.Random(0).randbytes(200_000)
    url = site.serve("big.bin", body, mode="cutoff")
    dest = tmp_path / "big.bin"

    download.fetch(url, dest, sha256=sha256(body), progress=False)

    assert dest.read_bytes() == body
    assert [headers.get("Range") for _, headers in site.requests] == [None, "bytes=100000-"]
    assert list(tmp_path.iterdir()) == [dest]


def test_server_ignoring_range_restarts_from_zero(site: Site, tmp_path: Path) -> None:
    body = bytes(range(256)) * 100
    url = site.serve("plain.bin", body, mode="no-range")
    dest = tmp_path / "plain.bin"
    (tmp_path / "plain.bin.part").write_bytes(b"stale partial bytes")

    download.fetch(url, dest, sha256=sha256(body), progress=False)

    assert site.requests[0][1]["Range"] == "bytes=19-"
    assert dest.read_bytes() == body


def test_stale_complete_part_is_refetched(site: Site, tmp_path: Path) -> None:
    body = b"0123456789"
    url = site.serve("small.bin", body)
    (tmp_path / "small.bin.part").write_bytes(b"0123456789abc")

    download.fetch(url, tmp_path / "small.bin", sha256=sha256(body), progress=False)

    assert (tmp_path / "small.bin").read_bytes() == body


def test_existing_file_with_the_right_checksum_is_kept(site: Site, tmp_path: Path) -> None:
    body = b"already here"
    url = site.serve("kept.bin", body)
    (tmp_path / "kept.bin").write_bytes(body)

    download.fetch(url, tmp_path / "kept.bin", sha256=sha256(body), progress=False)

    assert site.requests == []


def test_existing_file_with_a_wrong_checksum_is_replaced(site: Site, tmp_path: Path) -> None:
    body = b"the real bytes"
    url = site.serve("replaced.bin", body)
    (tmp_path / "replaced.bin").write_bytes(b"an older copy")

    download.fetch(url, tmp_path / "replaced.bin", sha256=sha256(body), progress=False)

    assert (tmp_path / "replaced.bin").read_bytes() == body
    assert len(site.requests) == 1


def test_missing_file_is_a_user_error_without_retries(site: Site, tmp_path: Path) -> None:
    url = site.serve("gone.tgz", b"", mode="missing")

    with pytest.raises(UserError, match="404") as error:
        download.fetch(url, tmp_path / "gone.tgz", progress=False)

    assert url in str(error.value)
    assert len(site.requests) == 1


def test_unreachable_server_fails_after_retries(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="after 3 attempts"):
        download.fetch("http://127.0.0.1:9/x.bin", tmp_path / "x.bin", retries=2, progress=False)


def test_picky_server_refuses_python_urllib(site: Site, tmp_path: Path) -> None:
    url = site.serve("hin-eng.zip", b"zip bytes", mode="picky")

    with pytest.raises(UserError, match="406.*User-Agent"):
        download.fetch(
            url, tmp_path / "a.zip", headers={"User-Agent": "Python-urllib/3.11"}, progress=False
        )


def test_default_user_agent_is_accepted_by_picky_server(site: Site, tmp_path: Path) -> None:
    url = site.serve("hin-eng.zip", b"zip bytes", mode="picky")

    download.fetch(url, tmp_path / "b.zip", progress=False)

    assert (tmp_path / "b.zip").read_bytes() == b"zip bytes"


# --- fetch_any -------------------------------------------------------------------------


def test_mirror_is_used_when_canonical_fails(site: Site, tmp_path: Path) -> None:
    site.serve("dead/file.bin", b"", mode="missing")
    site.serve("alive/file.bin", b"mirror copy")
    urls = (f"{site.url}/dead/file.bin", f"{site.url}/alive/file.bin")

    path = download.fetch_any(urls, tmp_path / "file.bin", retries=0, progress=False)

    assert path.read_bytes() == b"mirror copy"


def test_every_failing_mirror_is_named(site: Site, tmp_path: Path) -> None:
    urls = (f"{site.url}/one/file.bin", f"{site.url}/two/file.bin")

    with pytest.raises(UserError) as error:
        download.fetch_any(urls, tmp_path / "file.bin", retries=0, progress=False)

    assert all(f"{url}: not found" in str(error.value) for url in urls)
    assert list(tmp_path.iterdir()) == []
