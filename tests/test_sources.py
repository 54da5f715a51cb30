"""Tests for seq2seq.data.sources against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seq2seq.data import sources
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
    monkeypatch.setattr(sources, "RETRY_BACKOFF_S", 0.0)


# --- archives the tests build ----------------------------------------------------------


def make_tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_link_tgz(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        tar.addfile(info)
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def with_checksum(monkeypatch: pytest.MonkeyPatch, dataset: str, file: str, digest: str) -> None:
    """Swap a registered file's real checksum for the one of the bytes the test serves."""
    entry = sources.DATASETS[dataset]
    files = tuple(
        dataclasses.replace(remote, sha256=digest) if remote.name == file else remote
        for remote in entry.files
    )
    monkeypatch.setitem(sources.DATASETS, dataset, dataclasses.replace(entry, files=files))


DEV_TEST = {
    "dev_test/dev.en": b"hello\nworld\n",
    "dev_test/dev.hi": "नमस्ते\nदुनिया\n".encode(),
    "dev_test/test.en": b"good morning\n",
    "dev_test/test.hi": "सुप्रभात\n".encode(),
}


# --- fetch -----------------------------------------------------------------------------


def test_iitb_devtest_installs_en_hi_layout(site: Site, tmp_path: Path, monkeypatch) -> None:
    archive = make_tgz(DEV_TEST)
    site.serve("dev_test.tgz", archive)
    with_checksum(monkeypatch, "iitb-devtest", "dev_test.tgz", sha256(archive))

    installed = sources.download_dataset(
        "iitb-devtest", tmp_path, base_url=site.url, progress=False
    )

    expected = {
        tmp_path / name.replace("dev_test/", "en-hi/"): data for name, data in DEV_TEST.items()
    }
    assert sorted(installed) == sorted(expected)
    assert all(path.read_bytes() == data for path, data in expected.items())
    assert (tmp_path / "downloads" / "dev_test.tgz").read_bytes() == archive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads", "en-hi"]


def test_existing_verified_download_is_not_fetched_again(
    site: Site, tmp_path: Path, monkeypatch
) -> None:
    archive = make_tgz(DEV_TEST)
    site.serve("dev_test.tgz", archive)
    with_checksum(monkeypatch, "iitb-devtest", "dev_test.tgz", sha256(archive))
    sources.download_dataset("iitb-devtest", tmp_path, base_url=site.url, progress=False)

    sources.download_dataset("iitb-devtest", tmp_path, base_url=site.url, progress=False)

    assert len(site.requests) == 1


def test_real_checksum_rejects_other_bytes(site: Site, tmp_path: Path) -> None:
    site.serve("dev_test.tgz", make_tgz(DEV_TEST))

    with pytest.raises(UserError, match="checksum"):
        sources.download_dataset("iitb-devtest", tmp_path, base_url=site.url, progress=False)
    assert not (tmp_path / "en-hi").exists()


def test_corrupted_download_is_removed(site: Site, tmp_path: Path) -> None:
    body = b"payload " * 1000
    url = site.serve("data.bin", body, mode="corrupt")
    dest = tmp_path / "data.bin"

    with pytest.raises(UserError, match="checksum mismatch.*removed") as error:
        sources.fetch(url, dest, sha256=sha256(body), progress=False)

    assert sha256(body) in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_cut_off_transfer_resumes_with_range(site: Site, tmp_path: Path) -> None:
    body = random.Random(0).randbytes(200_000)
    url = site.serve("big.bin", body, mode="cutoff")
    dest = tmp_path / "big.bin"

    sources.fetch(url, dest, sha256=sha256(body), progress=False)

    assert dest.read_bytes() == body
    assert [headers.get("Range") for _, headers in site.requests] == [None, "bytes=100000-"]
    assert list(tmp_path.iterdir()) == [dest]


def test_server_ignoring_range_restarts_from_zero(site: Site, tmp_path: Path) -> None:
    body = bytes(range(256)) * 100
    url = site.serve("plain.bin", body, mode="no-range")
    dest = tmp_path / "plain.bin"
    (tmp_path / "plain.bin.part").write_bytes(b"stale partial bytes")

    sources.fetch(url, dest, sha256=sha256(body), progress=False)

    assert site.requests[0][1]["Range"] == "bytes=19-"
    assert dest.read_bytes() == body


