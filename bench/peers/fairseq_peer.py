"""Train and evaluate fairseq's Transformer-tiny on Multi30k with the command of Wu et al. (ACL 2021).

The pipeline, each stage a child process from bench/peers/envs/fairseq:
  1. subword-nmt: one joint BPE (--merges, default 10,000) learned on train.{src} + train.{tgt}
     and applied to train, val and test_2016_flickr
  2. fairseq-preprocess --joined-dictionary
  3. fairseq-train with the paper's flags (--update-freq 2 in one process stands in for their two
     GPUs of --max-tokens 4096) until --max-update, --patience or the budget
     (--stop-time-hours, fairseq's own training clock) stops it
  4. fairseq-generate --beam 5 --remove-bpe of checkpoint_best.pt on val and test_2016_flickr
  5. sacrebleu BLEU (tokenize none: the data are Moses-tokenized already), chrF and length ratio
One JSON line is printed and written to <work>/fairseq.json.

    python bench/peers/fairseq_peer.py --budget 180 --threads 2 --limit 100   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from run_peer import PeerError, run_measured  # noqa: E402

SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}  # fairseq's name: Multi30k's
SUFFIX = "lc.norm.tok"
EVAL_SUBSETS = ("valid", "test")
ARCH = "transformer_tiny_mmt"  # registered by fairseq_user/ (stock fairseq's transformer_tiny is 2+2 x 64)
VERSION = "fairseq-fixed 0.12.3.1"


@dataclass
class FairseqSettings:
    """The paper's recipe (README-baseline.md of LividWo/Revisit-MMT) and this machine's settings."""

    budget: float                    # seconds on fairseq's training clock (--stop-time-hours)
    data: Path = REPO.parent / "shared" / "data" / "multi30k" / "tok"
    work: Path = HERE / "work-multi30k"
    src: str = "en"
    tgt: str = "de"
    threads: int = 2
    merges: int = 10000
    # from the paper's command
    dropout: float = 0.3
    warmup_updates: int = 2000
    lr: float = 0.005
    max_tokens: int = 4096
    max_update: int = 8000
    patience: int = 10
    # one process for the paper's two GPUs: the same tokens per update
    update_freq: int = 2
    # stock fairseq translation-example flags the paper's command leaves at its fork's defaults
    adam_betas: str = "(0.9, 0.98)"
    clip_norm: float = 0.0
    label_smoothing: float = 0.1
    seed: int = 1
    beam: int = 5
    decode_batch: int = 128
    log_interval: int = 10
    limit: int | None = None         # val and test cut to their first N sentences (smoke runs)
    # start-up, the last validation and the last save may run past the budget by this much before
    # the process group gets SIGINT (fairseq stops itself at the budget; this only catches a hang)
    grace: float = 300.0

    @property
    def env_bin(self) -> Path:
        return HERE / "envs" / "fairseq" / "bin"

    @property
    def run_dir(self) -> Path:
        return self.work / "runs" / f"fairseq-{self.src}-{self.tgt}"

    def corpus(self, split: str, lang: str) -> Path:
        """A Multi30k file by fairseq's split name (train, valid, test)."""
        return self.data / f"{SPLITS[split]}.{SUFFIX}.{lang}"


# ---------------------------------------------------------------------------- commands
def tool(s: FairseqSettings, name: str) -> str:
    return str(s.env_bin / name)


def learn_bpe_cmd(s: FairseqSettings) -> list[str]:
    """Reads the joint training text on stdin, writes the codes to stdout."""
    return [tool(s, "subword-nmt"), "learn-bpe", "-s", str(s.merges)]


def apply_bpe_cmd(s: FairseqSettings, codes: Path) -> list[str]:
    return [tool(s, "subword-nmt"), "apply-bpe", "-c", str(codes)]


def preprocess_cmd(s: FairseqSettings, bpe_dir: Path, bin_dir: Path) -> list[str]:
    return [tool(s, "fairseq-preprocess"), "--source-lang", s.src, "--target-lang", s.tgt,
            "--trainpref", str(bpe_dir / "train"), "--validpref", str(bpe_dir / "valid"),
            "--testpref", str(bpe_dir / "test"), "--destdir", str(bin_dir), "--joined-dictionary",
            "--workers", "1"]


