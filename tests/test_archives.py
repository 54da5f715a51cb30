"""Tests for seq2seq.data.archives on archives the tests build, malicious ones included.

The archive builders are also used by test_catalogue.py, which imports them from here.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from seq2seq.data.archives import safe_extract_tar, safe_extract_zip
from seq2seq.errors import UserError

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


# --- safe extraction -------------------------------------------------------------------


def extract_refused(tmp_path: Path, name: str, data: bytes) -> Path:
    """Write the archive, expect refusal, and return the (still empty) target."""
    archive = tmp_path / name
    archive.write_bytes(data)
    target = tmp_path / "target"
    extract = safe_extract_zip if name.endswith(".zip") else safe_extract_tar
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

    written = safe_extract_tar(archive, tmp_path / "out")

    assert sorted(written) == [tmp_path / "out/a/b.txt", tmp_path / "out/c.txt"]
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []


def test_chosen_members_land_under_their_new_names(tmp_path: Path) -> None:
    archive = tmp_path / "some.zip"
    archive.write_bytes(make_zip({"./dir/a.txt": b"a", "b.txt": b"b"}))

    written = safe_extract_zip(archive, tmp_path / "out", {"dir/a.txt": "renamed/a.en"})

    assert written == [tmp_path / "out/renamed/a.en"]
    assert (tmp_path / "out/renamed/a.en").read_bytes() == b"a"
    assert not (tmp_path / "out/b.txt").exists()


@pytest.mark.parametrize("name", ["page.tgz", "page.zip"])
def test_html_instead_of_archive_is_a_user_error(tmp_path: Path, name: str) -> None:
    archive = tmp_path / name
    archive.write_bytes(b"<html><body>Please enable JavaScript</body></html>")
    extract = safe_extract_zip if name.endswith(".zip") else safe_extract_tar

    with pytest.raises(UserError, match="not a readable archive"):
        extract(archive, tmp_path / "out")


def test_missing_member_is_a_user_error(tmp_path: Path) -> None:
    archive = tmp_path / "m.tgz"
    archive.write_bytes(make_tgz({"other.txt": b"x"}))

    with pytest.raises(UserError, match="missing wanted.txt"):
        safe_extract_tar(archive, tmp_path / "out", {"wanted.txt": "w.txt"})