def test_stale_complete_part_is_refetched(site: Site, tmp_path: Path) -> None:
    body = b"0123456789"
    url = site.serve("small.bin", body)
    (tmp_path / "small.bin.part").write_bytes(b"0123456789abc")

    sources.fetch(url, tmp_path / "small.bin", sha256=sha256(body), progress=False)

    assert (tmp_path / "small.bin").read_bytes() == body


def test_missing_file_is_a_user_error_without_retries(site: Site, tmp_path: Path) -> None:
    url = site.serve("gone.tgz", b"", mode="missing")

    with pytest.raises(UserError, match="404") as error:
        sources.fetch(url, tmp_path / "gone.tgz", progress=False)

    assert url in str(error.value)
    assert len(site.requests) == 1


def test_unreachable_server_fails_after_retries(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="after 3 attempts"):
        sources.fetch("http://127.0.0.1:9/x.bin", tmp_path / "x.bin", retries=2, progress=False)


def test_picky_server_refuses_python_urllib(site: Site, tmp_path: Path) -> None:
    url = site.serve("hin-eng.zip", b"zip bytes", mode="picky")

    with pytest.raises(UserError, match="406.*User-Agent"):
        sources.fetch(
            url, tmp_path / "a.zip", headers={"User-Agent": "Python-urllib/3.11"}, progress=False
        )


def test_default_user_agent_is_accepted_by_picky_server(site: Site, tmp_path: Path) -> None:
    url = site.serve("hin-eng.zip", b"zip bytes", mode="picky")

    sources.fetch(url, tmp_path / "b.zip", progress=False)

    assert (tmp_path / "b.zip").read_bytes() == b"zip bytes"


def test_mirror_is_used_when_canonical_fails(site: Site, tmp_path: Path) -> None:
    site.serve("dead/file.bin", b"", mode="missing")
    site.serve("alive/file.bin", b"mirror copy")
    urls = (f"{site.url}/dead/file.bin", f"{site.url}/alive/file.bin")
    remote = sources.RemoteFile("file.bin", urls)

    path = sources._fetch_any(remote, remote.urls, tmp_path, retries=0, progress=False)

    assert path.read_bytes() == b"mirror copy"


def test_unknown_dataset_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown dataset 'klingon'.*iitb-devtest"):
        sources.download_dataset("klingon", tmp_path, progress=False)


# --- safe extraction -------------------------------------------------------------------


def extract_refused(tmp_path: Path, name: str, data: bytes) -> Path:
    """Write the archive, expect refusal, and return the (still empty) target."""
    archive = tmp_path / name
    archive.write_bytes(data)
    target = tmp_path / "target"
    extract = sources.safe_extract_zip if name.endswith(".zip") else sources.safe_extract_tar
    with pytest.raises(UserError, match="refusing"):
        extract(archive, target)
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "target"])
    return target


def test_tar_with_parent_member_is_refused(tmp_path: Path) -> None:
    extract_refused(tmp_path, "a.tgz", make_tgz({"ok.txt": b"fine", "../evil": b"x"}))


def test_tar_with_absolute_member_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "abs_evil"
    extract_refused(tmp_path, "b.tgz", make_tgz({"ok.txt": b"fine", str(outside): b"x"}))
    assert not outside.exists()


def test_tar_with_escaping_symlink_is_refused(tmp_path: Path) -> None:
    extract_refused(tmp_path, "c.tgz", make_link_tgz("link", "../../etc"))


def test_zip_with_parent_member_is_refused(tmp_path: Path) -> None:
    extract_refused(tmp_path, "d.zip", make_zip({"ok.txt": b"fine", "../evil.txt": b"x"}))


def test_safe_tar_extracts_everything_by_default(tmp_path: Path) -> None:
    archive = tmp_path / "all.tgz"
    archive.write_bytes(make_tgz({"a/b.txt": b"b", "c.txt": b"c"}))

    written = sources.safe_extract_tar(archive, tmp_path / "out")

    assert sorted(written) == [tmp_path / "out/a/b.txt", tmp_path / "out/c.txt"]
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", ["page.tgz", "page.zip"])
def test_html_instead_of_archive_is_a_user_error(tmp_path: Path, name: str) -> None:
    archive = tmp_path / name
    archive.write_bytes(b"<html><body>Please enable JavaScript</body></html>")
    extract = sources.safe_extract_zip if name.endswith(".zip") else sources.safe_extract_tar

    with pytest.raises(UserError, match="not a readable archive"):
        extract(archive, tmp_path / "out")