def train_cmd(s: FairseqSettings, bin_dir: Path, save_dir: Path) -> list[str]:
    """The paper's fairseq-train command, on the CPU, in one process, stopped by the budget."""
    paper = ["--task", "translation", "--arch", ARCH, "--share-all-embeddings", "--dropout", str(s.dropout),
             "--warmup-updates", str(s.warmup_updates), "--lr", str(s.lr), "--max-tokens", str(s.max_tokens),
             "--max-update", str(s.max_update), "--target-lang", s.tgt, "--patience", str(s.patience)]
    stock = ["--optimizer", "adam", "--adam-betas", s.adam_betas, "--clip-norm", str(s.clip_norm),
             "--lr-scheduler", "inverse_sqrt", "--criterion", "label_smoothed_cross_entropy",
             "--label-smoothing", str(s.label_smoothing)]
    here = ["--source-lang", s.src, "--user-dir", str(HERE / "fairseq_user"), "--cpu",
            "--update-freq", str(s.update_freq), "--stop-time-hours", f"{s.budget / 3600:.6f}",
            "--num-workers", "0", "--seed", str(s.seed), "--save-dir", str(save_dir), "--no-epoch-checkpoints",
            "--log-format", "simple", "--log-interval", str(s.log_interval)]
    return [tool(s, "fairseq-train"), str(bin_dir), *paper, *stock, *here]


def generate_cmd(s: FairseqSettings, bin_dir: Path, checkpoint: Path, subset: str) -> list[str]:
    """Beam search over the whole subset.

    With fairseq's default --required-batch-size-multiple 8, fairseq-generate drops the last
    (n mod 8) sentences of a subset (fairseq issue 5351: 96 of 100 were translated here), so it is 1.
    """
    return [tool(s, "fairseq-generate"), str(bin_dir), "--user-dir", str(HERE / "fairseq_user"), "--cpu",
            "--source-lang", s.src, "--target-lang", s.tgt, "--path", str(checkpoint),
            "--gen-subset", subset, "--beam", str(s.beam), "--batch-size", str(s.decode_batch),
            "--required-batch-size-multiple", "1", "--remove-bpe"]


def fairseq_env(threads: int) -> dict[str, str]:
    """The thread count, and torch.load as fairseq 0.12 expects it.

    fairseq's checkpoints pickle an argparse.Namespace and omegaconf objects, which torch >= 2.6
    refuses to load by default (weights_only=True); the checkpoints read here are the run's own.
    """
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


# ------------------------------------------------------------------------ log parsing
INNER = re.compile(r"\| train_inner \| epoch (\d+):\s+\d+ / \d+ (.*)$")
EPOCH_END = re.compile(r"\| (train|valid) \| epoch (\d+) \| (?:valid on 'valid' subset \| )?(.*)$")
PARAMS = re.compile(r"num\. (?:shared )?model params: ([\d,]+)")
STOP = re.compile(r"Stopping training due to (.*)$|early stop since valid performance hasn't improved")


def inner_fields(text: str) -> dict[str, float]:
    """`loss=4.1, ppl=17.2, ...` -> {'loss': 4.1, 'ppl': 17.2, ...} (non-numbers skipped)."""
    fields = {}
    for item in text.split(", "):
        key, _, value = item.partition("=")
        try:
            fields[key.strip()] = float(value)
        except ValueError:
            pass
    return fields


def epoch_fields(text: str) -> dict[str, float]:
    """`loss 4.1 | ppl 17.2 | ...` -> {'loss': 4.1, 'ppl': 17.2, ...}."""
    fields = {}
    for item in text.split(" | "):
        key, _, value = item.strip().partition(" ")
        try:
            fields[key] = float(value)
        except ValueError:
            pass
    return fields


@dataclass
class FairseqTrainLog:
    updates: int
    params: int | None
    tok_per_s_median: float | None     # median of fairseq's per-window target tokens/s (wps)
    tgt_tokens_per_update: float | None
    trajectory: list[dict]             # per log window: update, loss and ppl (base 2, label-smoothed)
    valid: list[dict]                  # per epoch: update, valid loss, nll_loss and ppl
    stop_reason: str


