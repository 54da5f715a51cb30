"""The benchmark suite: seq2seq and each installed peer, one after the other, in one table.

    bash bench/peers/setup.sh                                 # once: the peers' environments
    python bench/run.py --out bench/results/suite.json         # 30 minutes of training per system
    python bench/run.py --skip-quality                         # speed and memory only (2-minute budgets)

Every system trains the matched model (emb 256, biGRU encoder 256 per direction, GRU decoder
256, Bahdanau attention, dropout 0.1, Adam 1e-3, ~64-sentence batches) on the same
SentencePiece pieces for the same wall-clock budget, start-up included; then it decodes the
IITB test set (and FLORES-200 dev) greedy and with beam 5, batch 64, at most 200 pieces, no
repeated 4-gram of pieces (every system has the option; seq2seq has it on by default).
seq2seq runs through bench/speed.py and each peer through bench/peers/run_peer.py, each in
its own processes so that peak RSS is its own, never two at once, so they never share the CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "peers"))  # run_peer.py is a script, not a package

from run_peer import PEERS, Settings

# The matched model's ~64-sentence batches; run_peer.py's own JoeyNMT default (1500 tokens) holds ~24.
JOEYNMT_BATCH = ("sentence", "64")
# Barely trained models often decode to the length cap, so a speed-only run decodes fewer sentences by default.
SPEED_LIMIT = 500
# OpenNMT saves nothing on SIGINT, so a checkpoint must land close to the end of the budget; it
# also reports at least as often as it saves, since only reported updates are counted.
OPENNMT_SAVE_EVERY = {"quality": 100, "speed": 20}
MISSING = "—"


@dataclass(frozen=True)
class Row:
    """One figure of the table: its label, its JSON key, and which direction is better."""

    label: str
    key: str
    better: str
    digits: int
    quality: bool = False
    peer_key: str | None = None  # the peers' figure it is set against, when not `key` (int8 rows)


ROWS = (
    Row("training, target tokens/s", "train_tok_per_s", "higher", 0),
    Row("greedy decoding, sentences/s", "greedy_sent_per_s", "higher", 1),
    Row("beam-5 decoding, sentences/s", "beam5_sent_per_s", "higher", 1),
    Row("greedy decoding, sentences/s, seq2seq int8", "int8_greedy_sent_per_s", "higher", 1,
        peer_key="greedy_sent_per_s"),
    Row("beam-5 decoding, sentences/s, seq2seq int8", "int8_beam5_sent_per_s", "higher", 1,
        peer_key="beam5_sent_per_s"),
    Row("training peak RSS, MB", "train_peak_rss_mb", "lower", 0),
    Row("greedy decoding peak RSS, MB", "greedy_peak_rss_mb", "lower", 0),
    Row("beam-5 decoding peak RSS, MB", "beam5_peak_rss_mb", "lower", 0),
    Row("length ratio, greedy (IITB test)", "greedy_len_ratio", "near 1", 3),
    Row("length ratio, beam 5 (IITB test)", "beam5_len_ratio", "near 1", 3),
    Row("BLEU, IITB test, greedy", "greedy_bleu", "higher", 2, quality=True),
    Row("BLEU, IITB test, beam 5", "beam5_bleu", "higher", 2, quality=True),
    Row("chrF, IITB test, greedy", "greedy_chrf", "higher", 2, quality=True),
    Row("chrF, IITB test, beam 5", "beam5_chrf", "higher", 2, quality=True),
    Row("chrF, IITB test, greedy, seq2seq int8", "int8_greedy_chrf", "higher", 2, quality=True,
        peer_key="greedy_chrf"),
    Row("chrF, IITB test, beam 5, seq2seq int8", "int8_beam5_chrf", "higher", 2, quality=True,
        peer_key="beam5_chrf"),
    Row("BLEU, FLORES-200 dev, greedy", "flores_greedy_bleu", "higher", 2, quality=True),
    Row("BLEU, FLORES-200 dev, beam 5", "flores_beam5_bleu", "higher", 2, quality=True),
    Row("chrF, FLORES-200 dev, greedy", "flores_greedy_chrf", "higher", 2, quality=True),
    Row("chrF, FLORES-200 dev, beam 5", "flores_beam5_chrf", "higher", 2, quality=True),
    Row("parameters", "params", "", 0),
    Row("training updates in the budget", "train_steps", "", 0),
    Row("target tokens per update", "train_tgt_tokens_per_step", "", 0),
)


# ------------------------------------------------------------------ the table (pure functions)
def number(value: object, digits: int) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return MISSING
    return f"{value:,.{digits}f}"


def ratio(ours: object, theirs: object) -> str:
    """seq2seq's figure over a peer's, or a dash where either is missing or the peer's is zero."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ours, theirs))
    if not numbers or theirs == 0:
        return MISSING
    return f"{ours / theirs:.2f}×"


