"""Quality ablation: train one config with each list of overrides in turn, score each on dev and test.

    python bench/quality.py --config configs/en-hi.yaml --data-dir ../shared/data --budget 10m \\
        --variant base= --variant "ls0.2=training.label_smoothing=0.2" \\
        --variant "wd=training.src_word_dropout=0.1 training.tgt_word_dropout=0.1" --out bench/results/ablation.json

Each variant trains in its own process, one after the other (never two at once: two cores are
easily disturbed), under runs/<config name>-<label>, so `tensorboard --logdir runs` shows the
variants side by side. Training itself scores the best checkpoint (chosen on dev) on every test
set at the end; this script reads those lines from the run's train.log, scores the same
checkpoint on the dev set, and prints one table of each variant's scores and its dev chrF change
against the first variant.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from seq2seq.checkpoint import count_state_parameters  # noqa: E402
from seq2seq.config import load_config  # noqa: E402
from seq2seq.data.corpus import load_eval_sets  # noqa: E402
from seq2seq.testsets import evaluate_tests  # noqa: E402
from seq2seq.translator import Translator  # noqa: E402


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'label=key=value key=value' -> (label, [key=value, ...]); 'base=' has no overrides."""
    label, _, overrides = text.partition("=")
    if not label:
        raise SystemExit(f"--variant {text!r}: expected LABEL=key=value ... (or LABEL= for the config as it is)")
    return label, overrides.split()


# logs written before TER was scored lack it
TEST_LINE = re.compile(r"test (\S+): BLEU ([\d.]+)  chrF ([\d.]+)(?:  TER ([\d.]+))?  length ratio ([\d.]+)")


def test_scores(log: Path) -> dict[str, dict]:
    """The test-set scores training logged for its best checkpoint (TER where the log has it)."""
    scores = {}
    for name, bleu, chrf, ter, ratio in TEST_LINE.findall(log.read_text(encoding="utf-8")):
        scores[name] = {"bleu": float(bleu), "chrf": float(chrf), "length_ratio": float(ratio)}
        if ter:
            scores[name]["ter"] = float(ter)
    return scores


def run_variant(args: argparse.Namespace, label: str, overrides: list[str]) -> dict:
    base = load_config(args.config, [], args.data_dir)
    settings = [*overrides, f"name={base.name}-{label}", f"training.max_time={args.budget}"]
    command = [sys.executable, "train.py", "--config", args.config, "--data-dir", args.data_dir]
    for setting in settings:
        command += ["--set", setting]
    print(f"== {label}: {' '.join(overrides) or '(the config as it is)'}", flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    config = load_config(args.config, [*overrides, f"name={base.name}-{label}"], args.data_dir)
    best = config.run_path / "best.pt"
    translator = Translator.from_checkpoint(best, device="cpu", decoding=config.decoding)
    dev = load_eval_sets(config.data, config.data_seed).dev
    dev_scores = evaluate_tests(translator, [dev], progress=False, options=config.evaluation)[dev.name]
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    scores = {dev.name: {"bleu": dev_scores.bleu, "chrf": dev_scores.chrf, "ter": dev_scores.ter,
                         "length_ratio": dev_scores.length_ratio},
              **test_scores(config.run_path / "train.log")}
    return {"label": label, "overrides": overrides, "updates": checkpoint["training"]["progress"]["step"],
            "parameters": count_state_parameters(checkpoint["model"]), "scores": scores}


def table(results: list[dict]) -> str:
    names = list(results[0]["scores"])
    header = "| variant | best at update | " + " | ".join(f"{n} BLEU / chrF / len" for n in names) + " | dev chrF change |"
    lines = [header, "|" + "---|" * (len(names) + 3)]
    dev = names[0]
    reference = results[0]["scores"][dev]["chrf"]
    for result in results:
        cells = [f"{s['bleu']:.2f} / {s['chrf']:.2f} / {s['length_ratio']:.2f}" for s in result["scores"].values()]
        change = result["scores"][dev]["chrf"] - reference
        lines.append(f"| {result['label']} | {result['updates']} | " + " | ".join(cells) + f" | {change:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--budget", default="10m", help="training time per variant (default 10m)")
    parser.add_argument("--variant", action="append", required=True, metavar="LABEL=KEY=VALUE ...",
                        help="a label and the overrides it applies; repeat for each variant, the first is the baseline")
    parser.add_argument("--out", help="also write the results and the machine as JSON here")
    args = parser.parse_args()
    results = [run_variant(args, *parse_variant(text)) for text in args.variant]
    report = table(results)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    print(f"\n{report}\n\n{when}; {machine}; {args.config}, {args.budget} per variant, the first row is the baseline")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"date": when, "machine": machine, "config": args.config,
                                              "budget": args.budget, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