def test_missing_member_is_a_user_error(tmp_path: Path) -> None:
    archive = tmp_path / "m.tgz"
    archive.write_bytes(make_tgz({"other.txt": b"x"}))

    with pytest.raises(UserError, match="missing wanted.txt"):
        sources.safe_extract_tar(archive, tmp_path / "out", {"wanted.txt": "w.txt"})


# --- dataset installs ------------------------------------------------------------------


HIN_TXT = (
    "Wow!\tवाह!\tCC-BY 2.0 (France) Attribution: tatoeba.org #52027\n"
    "  Help!  \t  बचाओ!  \tCC-BY 2.0 (France) Attribution: tatoeba.org #435084\n"
    "a line without a tab\n"
    "Jump.\tउछलो.\tCC-BY 2.0 (France) Attribution: tatoeba.org #631038\n"
)


def test_tatoeba_is_split_into_aligned_files(site: Site, tmp_path: Path) -> None:
    zipped = make_zip({"hin.txt": HIN_TXT.encode(), "_about.txt": b"about"})
    site.serve("hin-eng.zip", zipped, mode="picky")

    installed = sources.download_dataset(
        "tatoeba-hin-eng", tmp_path, base_url=site.url, progress=False
    )

    folder = tmp_path / "tatoeba-hin-eng"
    assert sorted(installed) == sorted(folder / n for n in ("hin.txt", "tatoeba.en", "tatoeba.hi"))
    assert (folder / "tatoeba.en").read_text(encoding="utf-8") == "Wow!\nHelp!\nJump.\n"
    assert (folder / "tatoeba.hi").read_text(encoding="utf-8") == "वाह!\nबचाओ!\nउछलो.\n"
    assert not (tmp_path / "_about.txt").exists()


def test_flores_extracts_only_english_and_hindi(site: Site, tmp_path: Path) -> None:
    members = {
        f"flores200_dataset/{split}/{lang}.{split}": f"{lang} {split}\n".encode()
        for split in ("dev", "devtest")
        for lang in ("eng_Latn", "hin_Deva", "fra_Latn")
    }
    site.serve("flores200_dataset.tar.gz", make_tgz(members))

    installed = sources.download_dataset("flores200", tmp_path, base_url=site.url, progress=False)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in installed) == [
        "flores200-dev/eng_Latn.dev",
        "flores200-dev/hin_Deva.dev",
        "flores200-devtest/eng_Latn.devtest",
        "flores200-devtest/hin_Deva.devtest",
    ]
    assert (tmp_path / "flores200-devtest/hin_Deva.devtest").read_bytes() == b"hin_Deva devtest\n"


def test_en_hi_bundle_installs_iitb_and_tatoeba(site: Site, tmp_path: Path, monkeypatch) -> None:
    dev_test = make_tgz(DEV_TEST)
    site.serve("dev_test.tgz", dev_test)
    train = {"parallel/IITB.en-hi.en": b"a\n", "parallel/IITB.en-hi.hi": b"b\n"}
    site.serve("parallel.tgz", make_tgz(train))
    site.serve("hin-eng.zip", make_zip({"hin.txt": HIN_TXT.encode()}))
    with_checksum(monkeypatch, "en-hi", "dev_test.tgz", sha256(dev_test))

    installed = sources.download_dataset("en-hi", tmp_path, base_url=site.url, progress=False)

    names = sorted(p.relative_to(tmp_path).as_posix() for p in installed)
    assert names == sorted(
        [f"en-hi/{split}.{lang}" for split in ("train", "dev", "test") for lang in ("en", "hi")]
        + [f"tatoeba-hin-eng/{name}" for name in ("hin.txt", "tatoeba.en", "tatoeba.hi")]
    )
    assert (tmp_path / "en-hi/train.hi").read_bytes() == b"b\n"


OPUS100 = {
    f"opus.en-hi-{split}.{lang}": "".join(f"{split} {word} {i}\n" for i in range(count)).encode()
    for split, count in (("train", 5), ("dev", 2), ("test", 3))
    for lang, word in (("en", "sentence"), ("hi", "वाक्य"))
}


def serve_opus100(site: Site) -> None:
    for name, data in OPUS100.items():
        site.serve(name, data)


