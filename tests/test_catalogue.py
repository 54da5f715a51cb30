"""Tests for seq2seq.data.catalogue: each dataset installs its files, served by a local HTTP server."""

from __future__ import annotations

import dataclasses
import gzip
import io
import socket
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT, SHARED_DATA
from test_archives import make_tgz, make_zip
from test_download import Site, sha256, site  # noqa: F401 (site is a fixture)

from seq2seq.cli import main
from seq2seq.config import load_config
from seq2seq.data import catalogue, download
from seq2seq.data.corpus import data_files
from seq2seq.errors import UserError


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "RETRY_BACKOFF_S", 0.0)


def with_checksum(monkeypatch: pytest.MonkeyPatch, dataset: str, file: str, digest: str) -> None:
    """Swap a registered file's real checksum for the one of the bytes the test serves."""
    entry = catalogue.DATASETS[dataset]
    files = tuple(
        dataclasses.replace(remote, sha256=digest) if remote.name == file else remote
        for remote in entry.files
    )
    monkeypatch.setitem(catalogue.DATASETS, dataset, dataclasses.replace(entry, files=files))


DEV_TEST = {
    "dev_test/dev.en": b"hello\nworld\n",
    "dev_test/dev.hi": "नमस्ते\nदुनिया\n".encode(),
    "dev_test/test.en": b"good morning\n",
    "dev_test/test.hi": "सुप्रभात\n".encode(),
}


# --- downloading a dataset -------------------------------------------------------------


