"""The public English-Hindi datasets: where each comes from, its terms, and how it is installed.

Each dataset in `DATASETS` names its remote files and an install step that puts the
text files where the configs read them (e.g. `data/en-hi/train.en`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from seq2seq.data.archives import safe_extract_tar, safe_extract_zip
from seq2seq.data.download import fetch_any
from seq2seq.errors import UserError
from seq2seq.files import atomic_write

Installer = Callable[[dict[str, Path], Path], list[Path]]


@dataclass(frozen=True)
class RemoteFile:
    """One file to download, canonical URL first.

    `sha256` is None where the host changes the file over time, or where the file is a fixed
    release whose digest nobody has recorded from a trusted copy yet.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A downloadable corpus and the step that lays its files out for the configs.

    `url` is the page that documents the release, so a user can check its terms and version.
    """

    name: str
    description: str
    url: str
    license: str
    files: tuple[RemoteFile, ...]
    install: Installer


# --- installers ------------------------------------------------------------------------


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
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    atomic_write(path, lambda out: out.write(text))
    return path


def _combine(name: str, description: str, parts: tuple[Dataset, ...]) -> Dataset:
    """A dataset made of others: all their files, each install in turn."""

    def install(downloaded: dict[str, Path], target_dir: Path) -> list[Path]:
        return [path for part in parts for path in part.install(downloaded, target_dir)]

    urls = ", ".join(dict.fromkeys(part.url for part in parts))
    licenses = "; ".join(dict.fromkeys(part.license for part in parts))
    files = tuple(dict.fromkeys(file for part in parts for file in part.files))
    return Dataset(name, description, urls, licenses, files, install)


# --- the datasets ----------------------------------------------------------------------

_IITB_URL = "https://www.cfilt.iitb.ac.in/iitb_parallel/"
_IITB_LICENSE = "IITB English-Hindi corpus: non-commercial research only (CC BY-NC 4.0)"

_IITB_DEVTEST = Dataset(
    name="iitb-devtest",
    description="IIT Bombay English-Hindi dev (520) and test (2507) sets",
    url=_IITB_URL,
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
    url=_IITB_URL,
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
    url="https://www.manythings.org/anki/",
    license="Tatoeba, CC-BY 2.0 France (attribution per line in hin.txt)",
    files=(RemoteFile(name="hin-eng.zip", urls=("https://www.manythings.org/anki/hin-eng.zip",)),),
    install=_install_tatoeba,
)

_FLORES200 = Dataset(
    name="flores200",
    description="FLORES-200 English and Hindi dev (997) and devtest (1012) sets",
    url="https://github.com/facebookresearch/flores/tree/main/flores200",
    license="FLORES-200, CC BY-SA 4.0",
    files=(
        # A fixed release, but no trusted copy of the archive was at hand to take its sha256 from.
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
    installed = []
    for split, lang in _OPUS100_PARTS:
        dest = target_dir / "opus100-en-hi" / f"{split}.{lang}"
        _copy_file(downloaded[f"opus.en-hi-{split}.{lang}"], dest)
        installed.append(dest)
    return installed


def _copy_file(source: Path, dest: Path) -> None:
    with open(source, "rb") as original:
        atomic_write(dest, lambda out: shutil.copyfileobj(original, out))


_OPUS100 = Dataset(
    name="opus100-en-hi",
    description="OPUS-100 v1.0 English-Hindi: train (534k pairs), dev (2000), test (2000)",
    url="https://opus.nlpl.eu/opus-100.php",
    license=(
        "OPUS-100 states no license of its own: it samples many OPUS corpora (subtitles, software "
        "localisation, religious texts, ...) and each pair keeps its source corpus's terms; "
        "see https://opus.nlpl.eu before redistributing or using it commercially"
    ),
    # A fixed release, but no trusted copy of these files was at hand to take their sha256 from.
    files=tuple(
        RemoteFile(
            name=f"opus.en-hi-{split}.{lang}",
            urls=(f"{_OPUS100_URL}/opus.en-hi-{split}.{lang}",),
        )
        for split, lang in _OPUS100_PARTS
    ),
    install=_install_opus100,
)

_TATOEBA_CHALLENGE_RELEASE = "v2021-08-07"
_TATOEBA_CHALLENGE_DIR = f"data/release/{_TATOEBA_CHALLENGE_RELEASE}/eng-hin"

# The whole eng-hin release (OPUS training data included) is one archive; only its test set,
# all 5,000 pairs, is installed. The copy in shared/data drops pairs that overlap other sets;
# training's eval-overlap cleaning does the same for the dev, test and held-out sets of a config.
_TATOEBA_CHALLENGE = Dataset(
    name="tatoeba-test-eng-hin",
    description=f"Tatoeba Challenge {_TATOEBA_CHALLENGE_RELEASE} eng-hin test set (5000 pairs)",
    url="https://github.com/Helsinki-NLP/Tatoeba-Challenge",
    license="Tatoeba sentences CC-BY 2.0 France; the Tatoeba Challenge release CC BY-NC-SA 4.0",
    files=(
        # A fixed release, but no trusted copy of the archive was at hand to take its sha256 from.
        RemoteFile(
            # The release in the name: a later release must not reuse this download unchecked.
            name=f"tatoeba-challenge-{_TATOEBA_CHALLENGE_RELEASE}-eng-hin.tar",
            urls=(
                "https://object.pouta.csc.fi/"
                f"Tatoeba-Challenge-{_TATOEBA_CHALLENGE_RELEASE}/eng-hin.tar",
            ),
        ),
    ),
    install=_tar_installer(
        f"tatoeba-challenge-{_TATOEBA_CHALLENGE_RELEASE}-eng-hin.tar",
        {
            f"{_TATOEBA_CHALLENGE_DIR}/test.src": "extra/tatoeba-test-eng-hin/tatoeba-test.en",
            f"{_TATOEBA_CHALLENGE_DIR}/test.trg": "extra/tatoeba-test-eng-hin/tatoeba-test.hi",
        },
    ),
)

DATASETS: dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in (
        _IITB_DEVTEST,
        _IITB,
        _TATOEBA,
        _FLORES200,
        _OPUS100,
        _TATOEBA_CHALLENGE,
        _combine("en-hi", "The default bundle: IITB train/dev/test and Tatoeba", (_IITB, _TATOEBA)),
        _combine("en-hi-everyday", "The default bundle, the Tatoeba Challenge eng-hin test set (more everyday "
                 "pairs to train on) and FLORES-200", (_IITB, _TATOEBA, _TATOEBA_CHALLENGE, _FLORES200)),
    )
}


# --- downloading a dataset -------------------------------------------------------------


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
        downloaded[remote.name] = fetch_any(
            _rebase(remote.urls, base_url),
            target_dir / "downloads" / remote.name,
            sha256=remote.sha256,
            retries=retries,
            progress=progress,
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
