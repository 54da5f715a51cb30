"""Big-corpus bench: peak memory of data preparation and the start-up time of a cached run.

Generates a corpus of `--pairs` English-Hindi pairs (default 2,000,000) from a seed corpus,
then runs `train.py` for one update twice in fresh processes: first with an empty cache
(cleaning, SentencePiece on a sample, encoding) and then again with the cache filled. For
each it prints the wall time until the first update and the process's peak RSS.

    python bench/scale.py --seed-data ../shared/data/en-hi --pairs 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FIRST_UPDATE = "first update"


def generate(seed_dir: Path, out_dir: Path, pairs: int, seed: int) -> None:
    """Pairs built from random seed pairs (sometimes two joined), each made unique by a trailing number."""
    src_lines = (seed_dir / "train.en").read_text(encoding="utf-8").splitlines()
    tgt_lines = (seed_dir / "train.hi").read_text(encoding="utf-8").splitlines()
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "train.en").open("w", encoding="utf-8") as src, (out_dir / "train.hi").open(
        "w", encoding="utf-8"
    ) as tgt:
        for number in range(pairs):
            picks = [rng.randrange(len(src_lines)) for _ in range(2 if rng.random() < 0.3 else 1)]
            src.write(" ".join(src_lines[i] for i in picks) + f" {number}\n")
            tgt.write(" ".join(tgt_lines[i] for i in picks) + f" {number}\n")
    for split in ("dev", "test"):
        for lang in ("en", "hi"):
            shutil.copyfile(seed_dir / f"{split}.{lang}", out_dir / f"{split}.{lang}")


def write_config(work: Path) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "en-hi.yaml").read_text(encoding="utf-8"))
    config["data"].update(
        root=str(work / "data"),
        download="",
        cache_dir=str(work / "cache"),
        train=[{"name": "generated", "src": "train.en", "tgt": "train.hi"}],
        dev={"name": "dev", "src": "dev.en", "tgt": "dev.hi"},
        test=[{"name": "test", "src": "test.en", "tgt": "test.hi"}],
    )
    config["run_dir"] = str(work / "runs")
    config["training"].update(max_steps=1, valid_limit=8, max_time="")
    config["decoding"].update(max_len=5)  # the one-update model's validation and test decoding stay instant
    path = work / "scale.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def timed_run(config: Path, name: str) -> dict[str, float]:
    """One `train.py` process: seconds until its first update, total seconds, peak RSS in MB."""
    command = [sys.executable, str(ROOT / "train.py"), "--config", str(config), "--set", f"name={name}"]
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    first_update = None
    log = []
    for line in process.stdout:
        log.append(line)
        if first_update is None and FIRST_UPDATE in line:
            first_update = time.monotonic() - start
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 or first_update is None:
        sys.exit(f"{name}: train.py failed ({process.returncode}):\n{''.join(log[-20:])}")
    return {"first_update_s": round(first_update, 1), "total_s": round(time.monotonic() - start, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-data", type=Path, default=ROOT.parent / "shared" / "data" / "en-hi",
                        help="folder with train/dev/test .en/.hi to build the corpus from")
    parser.add_argument("--pairs", type=int, default=2_000_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "scale",
                        help="folder for the corpus, cache and runs (emptied first)")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus and cache afterwards")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    started = time.monotonic()
    generate(args.seed_data, args.work / "data", args.pairs, seed=1)
    size_mb = sum(p.stat().st_size for p in (args.work / "data").glob("train.*")) / 2**20
    print(f"generated {args.pairs:,} pairs ({size_mb:,.0f} MB) in {time.monotonic() - started:.0f} s", flush=True)
    config = write_config(args.work)
    results = {"pairs": args.pairs, "corpus_mb": round(size_mb), "cold": timed_run(config, "cold"),
               "cached": timed_run(config, "cached")}
    cache_mb = sum(p.stat().st_size for p in (args.work / "cache").rglob("*") if p.is_file()) / 2**20
    results["cache_mb"] = round(cache_mb)
    print(json.dumps(results))
    print(f"| run | first update (s) | peak RSS (MB) |\n|---|---:|---:|\n"
          f"| empty cache (clean + vocabulary + encode) | {results['cold']['first_update_s']} | "
          f"{results['cold']['peak_rss_mb']:,} |\n"
          f"| cached | {results['cached']['first_update_s']} | {results['cached']['peak_rss_mb']:,} |\n"
          f"cache on disk: {cache_mb:,.0f} MB")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
