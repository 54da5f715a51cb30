"""The benchmark suite: seq2seq and each installed peer, one after the other, in one table.

    bash bench/peers/setup.sh                                 # once: the peers' environments
    python bench/run.py --out bench/results/suite.json         # 30 minutes of training per system
    python bench/run.py --skip-quality                         # speed and memory only (2-minute budgets)
    python bench/run.py --recipe transformer --threads 2 --out bench/results/suite-transformer.json

Every system trains the matched model (emb 256, biGRU encoder 256 per direction, GRU decoder
256, Bahdanau attention, dropout 0.1, Adam 1e-3, ~64-sentence batches) on the same
SentencePiece pieces for the same wall-clock budget, start-up included; then it decodes the
IITB test set (and FLORES-200 dev) greedy and with beam 5, batch 64, at most 200 pieces, no
repeated 4-gram of pieces (every system has the option; seq2seq has it on by default).
seq2seq runs through bench/speed.py and each peer through bench/peers/run_peer.py, each in
its own processes so that peak RSS is its own, never two at once, so they never share the CPU.

With --recipe transformer the comparison is each system's Transformer instead: seq2seq's default
configs/en-hi.yaml, trained by `python train.py` (through bench/quality.py, which also scores its
best checkpoint on IITB dev), against each peer's Transformer with the same shape and recipe
(run_peer.py --model transformer), all on seq2seq's own training mix and pieces
(prepare_data.py --config configs/en-hi.yaml, in bench/peers/work-en-hi). The table holds the
beam-5 quality on IITB test, FLORES-200 dev, the Tatoeba held-out pairs and IITB dev.
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

from run_peer import PEERS, TEMPLATES, Settings, transformer_recipe

# The matched model's ~64-sentence batches; run_peer.py's own JoeyNMT default (1500 tokens) holds ~24.
JOEYNMT_BATCH = ("sentence", "64")
# Barely trained models often decode to the length cap, so a speed-only run decodes fewer sentences by default.
SPEED_LIMIT = 500
# OpenNMT saves nothing on SIGINT, so a checkpoint must land close to the end of the budget; it
# also reports at least as often as it saves, since only reported updates are counted.
OPENNMT_SAVE_EVERY = {"quality": 100, "speed": 20}
MISSING = "—"
RECIPES = ("matched", "transformer")
# The seq2seq config of the Transformer recipe, and the peers that have a Transformer template.
TRANSFORMER_CONFIG = "configs/en-hi.yaml"
TRANSFORMER_PEERS = tuple(peer for peer, model in TEMPLATES if model == "transformer")
# seq2seq's evaluation-set names -> the key prefix of run_peer.py's JSON line.
SEQ2SEQ_SETS = {"iitb-test": "", "flores-dev": "flores_", "tatoeba": "tatoeba_", "iitb-dev": "dev_"}


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

# The Transformer recipe's table: beam-5 quality on every set (seq2seq scores only its beam search).
TRANSFORMER_ROWS = tuple(
    Row(f"{metric}, {label}, beam 5", f"{prefix}beam5_{key}", better, digits, quality=True)
    for prefix, label in (("", "IITB test"), ("flores_", "FLORES-200 dev"), ("tatoeba_", "Tatoeba held-out"),
                          ("dev_", "IITB dev"))
    for metric, key, better, digits in (("BLEU", "bleu", "higher", 2), ("chrF", "chrf", "higher", 2),
                                        ("length ratio", "len_ratio", "near 1", 3))
) + (Row("parameters", "params", "", 0), Row("updates (seq2seq: of its best checkpoint)", "train_steps", "", 0))


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


def markdown_table(results: dict[str, dict], quality: bool, rows: tuple[Row, ...] = ROWS) -> str:
    """Rows are figures; columns are each system, then seq2seq / peer for every peer.

    `results` maps a system to its JSON line (bench/speed.py or run_peer.py); seq2seq comes
    first. A system that failed or was skipped has no figures, so its cells show a dash.
    """
    names = list(results)
    peers = names[1:]
    header = ["figure", "better"] + [column_name(n, results[n]) for n in names] + [f"seq2seq / {p}" for p in peers]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for row in rows:
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


def transformer_footer(results: dict[str, dict], machine: dict) -> list[str]:
    """What the Transformer recipe's table cannot say: the machine, the recipe, which checkpoints, failures."""
    recipe = transformer_recipe(ROOT / TRANSFORMER_CONFIG)
    lines = [
        f"{machine['date']}, {machine['cpu']}, threads: {machine['threads']}; {machine['budget_s']:.0f} s of "
        f"training per system; every system: {TRANSFORMER_CONFIG}'s Transformer recipe (width {recipe['d_model']}, "
        f"{recipe['layers']}+{recipe['layers']} layers) and training mix, in its pieces (bench/peers/prepare_data.py "
        f"--config). Beam 5, GNMT length penalty alpha {recipe['length_penalty']:g}, at most 200 pieces"
        f"{repeats_clause(recipe['no_repeat_ngram'])}. seq2seq decodes its best checkpoint on IITB dev chrF "
        f"(validated every 500 updates and at the end; the {recipe['ema_decay']:g} moving average of the weights), "
        "each peer its last saved checkpoint (OpenNMT: the same moving average; JoeyNMT 2.3 has none)."]
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


