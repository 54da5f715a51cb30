"""Multi30k side by side: seq2seq's configs/multi30k-<pair>.yaml and fairseq's Transformer-tiny, one table.

    python bench/multi30k.py --budget 60m --pair en-de --threads 2 --out bench/results/multi30k-en-de.json

seq2seq trains first (train.py with training.max_time = the budget), then fairseq runs the command of
Wu et al. (ACL 2021) for the same budget (bench/peers/fairseq_peer.py; its env comes from
`bash bench/peers/setup.sh fairseq`). Never both at once: they would share the two cores. Both are then
decoded with beam 5 on val and test_2016_flickr and scored here by one function: sacrebleu BLEU with
tokenize none (the text is Moses-tokenized and lowercased already), chrF, and the length ratio.
Peak RSS is each training process's own (wait4's ru_maxrss); tokens/s is the median of each system's
own per-window target tokens per second, start-up and validation left out.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "peers"))  # fairseq_peer.py and run_peer.py are scripts

import fairseq_peer  # noqa: E402
from run_peer import PeerError, run_measured  # noqa: E402
from seq2seq.config import load_config, parse_duration  # noqa: E402

SYSTEMS = ("seq2seq", "fairseq")
MISSING = "—"
# (row label, result key, digits)
ROWS = (("tokens/s (target, median window)", "tok_per_s", 0), ("updates", "updates", 0),
        ("peak RSS of training (MB)", "peak_rss_mb", 0),
        ("val BLEU", "val_bleu", 2), ("val chrF", "val_chrf", 2), ("val length ratio", "val_len_ratio", 3),
        ("test_2016_flickr BLEU", "test_bleu", 2), ("test_2016_flickr chrF", "test_chrf", 2),
        ("test_2016_flickr length ratio", "test_len_ratio", 3))
WINDOW = re.compile(r"step (\d+)  loss [\d.]+  lr \S+  (\d+) tokens/s")
STOPPED = re.compile(r"after (\d+) steps, (\d+) s; checkpoint")


def cell(value: object, digits: int) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f}" if digits == 0 else f"{value:.{digits}f}"


def table(results: dict[str, dict]) -> str:
    """One Markdown table, a column per system; a failed system shows its error under the table."""
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, key, digits in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(results[n].get(key), digits) for n in names) + " |")
    lines += [f"{name}: {result['error']}" for name, result in results.items() if "error" in result]
    return "\n".join(lines)


def seq2seq_log_figures(log_text: str) -> dict:
    """Updates and the median of the per-window tokens/s lines from a seq2seq train.log."""
    rates = [int(rate) for _, rate in WINDOW.findall(log_text)]
    stopped = STOPPED.findall(log_text)
    return {"updates": int(stopped[-1][0]) if stopped else None,
            "tok_per_s": statistics.median(rates) if rates else None}


def seq2seq_command(config: Path, data: Path, name: str, budget: str, threads: int) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--config", str(config), "--data-dir", str(data),
            "--set", f"name={name}", "--set", f"training.max_time={budget}", "--set", f"training.threads={threads}"]


def decode_seq2seq(config_path: Path, data: Path, name: str, threads: int, tok_dir: Path, tgt: str) -> dict:
    """Beam-decode seq2seq's best.pt on val and test_2016_flickr and score it as fairseq is scored."""
    import torch

    from seq2seq.data.corpus import load_eval_sets
    from seq2seq.translator import Translator

    torch.set_num_threads(threads)
    config = load_config(config_path, [f"name={name}"], str(data))
    translator = Translator.from_checkpoint(config.run_path / "best.pt", device="cpu")
    translator.decoding = config.decoding
    sets = load_eval_sets(config.data, config.data_seed)
    scores = {}
    for label, corpus, split in (("val", sets.dev, "valid"), ("test", sets.tests[0], "test")):
        hypotheses = [nbest[0].text for nbest in translator.translate(corpus.src, progress=False)]
        references = fairseq_peer.read_lines(tok_dir / f"{fairseq_peer.SPLITS[split]}.{fairseq_peer.SUFFIX}.{tgt}")
        scores.update({f"{label}_{key}": value for key, value in fairseq_peer.score(hypotheses, references).items()})
    return scores


def run_seq2seq(args: argparse.Namespace, work: Path) -> dict:
    name = f"bench-multi30k-{args.pair}"
    work.mkdir(parents=True, exist_ok=True)
    trained = run_measured(seq2seq_command(args.config, args.data, name, args.budget, args.threads),
                           work / "seq2seq-train.stdout.log", tag="multi30k")
    if trained.rc != 0:
        return {"error": f"train.py failed (exit status {trained.rc}); see {work / 'seq2seq-train.stdout.log'}"}
    run_path = load_config(args.config, [f"name={name}"], str(args.data)).run_path
    result = {"system": "seq2seq", "peak_rss_mb": round(trained.peak_rss_mb, 1),
              "train_wall_s": round(trained.wall_s, 1),
              **seq2seq_log_figures((run_path / "train.log").read_text(encoding="utf-8"))}
    try:
        return result | decode_seq2seq(args.config, args.data, name, args.threads, args.tok_dir,
                                       args.pair.split("-")[1])
    except PeerError as error:
        return result | {"error": str(error)}


def run_fairseq(args: argparse.Namespace, work: Path) -> dict:
    src, tgt = args.pair.split("-")
    settings = fairseq_peer.FairseqSettings(budget=parse_duration(args.budget), data=args.tok_dir, work=work,
                                            src=src, tgt=tgt, threads=args.threads)
    try:
        return fairseq_peer.run(settings)
    except PeerError as error:
        return {"error": str(error)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="60m", help="training time of each system, e.g. 60m, 90s (default 60m)")
    ap.add_argument("--pair", default="en-de", choices=("en-de", "en-fr"))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="the data root holding multi30k/tok/ (default ../shared/data)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of each system (default 2)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="which to run, in order (default seq2seq,fairseq)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "peers" / "work-multi30k")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    args.config = ROOT / "configs" / f"multi30k-{args.pair}.yaml"
    args.tok_dir = args.data / "multi30k" / "tok"
    args.systems = [name for name in args.systems.split(",") if name]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        ap.error(f"--systems: unknown {', '.join(sorted(unknown))} (expected some of {', '.join(SYSTEMS)})")
    if "seq2seq" in args.systems and not args.config.is_file():
        ap.error(f"--pair {args.pair}: no {args.config.relative_to(ROOT)}; write that config or run --systems fairseq")
    try:
        parse_duration(args.budget)
    except ValueError as error:
        ap.error(f"--budget: {error}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runners = {"seq2seq": run_seq2seq, "fairseq": run_fairseq}
    results = {name: runners[name](args, args.work) for name in args.systems}
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{table(results)}\n\n{when}; {platform.processor() or platform.machine()}; {args.threads} threads; "
          f"Multi30k {args.pair}, {args.budget} of training each, beam 5; BLEU tokenize none")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"date": when, "pair": args.pair, "budget": args.budget,
                                        "threads": args.threads, "results": results}, indent=2) + "\n")
    return 1 if any("error" in result for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
