"""Float against int8 decoding of one checkpoint: sentences/s, peak RSS, chrF, BLEU, TER and length ratio.

    python bench/quantize.py --checkpoint runs/en-hi/best.pt --data ../shared/data --threads 2
    python bench/quantize.py --checkpoint runs/en-hi/best.pt --ctranslate2 --limit 500

Decodes the IITB test set (or its first --limit lines) greedily and with beam 5 with the float
model and with `translate.py --quantize`'s int8 model; with --ctranslate2 (a Transformer
checkpoint) also with its CTranslate2 export in int8 (`python -m seq2seq export`). Each engine
runs in its own process, one after the other, so each peak RSS is that engine's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import torch

from seq2seq.evaluation import score
from seq2seq.translator import Translator

ROOT = Path(__file__).resolve().parents[1]


def translator_for(engine: str, checkpoint: str, threads: int, export_dir: Path):
    if engine == "ctranslate2 int8":
        from seq2seq.ctranslate2_engine import CTranslate2Translator
        from seq2seq.export import export_ctranslate2

        export_ctranslate2(Path(checkpoint), export_dir, "int8")
        return CTranslate2Translator.from_directory(export_dir, "cpu", threads)
    return Translator.from_checkpoint(checkpoint, device="cpu", quantize=engine == "pytorch int8")


def run_engine(engine: str, args: argparse.Namespace, sources: list[str], references: list[str],
               export_dir: Path, rows: multiprocessing.Queue) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    translator = translator_for(engine, args.checkpoint, args.threads, export_dir)
    for method in ("greedy", "beam"):
        decoding = dataclasses.replace(translator.decoding, method=method, beam_size=5, batch_size=args.batch_size)
        start = time.perf_counter()
        hypotheses = [nbest[0].text for nbest in translator.translate(sources, decoding=decoding)]
        seconds = time.perf_counter() - start
        scores = score(hypotheses, references)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.put(f"| {engine} | {method if method == 'greedy' else 'beam 5'} | {len(sources) / seconds:.1f} | "
                 f"{peak_mb:,.0f} | {scores.chrf:.2f} | {scores.bleu:.2f} | {scores.ter:.2f} | "
                 f"{scores.length_ratio:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "runs" / "en-hi" / "best.pt"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding en-hi/")
    parser.add_argument("--limit", type=int, default=0, help="decode only the first N sentences (0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ctranslate2", action="store_true", help="also decode with a CTranslate2 int8 export")
    args = parser.parse_args()
    sources = (args.data / "en-hi" / "test.en").read_text(encoding="utf-8").splitlines()[: args.limit or None]
    references = (args.data / "en-hi" / "test.hi").read_text(encoding="utf-8").splitlines()[: len(sources)]
    print(f"{len(sources):,} IITB test sentences, {args.threads or torch.get_num_threads()} threads, "
          f"batch {args.batch_size}, torch {torch.__version__}\n")
    print("| engine | search | sentences/s | peak RSS, MB | chrF | BLEU | TER | length ratio |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|")
    engines = ["pytorch float", "pytorch int8"] + (["ctranslate2 int8"] if args.ctranslate2 else [])
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as scratch:
        for engine in engines:
            rows = context.Queue()
            process = context.Process(target=run_engine, args=(engine, args, sources, references,
                                                               Path(scratch) / "ct2", rows))
            process.start()
            process.join()
            if process.exitcode != 0:
                raise SystemExit(f"{engine}: the decoding process failed (exit {process.exitcode})")
            for _ in range(2):
                print(rows.get(), flush=True)


if __name__ == "__main__":
    main()