def test_iitb_devtest_installs_en_hi_layout(site: Site, tmp_path: Path, monkeypatch) -> None:
    archive = make_tgz(DEV_TEST)
    site.serve("dev_test.tgz", archive)
    with_checksum(monkeypatch, "iitb-devtest", "dev_test.tgz", sha256(archive))

    installed = catalogue.download_dataset(
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
    catalogue.download_dataset("iitb-devtest", tmp_path, base_url=site.url, progress=False)

    catalogue.download_dataset("iitb-devtest", tmp_path, base_url=site.url, progress=False)

    assert len(site.requests) == 1


def test_real_checksum_rejects_other_bytes(site: Site, tmp_path: Path) -> None:
    site.serve("dev_test.tgz", make_tgz(DEV_TEST))

    with pytest.raises(UserError, match="checksum"):
        catalogue.download_dataset("iitb-devtest", tmp_path, base_url=site.url, progress=False)
    assert not (tmp_path / "en-hi").exists()


def test_unknown_dataset_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown dataset 'klingon'.*iitb-devtest"):
        catalogue.download_dataset("klingon", tmp_path, progress=False)


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

    installed = catalogue.download_dataset(
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

    installed = catalogue.download_dataset("flores200", tmp_path, base_url=site.url, progress=False)

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

    installed = catalogue.download_dataset("en-hi", tmp_path, base_url=site.url, progress=False)

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

    installed = catalogue.download_dataset(
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

    catalogue.download_dataset("opus100-en-hi", tmp_path, base_url=site.url, progress=False)

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

    catalogue.ensure_files("opus100-en-hi", tmp_path, needed, base_url=site.url, progress=False)

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

    catalogue.ensure_files("opus100-en-hi", tmp_path, needed, base_url=site.url, progress=False)

    assert site.requests == []
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_ensure_files_without_dataset_leaves_missing_files_to_the_reader(
    site: Site, tmp_path: Path
) -> None:
    catalogue.ensure_files("", tmp_path, [Path("en-hi/train.en")], base_url=site.url)

    assert site.requests == []
    assert list(tmp_path.iterdir()) == []


def test_ensure_files_offline_names_the_download_command(refused_url: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        catalogue.ensure_files(
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
        catalogue.ensure_files("opus100-en-hi", tmp_path, needed, base_url=site.url, progress=False)

    assert (tmp_path / "opus100-en-hi/train.en").exists()


def test_ensure_files_rejects_an_unknown_dataset_before_downloading(
    site: Site, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="^unknown dataset 'klingon'"):
        catalogue.ensure_files("klingon", tmp_path, [Path("a.en")], base_url=site.url)

    assert site.requests == []


# --- the Tatoeba Challenge test set ----------------------------------------------------

CHALLENGE_DIR = "data/release/v2021-08-07/eng-hin"
CHALLENGE = {
    f"{CHALLENGE_DIR}/train.src.gz": b"not installed",
    f"{CHALLENGE_DIR}/train.trg.gz": b"not installed",
    f"{CHALLENGE_DIR}/train.id.gz": b"not installed",
    f"{CHALLENGE_DIR}/dev.src": b"Dev sentence.\n",
    f"{CHALLENGE_DIR}/dev.trg": "विकास वाक्य।\n".encode(),
    f"{CHALLENGE_DIR}/test.src": b"I'm hungry.\nWhere is it?\n",
    f"{CHALLENGE_DIR}/test.trg": "मुझे भूख लगी है।\nवह कहाँ है?\n".encode(),
    f"{CHALLENGE_DIR}/test.id": b"eng\thin\neng\thin\n",
}


def make_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar, as the Tatoeba Challenge publishes its releases."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tatoeba_challenge_installs_only_its_test_set(site: Site, tmp_path: Path) -> None:
    site.serve("eng-hin.tar", make_tar(CHALLENGE))

    installed = catalogue.download_dataset(
        "tatoeba-test-eng-hin", tmp_path, base_url=site.url, progress=False
    )

    folder = tmp_path / "extra" / "tatoeba-test-eng-hin"
    assert sorted(installed) == [folder / "tatoeba-test.en", folder / "tatoeba-test.hi"]
    assert (folder / "tatoeba-test.en").read_bytes() == CHALLENGE[f"{CHALLENGE_DIR}/test.src"]
    assert (folder / "tatoeba-test.hi").read_bytes() == CHALLENGE[f"{CHALLENGE_DIR}/test.trg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads", "extra"]
    assert [p.name for p in (tmp_path / "extra").iterdir()] == ["tatoeba-test-eng-hin"]
    assert [request for request, _ in site.requests] == ["/eng-hin.tar"]


def test_tatoeba_challenge_archive_without_the_release_folder_is_a_user_error(
    site: Site, tmp_path: Path
) -> None:
    site.serve("eng-hin.tar", make_tar({"data/eng-hin/test.src": b"x\n"}))

    with pytest.raises(UserError, match=f"missing {CHALLENGE_DIR}/test.src"):
        catalogue.download_dataset(
            "tatoeba-test-eng-hin", tmp_path, base_url=site.url, progress=False
        )

    assert not (tmp_path / "extra").exists()


def test_tatoeba_challenge_matches_the_shared_data_layout(site: Site, tmp_path: Path) -> None:
    shared = SHARED_DATA / "extra" / "tatoeba-test-eng-hin"
    if not shared.is_dir():
        pytest.skip("../shared/data is not here")
    site.serve("eng-hin.tar", make_tar(CHALLENGE))

    installed = catalogue.download_dataset(
        "tatoeba-test-eng-hin", tmp_path, base_url=site.url, progress=False
    )

    assert sorted(p.relative_to(tmp_path) for p in installed) == sorted(
        p.relative_to(SHARED_DATA) for p in shared.iterdir()
    )


def test_tatoeba_challenge_dev_set_installs_aligned_pairs_once(site: Site, tmp_path: Path) -> None:
    lines = ["eng\thin\tI'm  hungry.\tमुझे भूख लगी है।", "eng\thin\tWhere is it?\tवह कहाँ है?",
             "eng\thin\tI'm hungry.\tमुझे भूख लगी है।", "a broken line", ""]
    site.serve("dev.txt", "\n".join(lines).encode())

    installed = catalogue.download_dataset("tatoeba-dev-eng-hin", tmp_path, base_url=site.url, progress=False)

    folder = tmp_path / "extra" / "tatoeba-dev-eng-hin"
    assert sorted(installed) == [folder / "tatoeba-dev.en", folder / "tatoeba-dev.hi"]
    assert (folder / "tatoeba-dev.en").read_text(encoding="utf-8") == "I'm hungry.\nWhere is it?\n"
    assert (folder / "tatoeba-dev.hi").read_text(encoding="utf-8") == "मुझे भूख लगी है।\nवह कहाँ है?\n"
    shared = SHARED_DATA / "extra" / "tatoeba-dev-eng-hin"
    if shared.is_dir():  # the layout the configs read
        assert sorted(p.name for p in shared.iterdir() if p.suffix in (".en", ".hi")) == \
            sorted(p.name for p in installed)


def test_a_tatoeba_challenge_dev_set_without_pairs_is_a_user_error(site: Site, tmp_path: Path) -> None:
    site.serve("dev.txt", b"<html>not found</html>\n")
    with pytest.raises(UserError, match="no `eng<TAB>hin"):
        catalogue.download_dataset("tatoeba-dev-eng-hin", tmp_path, base_url=site.url, progress=False)
    assert not (tmp_path / "extra").exists()


# --- the catalogue itself ---------------------------------------------------------------


def test_registry_files_have_unique_names_and_https_or_http_urls() -> None:
    for dataset in catalogue.DATASETS.values():
        names = [remote.name for remote in dataset.files]
        assert len(names) == len(set(names)), dataset.name
        assert all(url.startswith(("http://", "https://")) for r in dataset.files for url in r.urls)
    expected = {"iitb-devtest", "iitb", "tatoeba-hin-eng", "flores200", "opus100-en-hi", "en-hi",
                "tatoeba-test-eng-hin"}
    assert expected <= set(catalogue.DATASETS)


def test_every_dataset_names_its_page_and_license() -> None:
    for dataset in catalogue.DATASETS.values():
        assert all(url.startswith(("http://", "https://")) for url in dataset.url.split(", "))
        assert dataset.license.strip(), dataset.name
    bundle = catalogue.DATASETS["en-hi"]
    assert bundle.url == "https://www.cfilt.iitb.ac.in/iitb_parallel/, https://www.manythings.org/anki/"


def test_download_list_prints_each_url_and_license(capsys: pytest.CaptureFixture) -> None:
    """`python -m seq2seq download --list`, as the README promises (run_download in seq2seq.cli)."""
    assert main(["download", "--list"]) == 0

    out = capsys.readouterr().out
    for name, dataset in catalogue.DATASETS.items():
        assert f"{name} " in out
        assert f"url: {dataset.url}\n" in out
        assert f"license: {dataset.license}\n" in out


# --- Multi30k ---------------------------------------------------------------------------

MULTI30K_PARTS = [(split, lang) for split in ("train", "val", "test_2016_flickr") for lang in ("en", "de", "fr")]


def serve_multi30k(site: Site, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Small stand-ins for the 18 published files, registered with their own checksums; returns the texts."""
    texts, digests = {}, {}
    for split, lang in MULTI30K_PARTS:
        part, tok_name = f"{split}.{lang}", f"{split}.lc.norm.tok.{lang}"
        raw = f"A caption of {part}.\nAnother one, for {part}.\n".encode()
        tok = f"a caption of {part} .\nanother one , for {part} .\n".encode()
        packed = gzip.compress(raw)
        site.serve(f"{part}.gz", packed)
        site.serve(tok_name, tok)
        texts[f"multi30k/raw/{part}"], texts[f"multi30k/tok/{tok_name}"] = raw, tok
        digests[f"{part}.gz"], digests[tok_name] = sha256(packed), sha256(tok)
    entry = catalogue.DATASETS["multi30k"]
    files = tuple(dataclasses.replace(remote, sha256=digests[remote.name]) for remote in entry.files)
    monkeypatch.setitem(catalogue.DATASETS, "multi30k", dataclasses.replace(entry, files=files))
    return texts


def test_multi30k_installs_raw_and_tok_where_the_configs_read_them(site: Site, tmp_path: Path, monkeypatch) -> None:
    texts = serve_multi30k(site, monkeypatch)

    installed = catalogue.download_dataset("multi30k", tmp_path, base_url=site.url, progress=False)

    assert sorted(installed) == sorted(tmp_path / name for name in texts)
    assert all((tmp_path / name).read_bytes() == data for name, data in texts.items())
    for config in sorted((ROOT / "configs").glob("multi30k-*.yaml")):
        loaded = load_config(config, data_dir=str(tmp_path))
        assert loaded.data.download == "multi30k", config.name
        assert all((tmp_path / path).is_file() for path in data_files(loaded.data)), config.name


def test_multi30k_registers_every_published_checksum() -> None:
    """Each of the 18 files is checked: the 9 raw .gz files and the 9 tok/ files."""
    files = catalogue.DATASETS["multi30k"].files
    assert len(files) == 18 and all(remote.sha256 and len(remote.sha256) == 64 for remote in files)
    urls = {remote.urls[0] for remote in files}
    assert "https://github.com/multi30k/dataset/raw/master/data/task1/raw/val.de.gz" in urls
    assert "https://github.com/multi30k/dataset/raw/master/data/task1/tok/test_2016_flickr.lc.norm.tok.fr" in urls


def test_multi30k_wrong_bytes_are_refused(site: Site, tmp_path: Path, monkeypatch) -> None:
    serve_multi30k(site, monkeypatch)
    site.serve("val.de.gz", gzip.compress(b"something else\n"))

    with pytest.raises(UserError, match="val.de.gz: checksum mismatch"):
        catalogue.download_dataset("multi30k", tmp_path, base_url=site.url, progress=False)
    assert not (tmp_path / "multi30k" / "raw" / "val.de").exists()