def column_name(name: str, result: dict) -> str:
    return f"{name} {result['version']}" if result.get("version") else name


def markdown_table(results: dict[str, dict], quality: bool) -> str:
    """Rows are figures; columns are each system, then seq2seq / peer for every peer.

    `results` maps a system to its JSON line (bench/speed.py or run_peer.py); seq2seq comes
    first. A system that failed or was skipped has no figures, so its cells show a dash.
    """
    names = list(results)
    peers = names[1:]
    header = ["figure", "better"] + [column_name(n, results[n]) for n in names] + [f"seq2seq / {p}" for p in peers]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for row in ROWS:
        if row.quality and not quality:
            continue
        values = [results[n].get(row.key if n == names[0] else row.peer_key or row.key) for n in names]
        cells = [row.label, row.better] + [number(v, row.digits) for v in values]
        cells += [ratio(values[0], value) for value in values[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def repeats_clause(n: int) -> str:
    """How the decoding of every system treated repeated n-grams, for the footer."""
    return f", no {n}-gram of pieces twice in one output" if n else ", repeated n-grams allowed"


def footer(results: dict[str, dict], machine: dict, quality: bool) -> list[str]:
    """What the table cannot say: seq2seq's share of the matmul peak, the machine, the settings, failures."""
    lines = []
    ours = results.get("seq2seq", {})
    if ours.get("achieved_gflops") is not None and ours.get("sgemm_gflops"):
        lines.append(
            f"seq2seq training: {ours['achieved_gflops']} GFLOP/s achieved ({number(ours['train_tok_per_s'], 0)} "
            f"target tokens/s × {ours['mflop_per_target_token']} MFLOP per token) = "
            f"{100 * ours['achieved_gflops'] / ours['sgemm_gflops']:.0f}% of the measured fp32 torch.mm peak "
            f"({ours['sgemm_gflops']} GFLOP/s, measured with the same thread count, {ours['threads']}).")
    sets = f"{number(ours.get('test_sents'), 0)} IITB test sentences"
    if quality:
        sets += f", {number(ours.get('flores_sents'), 0)} FLORES-200 dev sentences"
    lines.append(
        f"{machine['date']}, {machine['cpu']}, threads: {machine['threads']}, torch {machine['torch']}; "
        f"{machine['budget_s']:.0f} s of training per system (start-up included); decoding {sets}, "
        f"batch 64, at most 200 pieces{repeats_clause(ours.get('settings', {}).get('no_repeat_ngram', 0))}.")
    if not quality:
        lines.append("Speed-only run: the models are barely trained, so decoding speeds compare like with like "
                     "only where the length ratios are close.")
    lines += [f"{name}: {result.get('error') or result['skipped']}" for name, result in results.items()
              if "error" in result or "skipped" in result]
    return lines


# --------------------------------------------------------------------------------- running
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_system(name: str, cmd: list[str]) -> dict:
    """Run one system's script, echoing its progress; its last stdout line is its JSON result."""
    print(f"\n[run] {name}: {' '.join(cmd)}", flush=True)
    last = ""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        for line in proc.stdout:
            if line.startswith("{"):
                last = line
            else:
                print(line, end="", flush=True)
    if proc.returncode != 0 or not last:
        return {"error": f"failed (exit status {proc.returncode}); see the log lines above"}
    return json.loads(last)


def ensure_pieces(data: Path, work: Path) -> bool:
    """Every system reads prepare_data.py's pieces; make them once on a fresh machine (False if that failed)."""
    if (work / "manifest.json").is_file():
        return True
    cmd = [sys.executable, str(ROOT / "bench" / "peers" / "prepare_data.py"), "--data", str(data), "--out", str(work)]
    print(f"[run] no {work / 'manifest.json'}: preparing the shared pieces", flush=True)
    return subprocess.run(cmd, check=False).returncode == 0


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command of every system, seq2seq first."""
    mode = "speed" if args.skip_quality else "quality"
    shared = ["--budget", str(args.speed_budget if args.skip_quality else args.budget), "--work", str(args.work)]
    if args.limit:
        shared += ["--limit", str(args.limit)]
    if args.threads:
        shared += ["--threads", str(args.threads)]
    if args.skip_quality:
        shared += ["--skip-flores"]
    runs = {"seq2seq": [sys.executable, str(ROOT / "bench" / "speed.py"), "--json", "--data", str(args.data), *shared]}
    save_every = args.opennmt_save_every or OPENNMT_SAVE_EVERY[mode]
    own = {"joeynmt": ["--joeynmt-batch-type", JOEYNMT_BATCH[0], "--joeynmt-batch-size", JOEYNMT_BATCH[1]],
           "opennmt": ["--save-every", str(save_every), "--log-every", str(min(Settings.log_every, save_every))]}
    for peer in args.peers:
        runs[peer] = [sys.executable, str(ROOT / "bench" / "peers" / "run_peer.py"), "--peer", peer, *shared,
                      *own[peer]]
    return runs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=1800.0,
                        help="training wall-clock seconds per system for the quality run (default: 30 minutes)")
    parser.add_argument("--skip-quality", action="store_true",
                        help="speed and memory only: train for --speed-budget, decode the IITB test set only")
    parser.add_argument("--speed-budget", type=float, default=120.0, help="training seconds with --skip-quality")
    parser.add_argument("--limit", type=int,
                        help=f"decode only the first N sentences of each set (default: all; {SPEED_LIMIT} with --skip-quality)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers to run ('' for none)")
    parser.add_argument("--out", type=Path, help="also save every result and the table to this JSON file")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding en-hi/")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "peers" / "work",
                        help="the shared pieces (prepare_data.py --out) and every system's run folder")
    parser.add_argument("--threads", type=int, help="OMP/MKL threads for every system (default: torch's own choice)")
    parser.add_argument("--opennmt-save-every", type=int,
                        help="OpenNMT checkpoint interval in updates (default: 100, or 20 with --skip-quality)")
    args = parser.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"--peers: unknown {', '.join(unknown)} (known: {', '.join(PEERS)})")
    if min(args.budget, args.speed_budget) <= 0:
        parser.error("--budget and --speed-budget must be > 0 seconds")
    args.peers = peers
    if args.limit is None:
        args.limit = SPEED_LIMIT if args.skip_quality else 0
    args.data, args.work = args.data.resolve(), args.work.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not ensure_pieces(args.data, args.work):
        return 1
    cmds = commands(args)
    results = {"seq2seq": run_system("seq2seq", cmds["seq2seq"])}
    for peer in args.peers:
        env = Settings(peer=peer, budget=0, work=args.work).env_bin.parent
        if (env / "bin" / "python").exists():
            results[peer] = run_system(peer, cmds[peer])
        else:
            results[peer] = {"skipped": f"not installed at {env}; bash bench/peers/setup.sh {peer}"}
            print(f"\n[run] skipping {peer}: {results[peer]['skipped']}", flush=True)
    ours = results["seq2seq"]
    machine = {"date": datetime.now().strftime("%Y-%m-%d %H:%M"), "cpu": cpu_model(),
               "threads": ours.get("threads", args.threads or "default"), "torch": ours.get("torch_version", "?"),
               "budget_s": args.speed_budget if args.skip_quality else args.budget}
    quality = not args.skip_quality
    report = "\n".join([markdown_table(results, quality), "", *footer(results, machine, quality)])
    print("\n" + report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"machine": machine, "options": options, "results": results, "table": report},
                                       ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"\n[run] saved {args.out}")
    return 1 if any("error" in result for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