def parse_train_log(text: str) -> FairseqTrainLog:
    updates, params, windows, trajectory, valid, stop = 0, None, [], [], [], ""
    for line in text.splitlines():
        if m := INNER.search(line):
            f = inner_fields(m.group(2))
            updates = int(f.get("num_updates", updates))
            windows.append(f)
            trajectory.append({"update": updates, "loss": f.get("loss"), "ppl": f.get("ppl")})
        elif m := EPOCH_END.search(line):
            f = epoch_fields(m.group(3))
            updates = int(f.get("num_updates", updates))
            if m.group(1) == "valid":
                valid.append({"epoch": int(m.group(2)), "update": updates, "loss": f.get("loss"),
                              "nll_loss": f.get("nll_loss"), "ppl": f.get("ppl")})
        elif m := PARAMS.search(line):
            params = int(m.group(1).replace(",", ""))
        elif m := STOP.search(line):
            stop = m.group(1) or "patience: no better valid loss in a row"
    wps = [w["wps"] for w in windows if "wps" in w]
    wpb = [w["wpb"] for w in windows if "wpb" in w]
    return FairseqTrainLog(updates=updates, params=params,
                           tok_per_s_median=statistics.median(wps) if wps else None,
                           tgt_tokens_per_update=statistics.fmean(wpb) if wpb else None,
                           trajectory=trajectory, valid=valid, stop_reason=stop)


def parse_generate(text: str) -> list[str]:
    """fairseq-generate's D-<id> lines (the BPE removed), in input order."""
    hyps = {}
    for line in text.splitlines():
        if line.startswith("D-"):
            head, _, rest = line.partition("\t")
            hyps[int(head[2:])] = rest.partition("\t")[2]
    if sorted(hyps) != list(range(len(hyps))):
        raise PeerError(f"fairseq-generate wrote {len(hyps)} hypotheses with gaps in their ids")
    return [hyps[i] for i in range(len(hyps))]


# ------------------------------------------------------------------------------ scoring
def score(hypotheses: list[str], references: list[str]) -> dict[str, float | str]:
    """BLEU on the tokenized text as it is (tokenize none), chrF, and BLEU's sys_len / ref_len."""
    if len(hypotheses) != len(references):
        raise PeerError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu_metric, chrf_metric = BLEU(tokenize="none"), CHRF()
    bleu = bleu_metric.corpus_score(hypotheses, [references])
    chrf = chrf_metric.corpus_score(hypotheses, [references])
    return {"bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2),
            "len_ratio": round(bleu.sys_len / bleu.ref_len, 3) if bleu.ref_len else 0.0,
            "bleu_signature": str(bleu_metric.get_signature()), "chrf_signature": str(chrf_metric.get_signature())}


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------------------- pipeline
def check_inputs(s: FairseqSettings) -> None:
    if not (s.env_bin / "fairseq-train").is_file():
        raise PeerError(f"no fairseq env at {s.env_bin.parent}: run bash bench/peers/setup.sh fairseq")
    for split in SPLITS:
        for lang in (s.src, s.tgt):
            if not s.corpus(split, lang).is_file():
                raise PeerError(f"missing {s.corpus(split, lang)}: point --data at Multi30k's tok/ folder")


def step(cmd: list[str], log: Path, stdin: Path | None = None, stdout: Path | None = None,
         budget: float | None = None, grace: float = 120.0, threads: int = 2):
    """Run one stage measured; a failing stage raises with its log's path."""
    result = run_measured(cmd, log, budget=budget, grace=grace, stdin_path=stdin, stdout_path=stdout,
                          env=fairseq_env(threads), tag="fairseq")
    if result.rc != 0 and not result.interrupted:
        raise PeerError(f"{Path(cmd[0]).name} failed (exit status {result.rc}); see {log}")
    return result


def prepare(s: FairseqSettings) -> Path:
    """BPE and fairseq-preprocess; returns the binarized data folder."""
    bpe_dir, bin_dir = s.run_dir / "bpe", s.run_dir / "data-bin"
    bpe_dir.mkdir(parents=True)
    joint = bpe_dir / "train.joint"
    with open(joint, "wb") as out:
        for lang in (s.src, s.tgt):
            out.write(s.corpus("train", lang).read_bytes())
    codes = bpe_dir / "codes"
    step(learn_bpe_cmd(s), s.run_dir / "learn-bpe.log", stdin=joint, stdout=codes, threads=1)
    joint.unlink()
    for split in SPLITS:
        for lang in (s.src, s.tgt):
            out = bpe_dir / f"{split}.{lang}"
            step(apply_bpe_cmd(s, codes), s.run_dir / f"apply-bpe.{split}.{lang}.log", stdin=s.corpus(split, lang),
                 stdout=out, threads=1)
            if s.limit and split != "train":
                out.write_text("".join(f"{line}\n" for line in read_lines(out)[:s.limit]), encoding="utf-8")
    step(preprocess_cmd(s, bpe_dir, bin_dir), s.run_dir / "preprocess.log", threads=s.threads)
    return bin_dir