def test_opus100_installs_split_files_and_keeps_downloads(site: Site, tmp_path: Path) -> None:
    serve_opus100(site)

    installed = sources.download_dataset(
        "opus100-en-hi", tmp_path, base_url=site.url, progress=False
    )

    expected = {
        tmp_path / "opus100-en-hi" / name.removeprefix("opus.en-hi-"): data
        for name, data in OPUS100.items()
    }
    assert sorted(installed) == sorted(expected)
    assert all(path.read_bytes() == data for path, data in expected.items())
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == sorted(OPUS100)
    assert not list(tmp_path.rglob("*.part"))

    sources.download_dataset("opus100-en-hi", tmp_path, base_url=site.url, progress=False)

    assert len(site.requests) == len(OPUS100)


# --- ensure_files ----------------------------------------------------------------------


@pytest.fixture
def refused_url() -> str:
    """A local port that was just free: connecting to it is refused, like an offline host."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_ensure_files_downloads_what_is_missing(site: Site, tmp_path: Path, capsys) -> None:
    serve_opus100(site)
    needed = [Path("opus100-en-hi/train.en"), tmp_path / "opus100-en-hi/train.hi"]

    sources.ensure_files("opus100-en-hi", tmp_path, needed, base_url=site.url, progress=False)

    assert (tmp_path / "opus100-en-hi/train.en").read_bytes() == OPUS100["opus.en-hi-train.en"]
    assert (tmp_path / "opus100-en-hi/train.hi").read_bytes() == OPUS100["opus.en-hi-train.hi"]
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line == (
        "missing opus100-en-hi/train.en, opus100-en-hi/train.hi: "
        f"downloading opus100-en-hi into {tmp_path}"
    )


def test_ensure_files_touches_no_network_when_files_exist(
    site: Site, tmp_path: Path, capsys
) -> None:
    serve_opus100(site)
    (tmp_path / "corpus").mkdir()
    for name in ("train.en", "train.hi"):
        (tmp_path / "corpus" / name).write_text("x\n", encoding="utf-8")
    needed = [Path("corpus/train.en"), tmp_path / "corpus/train.hi"]

    sources.ensure_files("opus100-en-hi", tmp_path, needed, base_url=site.url, progress=False)

    assert site.requests == []
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_ensure_files_without_dataset_leaves_missing_files_to_the_reader(
    site: Site, tmp_path: Path
) -> None:
    sources.ensure_files("", tmp_path, [Path("en-hi/train.en")], base_url=site.url)

    assert site.requests == []
    assert list(tmp_path.iterdir()) == []


def test_ensure_files_offline_names_the_download_command(refused_url: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        sources.ensure_files(
            "opus100-en-hi",
            tmp_path,
            [Path("opus100-en-hi/train.en")],
            base_url=refused_url,
            progress=False,
        )

    message = str(error.value)
    assert f"could not download opus100-en-hi into {tmp_path}" in message
    assert "download failed after" in message
    assert f"python -m seq2seq download opus100-en-hi --dir {tmp_path}" in message
    assert "--data-dir DIR" in message
    assert not (tmp_path / "opus100-en-hi").exists()


def test_ensure_files_names_a_file_the_dataset_lacks(site: Site, tmp_path: Path) -> None:
    serve_opus100(site)
    needed = [Path("opus100-en-hi/train.en"), Path("opus100-en-hi/train.fr")]

    lacking = "dataset opus100-en-hi does not provide opus100-en-hi/train.fr;"
    with pytest.raises(UserError, match=lacking):
        sources.ensure_files("opus100-en-hi", tmp_path, needed, base_url=site.url, progress=False)

    assert (tmp_path / "opus100-en-hi/train.en").exists()


def test_ensure_files_rejects_an_unknown_dataset_before_downloading(
    site: Site, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="^unknown dataset 'klingon'"):
        sources.ensure_files("klingon", tmp_path, [Path("a.en")], base_url=site.url)

    assert site.requests == []


def test_registry_files_have_unique_names_and_https_or_http_urls() -> None:
    for dataset in sources.DATASETS.values():
        names = [remote.name for remote in dataset.files]
        assert len(names) == len(set(names)), dataset.name
        assert all(url.startswith(("http://", "https://")) for r in dataset.files for url in r.urls)
    expected = {"iitb-devtest", "iitb", "tatoeba-hin-eng", "flores200", "opus100-en-hi", "en-hi"}
    assert expected <= set(sources.DATASETS)
