"""torchrun with two CPU processes (gloo) trains the same weights as one process on the combined batches."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, tiny_config
from seq2seq.checkpoint import load_checkpoint
from seq2seq.data.batching import make_batches, stored_batch
from seq2seq.distributed import World
from seq2seq.startup import prepare_run
from seq2seq.training import Trainer

STEPS = 4
SETTINGS = (f"training.max_steps={STEPS}", f"training.valid_every={STEPS}", "training.valid_limit=4",
            "model.dropout=0.0", "training.batch_size=24", "data.test=[]", "training.threads=1")


def test_shards_are_disjoint_and_equal_in_size() -> None:
    batches = [[i] for i in range(11)]
    shards = [World(rank, 3).shard(batches) for rank in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    flat = [i for shard in shards for batch in shard for i in batch]
    assert len(flat) == len(set(flat)) == 9


@pytest.mark.slow
@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_two_processes_match_one_process_on_the_combined_batches(reversal_data: Path, tmp_path: Path,
                                                                 family: str) -> None:
    name = "tiny" if family == "rnn" else "tiny-transformer"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "train.py", "--config", f"configs/{name}.yaml", "--data-dir", str(reversal_data),
               "--set", f"run_dir={tmp_path / 'ddp'}"]
    for setting in SETTINGS:
        command += ["--set", setting]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ddp_run = tmp_path / "ddp" / name
    assert sorted(p.name for p in ddp_run.glob("step-*.pt")) == [f"step-{STEPS:08d}.pt"]  # rank 0 alone writes
    distributed = load_checkpoint(ddp_run / f"step-{STEPS:08d}.pt")["model"]

    single_run = tmp_path / "single" / name
    single_run.mkdir(parents=True)
    for vocab in ("src.spm.model", "tgt.spm.model"):
        shutil.copy(ddp_run / vocab, single_run / vocab)
    trainer = Trainer(prepare_run(tiny_config(reversal_data, tmp_path / "single", *SETTINGS, family=family)))
    data, t = trainer.train_data, trainer.config.training
    batches = make_batches(data.src_lengths, data.tgt_lengths, t.batch_size, t.batch_unit, trainer.config.seed, 0)
    for step in range(STEPS):  # rank r takes batch 2 * step + r
        trainer._train_step(stored_batch(data, batches[2 * step] + batches[2 * step + 1]))
    for name, weight in trainer.model.state_dict().items():
        assert torch.allclose(weight, distributed[name], atol=1e-5), name
