"""Float against dynamic int8 decoding of one checkpoint: sentences/s, chrF, BLEU and length ratio.

    python bench/quantize.py --checkpoint runs/en-hi/best.pt --data ../shared/data --threads 2

Decodes the IITB test set (or its first --limit lines) greedily and with beam 5, once with the
float model and once with `translate.py --quantize`'s int8 model, in this one process.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from seq2seq.evaluation import score
from seq2seq.translator import Translator

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "runs" / "en-hi" / "best.pt"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding en-hi/")
    parser.add_argument("--limit", type=int, default=0, help="decode only the first N sentences (0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sources = (args.data / "en-hi" / "test.en").read_text(encoding="utf-8").splitlines()[: args.limit or None]
    references = (args.data / "en-hi" / "test.hi").read_text(encoding="utf-8").splitlines()[: len(sources)]
    print(f"{len(sources):,} IITB test sentences, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"torch {torch.__version__}\n")
    print("| weights | search | sentences/s | chrF | BLEU | length ratio |\n|---|---|---:|---:|---:|---:|")
    for quantize in (False, True):
        translator = Translator.from_checkpoint(args.checkpoint, device="cpu", quantize=quantize)
        for method in ("greedy", "beam"):
            translator.decoding = dataclasses.replace(translator.decoding, method=method, beam_size=5,
                                                      batch_size=args.batch_size)
            start = time.perf_counter()
            hypotheses = [nbest[0].text for nbest in translator.translate(sources)]
            seconds = time.perf_counter() - start
            scores = score(hypotheses, references)
            print(f"| {'int8' if quantize else 'float'} | {method if method == 'greedy' else 'beam 5'} | "
                  f"{len(sources) / seconds:.1f} | {scores.chrf:.2f} | {scores.bleu:.2f} | "
                  f"{scores.length_ratio:.3f} |", flush=True)


if __name__ == "__main__":
    main()