def run_system(name: str, cmd: list[str], json_line: bool = True) -> dict:
    """Run one system's script, echoing its progress; its last stdout line is its JSON result.

    Without `json_line` the script writes its result elsewhere, and success gives an empty dict.
    """
    print(f"\n[run] {name}: {' '.join(cmd)}", flush=True)
    last = ""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        for line in proc.stdout:
            if line.startswith("{"):
                last = line
            else:
                print(line, end="", flush=True)
    if proc.returncode != 0 or (json_line and not last):
        return {"error": f"failed (exit status {proc.returncode}); see the log lines above"}
    return json.loads(last) if json_line else {}


def ensure_pieces(data: Path, work: Path, config: str | None = None) -> bool:
    """Every system reads prepare_data.py's pieces; make them once on a fresh machine (False if that failed).

    With a seq2seq config they are that config's own training mix and pieces (prepare_data.py --config),
    written anew every time: pieces of an older config would otherwise be reused silently, and
    prepare_data.py reads seq2seq's own content-keyed caches, so this costs about a minute.
    """
    if not config and (work / "manifest.json").is_file():
        return True
    cmd = [sys.executable, str(ROOT / "bench" / "peers" / "prepare_data.py"), "--data", str(data), "--out", str(work)]
    if config:
        cmd += ["--config", config]
    print(f"[run] preparing the shared pieces in {work}", flush=True)
    return subprocess.run(cmd, check=False).returncode == 0


def transformer_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """The Transformer recipe: seq2seq's default config through bench/quality.py, then each peer's Transformer."""
    variant = "bench=" + (f"training.threads={args.threads}" if args.threads else "")
    runs = {"seq2seq": [sys.executable, str(ROOT / "bench" / "quality.py"), "--config", TRANSFORMER_CONFIG,
                        "--data-dir", str(args.data), "--budget", f"{args.budget:g}s", "--variant", variant,
                        "--out", str(args.work / "seq2seq-transformer.json")]}
    shared = ["--model", "transformer", "--config", str(ROOT / TRANSFORMER_CONFIG), "--budget", str(args.budget),
              "--work", str(args.work)]
    if args.limit:
        shared += ["--limit", str(args.limit)]
    if args.threads:
        shared += ["--threads", str(args.threads)]
    save_every = args.opennmt_save_every or OPENNMT_SAVE_EVERY["quality"]
    own = {"opennmt": ["--save-every", str(save_every), "--log-every", str(min(Settings.log_every, save_every))]}
    for peer in args.peers:
        runs[peer] = [sys.executable, str(ROOT / "bench" / "peers" / "run_peer.py"), "--peer", peer, *shared,
                      *own.get(peer, [])]
    return runs


