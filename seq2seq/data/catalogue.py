"""The public datasets the configs read: where each comes from, its terms, and how it is installed.

Each dataset in `DATASETS` names its remote files and an install step that puts the
text files where the configs read them (e.g. `data/en-hi/train.en`, `data/multi30k/raw/train.de`).
"""

from __future__ import annotations

import gzip
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

_TATOEBA_DEV_COMMIT = "7b1a514877868084fd74350d261519e092b5b2dc"


def _install_tatoeba_dev(downloaded: dict[str, Path], target_dir: Path) -> list[Path]:
    """`eng<TAB>hin<TAB>English<TAB>Hindi` lines as aligned tatoeba-dev.en / .hi, whitespace collapsed, exact
    duplicate pairs once. The copy in ../shared/data also left out every pair that shares a side with another
    set (3,056 of 5,821 remain); training's cleaning drops the pairs that meet the config's evaluation sets
    (data.cleaning.remove_eval_overlap) and repeated pairs (data.cleaning.dedup)."""
    pairs: dict[tuple[str, str], None] = {}
    with open(downloaded["tatoeba-challenge-dev-eng-hin.txt"], encoding="utf-8", newline="\n") as lines:
        for line in lines:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 4:
                pairs[(" ".join(fields[2].split()), " ".join(fields[3].split()))] = None
    if not pairs:
        raise UserError("the Tatoeba Challenge eng-hin dev set holds no `eng<TAB>hin<TAB>English<TAB>Hindi` line")
    folder = target_dir / "extra" / "tatoeba-dev-eng-hin"
    return [_write_lines(folder / "tatoeba-dev.en", [english for english, _ in pairs]),
            _write_lines(folder / "tatoeba-dev.hi", [hindi for _, hindi in pairs])]


_TATOEBA_CHALLENGE_DEV = Dataset(
    name="tatoeba-dev-eng-hin",
    description="Tatoeba Challenge eng-hin dev set (5,821 everyday pairs)",
    url="https://github.com/Helsinki-NLP/Tatoeba-Challenge",
    license="Tatoeba sentences CC-BY 2.0 France",
    files=(
        # A fixed commit, but no trusted copy of the file was at hand to take its sha256 from.
        RemoteFile(
            name="tatoeba-challenge-dev-eng-hin.txt",
            urls=(f"https://raw.githubusercontent.com/Helsinki-NLP/Tatoeba-Challenge/{_TATOEBA_DEV_COMMIT}/"
                  "data/dev/eng-hin/dev.txt",),
        ),
    ),
    install=_install_tatoeba_dev,
)

_MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1"
_MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")
_MULTI30K_LANGS = ("en", "de", "fr")
# sha256 of the files at commit a3d2e0d26b56 of multi30k/dataset: raw/*.gz as published, and the
# tok/ files (plain text there) that the dataset's own task1-tokenize.sh made.
_MULTI30K_RAW_SHA256 = {
    "train.en": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.en": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "test_2016_flickr.en": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
}
_MULTI30K_TOK_SHA256 = {
    "train.en": "08925f8e0572bcd5a006702fc5fe20e2d77c6917d4eebd576fc20de6693c2119",
    "train.de": "cb5a23529b65ec2061f1dc446192a9c37382b63cc75f81a0be59d34894b3a505",
    "train.fr": "8fa41bb718412bcb7c5dfa58603842810a01543eae86a51279f9886b901266e1",
    "val.en": "46573ce391ae227f1c72f873392436a20ef18e0a6d518098cfbd70b77c8572ec",
    "val.de": "97232bd273eceb7207f689527386a97e4be2616b18ada47576bdaf96c8ae1f00",
    "val.fr": "b303e301aa21fe7822a846b2b3fb2d5a1121ec807cd5b1d006fb7b2b5507168a",
    "test_2016_flickr.en": "5b7f32627cf99eced828311b955dae9800bb52bc8b91cf8b6526829e605b29d2",
    "test_2016_flickr.de": "c6a33d39d48f9f510de147651316cd9d918e09ad0219df734a2f16b6baccacc4",
    "test_2016_flickr.fr": "1463bd5960f9bfe098ec3cd752d3df0c49c84dc646fb518964a29232658cd836",
}


def _multi30k_tok_name(part: str) -> str:
    """'val.de' -> 'val.lc.norm.tok.de', the dataset's own name for the tokenized form."""
    split, lang = part.rsplit(".", 1)
    return f"{split}.lc.norm.tok.{lang}"


def _install_multi30k(downloaded: dict[str, Path], target_dir: Path) -> list[Path]:
    """raw/ gunzipped from the .gz files; tok/ copied (both forms are published, so neither is rebuilt)."""
    installed = []
    for part in _MULTI30K_RAW_SHA256:
        dest = target_dir / "multi30k" / "raw" / part
        with gzip.open(downloaded[f"{part}.gz"], "rb") as original:
            atomic_write(dest, lambda out: shutil.copyfileobj(original, out))
        installed.append(dest)
        tok = _multi30k_tok_name(part)
        dest = target_dir / "multi30k" / "tok" / tok
        _copy_file(downloaded[tok], dest)
        installed.append(dest)
    return installed


_MULTI30K = Dataset(
    name="multi30k",
    description="Multi30k task 1 English, German and French captions: train (29,000), val (1,014) and "
                "test_2016_flickr (1,000), cased (raw/) and lowercased Moses-tokenized (tok/)",
    url="https://github.com/multi30k/dataset",
    license="Multi30K (from Flickr30K): non-commercial research and educational use; cite Elliott et al. 2016",
    files=tuple(
        RemoteFile(name=f"{part}.gz", urls=(f"{_MULTI30K_URL}/raw/{part}.gz",), sha256=digest)
        for part, digest in _MULTI30K_RAW_SHA256.items()
    ) + tuple(
        RemoteFile(name=_multi30k_tok_name(part), urls=(f"{_MULTI30K_URL}/tok/{_multi30k_tok_name(part)}",),
                   sha256=digest)
        for part, digest in _MULTI30K_TOK_SHA256.items()
    ),
    install=_install_multi30k,
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
        _TATOEBA_CHALLENGE_DEV,
        _MULTI30K,
        _combine("en-hi", "The default bundle: IITB train/dev/test and Tatoeba", (_IITB, _TATOEBA)),
        _combine("en-hi-everyday", "The default bundle, the Tatoeba Challenge eng-hin test and dev sets (more "
                 "everyday pairs to train on) and FLORES-200",
                 (_IITB, _TATOEBA, _TATOEBA_CHALLENGE, _TATOEBA_CHALLENGE_DEV, _FLORES200)),
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
