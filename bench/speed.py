"""seq2seq's side of the benchmark: the matched model trained for a wall-clock budget, then timed and scored.

    python bench/speed.py --budget 120 --limit 500      # a readable summary
    python bench/speed.py --budget 1800 --json          # one JSON line, keyed as bench/peers/run_peer.py's

seq2seq is run the way run_peer.py runs a peer, so the figures compare: the pieces of
bench/peers/prepare_data.py, training that SIGINT stops once `--budget` seconds have passed
since launch (start-up included), decoding with batch 64 and at most 200 output pieces, every
stage in its own process (peak RSS from wait4), and the same JSON keys. On top of that it
measures the machine's fp32 matmul peak and the FLOPs of a training step, so that achieved
training FLOP/s can be set against what the machine can do.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This checkout's seq2seq is the one measured, installed or not; run_peer.py is a script, not a package.
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "peers")]

from run_peer import BEAMS, ProcResult, Settings, run_measured

SGEMM_SIZE = 2048
SGEMM_REPEATS = 20
FLOP_STEPS = 10  # updates counted by FlopCounterMode: batches differ in length, so one is a noisy sample
PROBE_SENTENCE = "Hello, how are you?"


class BenchError(Exception):
    """A stage that failed or inputs that are missing; the message names the log or the fix."""


def matched_overrides(s: Settings, name: str) -> list[str]:
    """`--set` style overrides that make seq2seq's default config the matched model of every system.

    The shared knobs come from run_peer.py's Settings, so a change there reaches all systems.
    Validation is off, as it is for the peers: it would spend the budget on dev decoding.
    """
    return [
        f"name={name}", f"run_dir={s.work / 'runs'}", f"seed={s.seed}",
        "data.train=[{name: iitb-train, src: en-hi/train.en, tgt: en-hi/train.hi}]", "data.test=[]",
        f"data.max_src_pieces={s.max_train_len}", f"data.max_tgt_pieces={s.max_train_len}",
        "model.rnn=gru", "model.attention=bahdanau", f"model.emb_size={s.emb}", f"model.encoder_hidden={s.hidden}",
        f"model.decoder_hidden={s.hidden}", "model.bidirectional=true", "model.encoder_layers=1",
        "model.decoder_layers=1", f"model.dropout={s.dropout}",
        "training.optimizer=adam", f"training.lr={s.lr}", "training.schedule=constant",
        f"training.clip_grad_norm={s.clip}", f"training.label_smoothing={s.label_smoothing}",
        "training.batch_unit=sentences", f"training.batch_size={s.opennmt_batch_size}",
        f"training.log_every={s.log_every}", "training.valid_every=1000000000", "training.device=cpu",
    ]


def decoding_overrides(s: Settings, method: str) -> dict:
    """The peers' decoding: batch 64, at most max_output_len pieces, GNMT alpha for beam search,
    no repeated n-gram of no_repeat_ngram pieces.

    max_len_extra = max_len switches off seq2seq's own `ratio * source + extra` cap, which the
    peers do not have, so that 200 pieces is the only limit for every system.
    """
    search = {"method": "greedy"} if BEAMS[method] == 1 else {"method": "beam", "beam_size": BEAMS[method]}
    return {**search, "n_best": 1, "batch_size": s.decode_batch, "max_len": s.max_output_len,
            "max_len_extra": s.max_output_len, "min_len": 1, "length_penalty": s.beam_alpha,
            "no_repeat_ngram": s.no_repeat_ngram}


# ------------------------------------------------------------------ phases (child processes)
class StepMeter:
    """Stands in for Trainer._train_step to record each update's target tokens and end time.

    With count_flops it also runs each update under FlopCounterMode (which slows it down, so
    the FLOP phase is never the timed one).
    """

    def __init__(self, step: Callable, count_flops: bool):
        self.step, self.count_flops = step, count_flops
        self.started_at: float | None = None  # time.time() when the first update began
        self.started: float = 0.0  # time.monotonic() of the same moment
        self.ends: list[float] = []
        self.tokens: list[int] = []
        self.flops = 0

    def __call__(self, batch: object) -> tuple[float | None, int]:
        if self.started_at is None:
            self.started_at, self.started = time.time(), time.monotonic()
        if self.count_flops:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                result = self.step(batch)
            self.flops += counter.get_total_flops()
        else:
            result = self.step(batch)
        self.ends.append(time.monotonic())
        self.tokens.append(result[1])
        return result

    def window_rates(self, every: int) -> list[float]:
        """Target tokens/s over each full window of `every` updates, as the peers log them."""
        rates = []
        for end in range(every, len(self.ends) + 1, every):
            begin = self.ends[end - every - 1] if end > every else self.started
            rates.append(sum(self.tokens[end - every:end]) / max(self.ends[end - 1] - begin, 1e-9))
        return rates


def phase_train(args: argparse.Namespace) -> dict:
    """Train as train.py does (Trainer(prepare_run(config)).train()) until SIGINT or max_steps, counting every token."""
    os.chdir(ROOT)  # relative config defaults (the data cache) land where train.py would put them
    import torch

    from seq2seq.config import load_config
    from seq2seq.model.build import count_parameters
    from seq2seq.startup import prepare_run
    from seq2seq.training import Trainer

    s = Settings(peer="seq2seq", budget=0, work=Path(args.work))
    extra = [f"training.max_steps={args.max_steps}"] if args.max_steps else []
    config = load_config(None, matched_overrides(s, args.name) + extra, str(args.data))
    trainer = Trainer(prepare_run(config))
    meter = StepMeter(trainer._train_step, count_flops=args.phase == "flops")
    trainer._train_step = meter
    stop_reason = trainer.train()
    checkpoints = sorted(config.run_path.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    return {"steps": trainer.progress.step, "tgt_tokens": sum(meter.tokens), "seconds": trainer.progress.elapsed,
            "loop_started_at": meter.started_at, "window_tok_per_s": meter.window_rates(s.log_every),
            "flops": meter.flops, "params": count_parameters(trainer.model), "stop_reason": str(stop_reason),
            "checkpoint": str(checkpoints[-1]), "threads": torch.get_num_threads(),
            "torch_version": torch.__version__}


def phase_decode(args: argparse.Namespace) -> dict:
    """Translate the first --limit lines of --src and score them; only the search itself is timed.

    There is no warm-up batch: the peers' own timers include their first batch too.
    """
    from seq2seq.evaluation import score
    from seq2seq.translator import Translator

    s = Settings(peer="seq2seq", budget=0, work=Path(args.work))
    sources = Path(args.src).read_text(encoding="utf-8").splitlines()[: args.limit or None]
    references = Path(args.ref).read_text(encoding="utf-8").splitlines()[: len(sources)]
    translator = Translator.from_checkpoint(args.checkpoint, device="cpu", quantize=args.quantize,
                                            **decoding_overrides(s, args.method))
    start = time.perf_counter()
    hypotheses = [nbest[0].text for nbest in translator.translate(sources)]
    seconds = time.perf_counter() - start
    Path(args.output).write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    scores = score(hypotheses, references)
    return {"sentences": len(sources), "seconds": seconds, "bleu": scores.bleu, "chrf": scores.chrf,
            "ter": scores.ter, "len_ratio": scores.length_ratio, "bleu_signature": scores.bleu_signature,
            "chrf_signature": scores.chrf_signature, "ter_signature": scores.ter_signature}


def phase_sgemm(args: argparse.Namespace) -> dict:
    """Measured fp32 matmul peak on the threads torch uses here (the ceiling for training FLOP/s)."""
    import torch

    a, b = torch.randn(SGEMM_SIZE, SGEMM_SIZE), torch.randn(SGEMM_SIZE, SGEMM_SIZE)
    for _ in range(3):
        torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(SGEMM_REPEATS):
        torch.mm(a, b)
    seconds = time.perf_counter() - start
    return {"gflops": 2 * SGEMM_SIZE**3 * SGEMM_REPEATS / seconds / 1e9, "threads": torch.get_num_threads()}


PHASES = {"train": phase_train, "flops": phase_train, "decode": phase_decode, "sgemm": phase_sgemm}


# ---------------------------------------------------------------------- the parent process
class Runner:
    """Starts each phase as its own process (like run_peer.py's stages) and reads back its JSON."""

    def __init__(self, s: Settings, data: Path, env: dict):
        self.s, self.data, self.env = s, data, env

    def phase(self, phase: str, log_name: str, *extra: str, budget: float | None = None) -> tuple[dict, ProcResult]:
        result_path = self.s.run_dir / f"{log_name}.result.json"
        result_path.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--phase", phase, "--result", str(result_path), "--work", str(self.s.work),
               "--data", str(self.data), *extra]
        log_path = self.s.run_dir / f"{log_name}.stdout.log"
        proc = run_measured(cmd, log_path, budget=budget, grace=self.s.grace, env=self.env, tag="speed")
        if not result_path.is_file():
            hint = "; the budget ran out during start-up: raise --budget" if proc.interrupted else ""
            raise BenchError(f"seq2seq {phase} phase failed with rc={proc.rc}{hint}; see {log_path}")
        return json.loads(result_path.read_text(encoding="utf-8")), proc


