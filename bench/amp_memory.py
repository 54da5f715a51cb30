"""Resident memory of training updates on random data, float32 against bf16 autocast on a CPU.

Runs the Trainer's update (autocast forward, sequence_loss, backward, clipping, fused Adam) of a
config's model on random batches of varied shape, as token buckets make them, and prints the
RSS after every tenth update, and the median seconds per update after the first five (on a machine
with nothing else running: on a shared one the timings mean nothing).

    python bench/amp_memory.py --precision float32
    python bench/amp_memory.py --precision bf16
    python bench/amp_memory.py --precision bf16 --unbounded   # oneDNN's default cache, no malloc_trim
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "en-hi.yaml"))
    parser.add_argument("--precision", choices=["float32", "bf16"], default="bf16")
    parser.add_argument("--unbounded", action="store_true",
                        help="leave oneDNN's primitive cache at its default and never trim the heap")
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=300, help="target tokens per batch")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from seq2seq.config import load_config
    from seq2seq.loss import sequence_loss
    from seq2seq.model.build import build_model
    from seq2seq.runtime import autocast, bound_onednn_cache, release_freed_memory

    bf16 = args.precision == "bf16"
    if bf16 and not args.unbounded:
        bound_onednn_cache()  # as the Trainer does, before anything computes
    torch.set_num_threads(args.threads)
    config = load_config(args.config, [], None)
    torch.manual_seed(0)
    model = build_model(config.model, args.vocab, args.vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    rng = torch.Generator().manual_seed(1)
    device = torch.device("cpu")
    marks, seconds = [], []
    for update in range(1, args.updates + 1):
        began = time.perf_counter()
        length = int(torch.randint(5, 80, (1,), generator=rng))
        rows = max(1, args.tokens // length)
        src, tgt_in, tgt_out = (torch.randint(4, args.vocab, (rows, length), generator=rng) for _ in range(3))
        with autocast(device, torch.bfloat16 if bf16 else None):
            logits, _ = model(src, torch.full((rows,), length), tgt_in, 1.0)
        loss, _ = sequence_loss(logits, tgt_out, 0.1, overwrite_logits=True)
        del logits
        optimizer.zero_grad(set_to_none=True)
        (loss / tgt_out.numel()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if bf16 and not args.unbounded:
            release_freed_memory()
        seconds.append(time.perf_counter() - began)
        if update % 10 == 0:
            marks.append(f"{resident_mib():.0f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    label = args.precision + (" unbounded" if args.unbounded else "")
    print(f"{label}: RSS MiB after every 10 updates: {' '.join(marks)}; peak {peak:.0f} MiB; "
          f"median {statistics.median(seconds[5:] or seconds):.3f} s/update")


if __name__ == "__main__":
    main()
