"""Two runs that need the same not-yet-built data cache at the same moment both train, and neither reads a
half-built entry."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, write_reversal_task

# Each child imports everything first, says it is ready, then waits for the go file, so both build the cache
# at the same moment. With same_pid both report pid 1, as two containers sharing a cache volume may.
CHILD = """
import os, sys, time
from pathlib import Path
data, run_dir, cache, go, name, same_pid = sys.argv[1:]
from seq2seq.config import load_config
from seq2seq.data.batching import stored_batch
from seq2seq.training import train
if same_pid == "1":
    os.getpid = lambda: 1
config = load_config("configs/tiny.yaml", [f"run_dir={run_dir}", f"data.cache_dir={cache}", f"name={name}",
                     "training.max_steps=2", "training.valid_every=2", "training.valid_limit=5", "data.test=[]",
                     "training.threads=1"], data)
Path(go + "." + name).touch()  # ready
while not Path(go).exists():
    time.sleep(0.005)
trainer = train(config)
corpus = trainer.training_data.corpus
stored_batch(corpus, list(range(len(corpus))))  # every row of the memory-mapped cache is readable
print(trainer.progress.step, len(corpus), trainer.training_data.report.kept)
"""


@pytest.mark.slow
@pytest.mark.parametrize("same_pid", [False, True], ids=["two-runs", "two-runs-one-pid"])
def test_two_runs_building_one_cache_at_once_both_train(tmp_path: Path, same_pid: bool) -> None:
    data = write_reversal_task(tmp_path / "data", train=4000, dev=20, test=20)
    cache, go = tmp_path / "cache", tmp_path / "go"
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(tmp_path / "runs"), str(cache), str(go),
                                  name, "1" if same_pid else "0"], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
                for name in ("first", "second")]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all((tmp_path / f"go.{name}").exists() for name in ("first", "second")):
        time.sleep(0.05)
    go.touch()
    results = [child.communicate(timeout=300) for child in children]
    for child, (out, err) in zip(children, results):
        assert child.returncode == 0, err[-3000:]
    steps, pairs, kept = zip(*(map(int, out.strip().splitlines()[-1].split()) for out, _ in results))
    assert steps == (2, 2) and pairs[0] == pairs[1] == kept[0] == kept[1] > 0
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == ["corpus", "vocab"], "a staging folder was left"
