"""seq2seq's speed, memory and quality figures on the matched benchmark model.

    python bench/speed.py --data ../shared/data --checkpoint runs/en-hi/best.pt

Each phase runs in its own process so its peak RSS is its own. Prints one JSON line per
phase and a table; `--json FILE` also writes them (bench/compare.py reads that file).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The matched model of the benchmark (issue #5): every system trains this shape
MATCHED = ("model.rnn=gru", "model.attention=bahdanau", "model.emb_size=256", "model.encoder_hidden=256",
           "model.decoder_hidden=256", "model.bidirectional=true", "model.dropout=0.1", "training.lr=0.001",
           "training.batch_unit=sentences", "training.batch_size=64")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sgemm_gflops(size: int = 2048, repeats: int = 20) -> float:
    """Measured fp32 matmul peak on the threads torch uses here."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def phase_train(args: argparse.Namespace) -> dict:
    """Target tokens/s over `--steps` updates after a warm-up, and FLOPs per target token."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from seq2seq.config import load_config
    from seq2seq.data.batching import collate, make_batches
    from seq2seq.training import Trainer

    config = load_config(ROOT / "configs" / "en-hi.yaml", [f"run_dir={args.work}/train", *MATCHED, "data.test=[]"],
                         args.data)
    trainer = Trainer(config)
    t = config.training
    batches = make_batches(trainer.train_data.src_lengths, trainer.train_data.tgt_lengths, t.batch_size,
                           t.batch_unit, config.seed, 0)
    for indices in batches[:args.warmup]:
        trainer._train_step(collate(trainer.train_data, indices))
    with FlopCounterMode(display=False) as counter:
        _, flop_tokens = trainer._train_step(collate(trainer.train_data, batches[args.warmup]))
    tokens = 0
    start = time.perf_counter()
    for indices in batches[args.warmup + 1: args.warmup + 1 + args.steps]:
        tokens += trainer._train_step(collate(trainer.train_data, indices))[1]
    seconds = time.perf_counter() - start
    flops_per_token = counter.get_total_flops() / flop_tokens
    rate = tokens / seconds
    return {"phase": "train", "target_tokens_per_s": round(rate), "steps": args.steps,
            "mflop_per_target_token": round(flops_per_token / 1e6, 1),
            "achieved_gflops": round(rate * flops_per_token / 1e9, 1), "threads": torch.get_num_threads(),
            "peak_rss_mb": round(peak_rss_mb())}


def phase_decode(args: argparse.Namespace) -> dict:
    """Sentences/s for greedy and beam 5 on the IITB test set, batch 64, with BLEU and chrF."""
    from seq2seq.evaluation import score
    from seq2seq.translator import Translator

    sources = (Path(args.data) / "en-hi" / "test.en").read_text(encoding="utf-8").splitlines()[: args.limit or None]
    references = (Path(args.data) / "en-hi" / "test.hi").read_text(encoding="utf-8").splitlines()[: len(sources)]
    method = {"greedy": {"method": "greedy"}, "beam5": {"method": "beam", "beam_size": 5}}[args.method]
    translator = Translator.from_checkpoint(args.checkpoint, device="cpu", batch_size=64, **method)
    translator.translate(sources[:64])  # warm-up
    start = time.perf_counter()
    hypotheses = [nbest[0].text for nbest in translator.translate(sources)]
    seconds = time.perf_counter() - start
    scores = score(hypotheses, references)
    return {"phase": f"decode-{args.method}", "sentences_per_s": round(len(sources) / seconds, 1),
            "sentences": len(sources), "length_ratio": round(scores.length_ratio, 3), "bleu": round(scores.bleu, 2),
            "chrf": round(scores.chrf, 2), "peak_rss_mb": round(peak_rss_mb())}


def phase_cold_start(args: argparse.Namespace) -> dict:
    """Wall time of `translate.py` from launch to its first output line."""
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "translate.py"), "--checkpoint", args.checkpoint, "--device", "cpu",
                    "Hello, how are you?"], check=True, capture_output=True)
    return {"phase": "cold-start", "seconds": round(time.perf_counter() - start, 2)}


def run_phase(args: argparse.Namespace, phase: str, *extra: str) -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--data", args.data, "--checkpoint", args.checkpoint,
               "--work", args.work, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--limit", str(args.limit), *extra]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding en-hi/")
    parser.add_argument("--checkpoint", default=str(ROOT / "runs" / "en-hi" / "best.pt"), help="model to decode with")
    parser.add_argument("--work", default=str(ROOT / "bench" / "results" / "work"), help="scratch run folder")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed training steps first")
    parser.add_argument("--limit", type=int, default=0, help="decode only the first N test sentences (0 = all)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--phase", choices=["train", "decode", "cold-start"], help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=["greedy", "beam5"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        import shutil

        shutil.rmtree(Path(args.work) / "train", ignore_errors=True)
        phases = {"train": phase_train, "decode": phase_decode, "cold-start": phase_cold_start}
        print(json.dumps(phases[args.phase](args)))
        return
    results = [{"phase": "sgemm", "gflops": round(sgemm_gflops(), 1)}, run_phase(args, "train")]
    if Path(args.checkpoint).is_file():
        results += [run_phase(args, "decode", "--method", "greedy"), run_phase(args, "decode", "--method", "beam5"),
                    run_phase(args, "cold-start")]
    else:
        print(f"no checkpoint at {args.checkpoint}: decoding figures skipped", file=sys.stderr)
    for result in results:
        print(json.dumps(result))
    train = results[1]
    print(f"\ntraining: {train['target_tokens_per_s']:,} target tokens/s, {train['achieved_gflops']} GFLOP/s "
          f"= {100 * train['achieved_gflops'] / results[0]['gflops']:.0f}% of the measured sgemm peak "
          f"({results[0]['gflops']} GFLOP/s), peak RSS {train['peak_rss_mb']} MB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text("\n".join(json.dumps(r) for r in results) + "\n")


if __name__ == "__main__":
    main()
