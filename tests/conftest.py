"""Shared fixtures: a generated word-reversal task and a small model trained on it once per session."""

from __future__ import annotations

import importlib.util
import logging
import random
import sys
from collections.abc import Iterator
from types import ModuleType
from pathlib import Path

import pytest
import torch

from seq2seq.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def write_reversal_task(folder: Path, train: int = 4000, dev: int = 100, test: int = 100, seed: int = 0) -> Path:
    """Source: 3-9 random words; target: the same words in reverse order."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("dev", dev), ("test", test)):
        sources, targets = [], []
        for _ in range(count):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 9))]
            sources.append(" ".join(words))
            targets.append(" ".join(reversed(words)))
        (folder / f"{split}.src").write_text("\n".join(sources) + "\n", encoding="utf-8")
        (folder / f"{split}.tgt").write_text("\n".join(targets) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    """The test models are tiny and latency-bound: a second intra-op thread only adds hand-offs."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def seq2seq_log_reaches_caplog() -> None:
    """A Trainer's setup_logging stops the package logger propagating; each test starts with it propagating."""
    package_log = logging.getLogger("seq2seq")
    package_log.propagate = True
    package_log.setLevel(logging.INFO)


@pytest.fixture(scope="session")
def reversal_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reversal_task(tmp_path_factory.mktemp("reversal"))


def tiny_config(data_dir: Path, run_dir: Path, *overrides: str, family: str = "rnn") -> Config:
    """configs/tiny.yaml (or tiny-transformer.yaml) pointed at generated data and a temporary run folder."""
    name = "tiny.yaml" if family == "rnn" else "tiny-transformer.yaml"
    return load_config(ROOT / "configs" / name,
                       [f"run_dir={run_dir}", f"data.cache_dir={run_dir / 'cache'}", *overrides], str(data_dir))


@pytest.fixture(scope="session")
def tiny_checkpoint(reversal_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained GRU+Bahdanau model: good enough to emit real, varied outputs."""
    from seq2seq.startup import prepare_run
    from seq2seq.training import Trainer

    run_dir = tmp_path_factory.mktemp("runs")
    config = tiny_config(reversal_data, run_dir, "training.max_steps=150", "training.valid_every=150",
                         "data.test=[]")
    Trainer(prepare_run(config)).train()
    return run_dir / "tiny" / "best.pt"


@pytest.fixture(scope="session")
def tiny_transformer_checkpoint(reversal_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Transformer counterpart of tiny_checkpoint, trained as briefly."""
    from seq2seq.startup import prepare_run
    from seq2seq.training import Trainer

    run_dir = tmp_path_factory.mktemp("runs")
    config = tiny_config(reversal_data, run_dir, "training.max_steps=150", "training.valid_every=150",
                         "data.test=[]", family="transformer")
    Trainer(prepare_run(config)).train()
    return run_dir / "tiny-transformer" / "best.pt"


def bench_script(name: str) -> Iterator[ModuleType]:
    """bench/ holds scripts, not a package: load bench/<name>.py from its file, registered (for dataclasses)
    while a test module uses it."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def cpu_has_int8_dot_products() -> bool:
    """AVX512-VNNI, AVX-VNNI or AMX: int8 products summed in 32 bits.

    Without them, the int8 GEMM CTranslate2 picks on non-Intel x86 (oneDNN, u8s8) adds pairs of
    products in saturating 16-bit lanes, so int8 exports drift further from float32 there.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def other_vocabulary_checkpoint(checkpoint: Path, path: Path) -> Path:
    """A model of the same config whose source vocabulary was trained on other text (ensembles refuse it)."""
    from seq2seq.checkpoint import model_payload, read_model, save_checkpoint
    from seq2seq.model.build import build_model
    from seq2seq.vocab import train_vocab

    config, _, _, tgt_vocab = read_model(checkpoint)
    texts = [" ".join(random.Random(i).sample(WORDS, 5)).upper() for i in range(300)]
    src_vocab = train_vocab(texts, config.vocab.src_size, config.vocab, 0)
    model = build_model(config.model, len(src_vocab), len(tgt_vocab))
    save_checkpoint(path, model_payload(config, src_vocab, tgt_vocab, model))
    return path