def prepare_run_dir(s: Settings, name: str) -> Path:
    """A fresh run folder that already holds the shared SentencePiece models, so the trainer reuses them."""
    run_path = s.work / "runs" / name
    shutil.rmtree(run_path, ignore_errors=True)
    run_path.mkdir(parents=True)
    for side in ("src", "tgt"):
        shutil.copyfile(s.work / "spm" / f"{side}.model", run_path / f"{side}.spm.model")
    return run_path


def check_inputs(s: Settings, data: Path) -> None:
    needed = [s.work / "spm" / "src.model", s.work / "spm" / "tgt.model", s.work / "raw" / "test.en",
              s.work / "raw" / "test.hi", data / "en-hi" / "train.en", data / "en-hi" / "train.hi"]
    for path in needed:
        if not path.is_file():
            raise BenchError(f"missing {path}: run python bench/peers/prepare_data.py --data {data} --out {s.work}")


def commit() -> str | None:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False, capture_output=True,
                          text=True)
    return done.stdout.strip() or None


def measure(s: Settings, data: Path, checkpoint: str | None) -> dict:
    """Every figure of one seq2seq run, under run_peer.py's key names plus the FLOP and sgemm figures."""
    env = dict(os.environ)
    if s.threads:
        env.update(OMP_NUM_THREADS=str(s.threads), MKL_NUM_THREADS=str(s.threads))
    runner = Runner(s, data, env)
    prepare_run_dir(s, "seq2seq")
    sgemm, _ = runner.phase("sgemm", "sgemm")
    train, proc = runner.phase("train", "train", "--name", "seq2seq", budget=s.budget)
    print(f"[speed] training ended ({train['stop_reason']}) after {proc.wall_s:.0f}s", flush=True)
    if not train["steps"]:
        raise BenchError(f"seq2seq made no update within the {s.budget:.0f} s budget: raise --budget")
    prepare_run_dir(s, "seq2seq-flops")
    flops, _ = runner.phase("flops", "flops", "--name", "seq2seq-flops", "--max-steps", str(FLOP_STEPS))
    flop_per_token = flops["flops"] / flops["tgt_tokens"]
    windows = sorted(train["window_tok_per_s"])
    tok_per_s = train["tgt_tokens"] / train["seconds"] if train["seconds"] > 0 else 0.0
    result = {
        "peer": "seq2seq", "version": importlib.metadata.version("seq2seq"), "commit": commit(),
        "budget_s": s.budget, "params": train["params"], "train_steps": train["steps"], "ckpt_step": train["steps"],
        "train_tgt_tokens": train["tgt_tokens"], "train_seconds": round(train["seconds"], 2),
        "train_tok_per_s": round(tok_per_s, 1),
        "train_window_tok_per_s_median": round(windows[len(windows) // 2], 1) if windows else None,
        "train_tgt_tokens_per_step": round(train["tgt_tokens"] / train["steps"], 1),
        "train_startup_s": round(train["loop_started_at"] - proc.started_at, 2),
        "train_wall_s": round(proc.wall_s, 2), "train_peak_rss_mb": round(proc.peak_rss_mb, 1),
        "train_peak_tree_pss_mb": round(proc.peak_tree_pss_mb, 1),
        "sgemm_gflops": round(sgemm["gflops"], 1), "mflop_per_target_token": round(flop_per_token / 1e6, 2),
        "achieved_gflops": round(tok_per_s * flop_per_token / 1e9, 1), "threads": train["threads"],
        "torch_version": train["torch_version"],
    }
    decoded = checkpoint or train["checkpoint"]
    # (set, key prefix, int8): the int8 model (translate.py --quantize) decodes the IITB test set only
    runs = [("test", "", False)] + ([("flores", "flores_", False)] if s.flores else []) + [("test", "int8_", True)]
    for split, prefix, quantize in runs:
        if not (s.work / "raw" / f"{split}.en").is_file():
            print(f"[speed] no {s.work / 'raw' / f'{split}.en'}: {split} skipped (see prepare_data.py)", flush=True)
            continue
        for method in BEAMS:
            key, name = f"{prefix}{method}", f"{split}.{method}" + (".int8" if quantize else "")
            out, proc = runner.phase(
                "decode", f"decode.{name}", "--checkpoint", decoded, "--method", method,
                "--src", str(s.work / "raw" / f"{split}.en"), "--ref", str(s.work / "raw" / f"{split}.hi"),
                "--output", str(s.run_dir / f"{name}.hi"), "--limit", str(s.limit or 0),
                *(["--quantize"] if quantize else []))
            if not quantize:
                result[f"{prefix}sents" if prefix else "test_sents"] = out["sentences"]
            result.update({
                f"{key}_sent_per_s": round(out["sentences"] / out["seconds"], 2) if out["seconds"] > 0 else None,
                f"{key}_decode_s": round(out["seconds"], 2), f"{key}_wall_s": round(proc.wall_s, 2),
                f"{key}_peak_rss_mb": round(proc.peak_rss_mb, 1), f"{key}_bleu": round(out["bleu"], 2),
                f"{key}_chrf": round(out["chrf"], 2), f"{key}_ter": round(out["ter"], 2),
                f"{key}_len_ratio": round(out["len_ratio"], 4),
            })
            result["bleu_signature"], result["chrf_signature"] = out["bleu_signature"], out["chrf_signature"]
            result["ter_signature"] = out["ter_signature"]
    start = time.perf_counter()
    probe = subprocess.run([sys.executable, str(ROOT / "translate.py"), "--checkpoint", decoded, "--device", "cpu",
                            PROBE_SENTENCE], check=False, capture_output=True, text=True, env=env)
    if probe.returncode != 0:
        raise BenchError(f"translate.py failed on {decoded}: {probe.stderr.strip()[-500:]}")
    result["cold_start_s"] = round(time.perf_counter() - start, 2)
    result["settings"] = {"emb": s.emb, "hidden": s.hidden, "dropout": s.dropout, "lr": s.lr, "clip": s.clip,
                          "label_smoothing": s.label_smoothing, "max_train_len": s.max_train_len,
                          "max_output_len": s.max_output_len, "decode_batch": s.decode_batch,
                          "beam_alpha": s.beam_alpha, "no_repeat_ngram": s.no_repeat_ngram, "seed": s.seed,
                          "threads": s.threads, "batch": f"sents:{s.opennmt_batch_size}", "checkpoint": decoded}
    return result


def summary(r: dict) -> str:
    """The run in a few readable lines."""
    lines = [
        (f"seq2seq {r['version']}, budget {r['budget_s']:.0f} s: {r['train_steps']:,} updates, "
         f"{r['train_tok_per_s']:,.0f} target tokens/s (window median {r['train_window_tok_per_s_median'] or 0:,.0f}), "
         f"start-up {r['train_startup_s']} s, training peak RSS {r['train_peak_rss_mb']:,.0f} MB"),
        (f"achieved training {r['achieved_gflops']} GFLOP/s = {100 * r['achieved_gflops'] / r['sgemm_gflops']:.0f}% "
         f"of the measured sgemm peak ({r['sgemm_gflops']} GFLOP/s; {r['mflop_per_target_token']} MFLOP per "
         f"target token; threads: {r['threads']})"),
    ]
    for prefix, name in (("", "IITB test"), ("flores_", "FLORES-200 dev")):
        sents = r.get(f"{prefix}sents" if prefix else "test_sents")
        if sents is None:
            continue
        parts = [f"{method} {r[f'{prefix}{method}_sent_per_s']} sent/s, length ratio "
                 f"{r[f'{prefix}{method}_len_ratio']:.3f}, BLEU {r[f'{prefix}{method}_bleu']:.2f}, "
                 f"chrF {r[f'{prefix}{method}_chrf']:.2f}, peak RSS {r[f'{prefix}{method}_peak_rss_mb']:,.0f} MB"
                 for method in BEAMS]
        lines.append(f"{name} ({sents:,} sentences, batch 64): " + "; ".join(parts))
    if r.get("int8_greedy_sent_per_s") is not None:
        lines.append("IITB test, int8 (--quantize): " + "; ".join(
            f"{method} {r[f'int8_{method}_sent_per_s']} sent/s, length ratio {r[f'int8_{method}_len_ratio']:.3f}, "
            f"chrF {r[f'int8_{method}_chrf']:.2f}" for method in BEAMS))
    lines.append(f"translate.py cold start: {r['cold_start_s']} s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding en-hi/")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "peers" / "work",
                        help="prepare_data.py --out folder (pieces, SentencePiece models, references)")
    parser.add_argument("--budget", type=float, default=120.0, help="training wall-clock seconds, start-up included")
    parser.add_argument("--limit", type=int, default=0, help="decode only the first N sentences of each set (0 = all)")
    parser.add_argument("--skip-flores", action="store_true", help="decode the IITB test set only")
    parser.add_argument("--threads", type=int, help="OMP/MKL threads (default: torch's own choice)")
    parser.add_argument("--checkpoint", help="decode this model instead of the one the budget trained")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout; the summary goes to stderr")
    for hidden in ("--phase", "--result", "--name", "--method", "--src", "--ref", "--output"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--max-steps", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--quantize", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error("--budget must be > 0 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        result = PHASES[args.phase](args)
        Path(args.result).write_text(json.dumps(result), encoding="utf-8")
        return 0
    data, work = args.data.resolve(), args.work.resolve()
    s = Settings(peer="seq2seq", budget=args.budget, work=work, limit=args.limit or None, threads=args.threads,
                 flores=not args.skip_flores)
    try:
        with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
            check_inputs(s, data)
            result = measure(s, data, args.checkpoint)
            print(summary(result), flush=True)
    except BenchError as error:
        print(f"speed: error: {error}", file=sys.stderr)
        return 1
    (work / "seq2seq.json").write_text(json.dumps(result, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