def seq2seq_transformer_result(path: Path) -> dict:
    """bench/quality.py's scores of seq2seq's best checkpoint, under run_peer.py's JSON keys."""
    try:
        run = json.loads(path.read_text(encoding="utf-8"))["results"][0]
    except (OSError, ValueError, KeyError, IndexError) as error:
        return {"error": f"no seq2seq result in {path} ({error})"}
    result = {"version": "", "train_steps": run["updates"], "params": run.get("parameters")}
    for name, prefix in SEQ2SEQ_SETS.items():
        scores = run["scores"].get(name)
        if scores:
            result.update({f"{prefix}beam5_bleu": scores["bleu"], f"{prefix}beam5_chrf": scores["chrf"],
                           f"{prefix}beam5_len_ratio": scores["length_ratio"]})
    return result


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command of every system, seq2seq first."""
    if args.recipe == "transformer":
        return transformer_commands(args)
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
    parser.add_argument("--recipe", choices=RECIPES, default="matched",
                        help="matched: the matched GRU model everywhere; transformer: seq2seq's default "
                             f"{TRANSFORMER_CONFIG} against each peer's Transformer with the same recipe")
    parser.add_argument("--budget", type=float, default=1800.0,
                        help="training wall-clock seconds per system for the quality run (default: 30 minutes)")
    parser.add_argument("--skip-quality", action="store_true",
                        help="speed and memory only: train for --speed-budget, decode the IITB test set only")
    parser.add_argument("--speed-budget", type=float, default=120.0, help="training seconds with --skip-quality")
    parser.add_argument("--limit", type=int,
                        help=f"decode only the first N sentences of each set (default: all; {SPEED_LIMIT} with --skip-quality)")
    parser.add_argument("--peers", help="comma-separated peers to run ('' for none; default: every peer, "
                                         f"or those with a Transformer: {','.join(TRANSFORMER_PEERS)})")
    parser.add_argument("--out", type=Path, help="also save every result and the table to this JSON file")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding en-hi/")
    parser.add_argument("--work", type=Path,
                        help="the shared pieces (prepare_data.py --out) and every system's run folder "
                             "(default: bench/peers/work, or bench/peers/work-en-hi for --recipe transformer)")
    parser.add_argument("--threads", type=int, help="OMP/MKL threads for every system (default: torch's own choice)")
    parser.add_argument("--opennmt-save-every", type=int,
                        help="OpenNMT checkpoint interval in updates (default: 100, or 20 with --skip-quality)")
    args = parser.parse_args(argv)
    transformer = args.recipe == "transformer"
    known = TRANSFORMER_PEERS if transformer else PEERS
    if args.peers is None:
        args.peers = ",".join(known)
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in known]
    if unknown:
        parser.error(f"--peers: {', '.join(unknown)} not available for --recipe {args.recipe} "
                     f"(available: {', '.join(known)})")
    if transformer and args.skip_quality:
        parser.error("--skip-quality is for the matched recipe; the Transformer recipe compares quality")
    if args.work is None:
        args.work = ROOT / "bench" / "peers" / ("work-en-hi" if transformer else "work")
    if min(args.budget, args.speed_budget) <= 0:
        parser.error("--budget and --speed-budget must be > 0 seconds")
    args.peers = peers
    if args.limit is None:
        args.limit = SPEED_LIMIT if args.skip_quality else 0
    args.data, args.work = args.data.resolve(), args.work.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transformer = args.recipe == "transformer"
    if not ensure_pieces(args.data, args.work, TRANSFORMER_CONFIG if transformer else None):
        return 1
    cmds = commands(args)
    if transformer:
        out = Path(cmds["seq2seq"][-1])  # quality.py prints no JSON line: its result is its --out file
        out.unlink(missing_ok=True)
        ours = run_system("seq2seq", cmds["seq2seq"], json_line=False)
        results = {"seq2seq": ours if "error" in ours else seq2seq_transformer_result(out)}
    else:
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
    if transformer:
        report = "\n".join([markdown_table(results, True, TRANSFORMER_ROWS), "", *transformer_footer(results, machine)])
    else:
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