def run(s: FairseqSettings) -> dict:
    """The whole pipeline from a clean run folder; returns the JSON figures."""
    check_inputs(s)
    shutil.rmtree(s.run_dir, ignore_errors=True)
    bin_dir = prepare(s)
    save_dir = s.run_dir / "checkpoints"
    train_log = s.run_dir / "train.log"
    trained = step(train_cmd(s, bin_dir, save_dir), train_log, budget=s.budget + s.grace, threads=s.threads)
    stats = parse_train_log(train_log.read_text(encoding="utf-8", errors="replace"))
    result = {"system": "fairseq", "version": VERSION, "params": stats.params, "updates": stats.updates,
              "tok_per_s": stats.tok_per_s_median, "tgt_tokens_per_update": stats.tgt_tokens_per_update,
              "stop_reason": stats.stop_reason, "train_wall_s": round(trained.wall_s, 1),
              "peak_rss_mb": round(trained.peak_rss_mb, 1), "trajectory": stats.trajectory, "valid": stats.valid}
    checkpoint = save_dir / "checkpoint_best.pt"
    if not checkpoint.is_file():
        raise PeerError(f"fairseq-train saved no {checkpoint.name}; see {train_log}")
    for subset, name in zip(EVAL_SUBSETS, ("val", "test")):
        out = s.run_dir / f"{subset}.generate.txt"
        decoded = step(generate_cmd(s, bin_dir, checkpoint, subset), s.run_dir / f"{subset}.generate.log",
                       stdout=out, threads=s.threads)
        hypotheses = parse_generate(out.read_text(encoding="utf-8"))
        (s.run_dir / f"{subset}.hyp.{s.tgt}").write_text("\n".join(hypotheses) + "\n", encoding="utf-8")
        scores = score(hypotheses, read_lines(s.corpus(subset, s.tgt))[:s.limit])
        result.update({f"{name}_{key}": value for key, value in scores.items()})
        result[f"{name}_decode_wall_s"] = round(decoded.wall_s, 1)
    result["settings"] = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(s).items()}
    return result


def parse_args(argv: list[str] | None = None) -> FairseqSettings:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, required=True, help="seconds of training")
    ap.add_argument("--pair", default="en-de", help="en-de or en-fr")
    ap.add_argument("--data", type=Path, default=FairseqSettings.data, help="Multi30k's tok/ folder")
    ap.add_argument("--work", type=Path, default=FairseqSettings.work)
    ap.add_argument("--threads", type=int, default=FairseqSettings.threads)
    ap.add_argument("--merges", type=int, default=FairseqSettings.merges, help="joint BPE merges")
    ap.add_argument("--limit", type=int, help="validate and decode only the first N val and test sentences")
    smoke = ap.add_argument_group("the paper's settings, to change only for a smoke run on a busy machine")
    for name in ("max_tokens", "update_freq", "warmup_updates"):
        smoke.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(FairseqSettings, name))
    args = ap.parse_args(argv)
    src, _, tgt = args.pair.partition("-")
    if src != "en" or tgt not in ("de", "fr"):
        ap.error(f"--pair {args.pair}: expected en-de or en-fr")
    return FairseqSettings(budget=args.budget, data=args.data, work=args.work, src=src, tgt=tgt,
                           threads=args.threads, merges=args.merges, limit=args.limit, max_tokens=args.max_tokens,
                           update_freq=args.update_freq, warmup_updates=args.warmup_updates)


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    try:
        result = run(s)
    except PeerError as error:
        print(f"fairseq_peer: error: {error}", file=sys.stderr)
        return 2
    line = json.dumps(result)
    s.work.mkdir(parents=True, exist_ok=True)
    (s.work / "fairseq.json").write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
