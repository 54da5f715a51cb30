"""Train and evaluate one peer toolkit (JoeyNMT or OpenNMT-py) on the prepared pieces.

Two models (--model):
  gru          the matched GRU model (emb 256, biGRU encoder, GRU decoder 256, Bahdanau
               attention, dropout 0.1, Adam 1e-3 constant), on prepare_data.py's default pieces
  transformer  the peer's Transformer with the recipe of a seq2seq config (--config, default
               configs/en-hi.yaml: its layers, width, heads, feed-forward size, dropout, peak learning
               rate and warm-up, Adam beta2, token batch size, weight-average decay (OpenNMT only:
               JoeyNMT 2.3 has none), clipping, label smoothing and length penalty), on the pieces of
               prepare_data.py --config for the same config
Training runs for a wall-clock budget: the process is sent SIGINT when the budget is spent,
and the last checkpoint it saved is decoded (greedy and beam 5, batch 64) on each evaluation
set (--eval-sets: the IITB test set and FLORES-200 dev; for the Transformer also the Tatoeba
held-out pairs and IITB dev). One JSON line with speed, memory and quality figures is printed
and written to <work>/<peer>.json (<work>/<peer>-transformer.json).

Run it with any Python that has sentencepiece and sacrebleu (both peer envs do); the peer
itself runs from bench/peers/envs/<peer>. Prepare the data first (prepare_data.py).

    python bench/peers/run_peer.py --peer joeynmt --budget 3600
    python bench/peers/run_peer.py --peer opennmt --budget 120 --limit 200   # smoke run
    python bench/peers/run_peer.py --peer opennmt --model transformer --budget 1800
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from string import Template

import sacrebleu
import sentencepiece as spm

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEERS = ("joeynmt", "opennmt")
MODELS = ("gru", "transformer")
# Which models each peer has a template for.
TEMPLATES = {("joeynmt", "gru"): "joeynmt.yaml.in", ("opennmt", "gru"): "opennmt.yaml.in",
             ("joeynmt", "transformer"): "joeynmt-transformer.yaml.in",
             ("opennmt", "transformer"): "opennmt-transformer.yaml.in"}
# Evaluation sets decoded by default (each only if prepare_data.py wrote it; `test` always).
# The Transformer recipe adds IITB dev, on which "each peer's best recipe" is chosen, and the
# Tatoeba held-out pairs that prepare_data.py --config writes.
EVAL_SETS = {"gru": ("test", "flores"), "transformer": ("test", "flores", "tatoeba", "dev")}
# The prefix of each set's keys in the JSON line; the IITB test set keeps the bare names.
PREFIXES = {"test": ""}
VERSIONS = {"joeynmt": "2.3.0", "opennmt": "3.5.1"}
BEAMS = {"greedy": 1, "beam5": 5}
MB = 1024 * 1024


class PeerError(Exception):
    """A user-fixable problem: missing env or data, a peer that failed; the message says what."""


# ---------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """Everything that shapes the run; the matched-model defaults live here."""

    peer: str
    budget: float
    work: Path
    model: str = "gru"
    config: Path = REPO / "configs" / "en-hi.yaml"  # --model transformer: the seq2seq config it follows
    limit: int | None = None
    emb: int = 256
    hidden: int = 256          # JoeyNMT: per encoder direction and decoder; OpenNMT: see README
    dropout: float = 0.1
    lr: float = 1e-3
    # clip, label smoothing and the training length cap follow seq2seq's configs/en-hi-gru.yaml.
    clip: float = 1.0
    label_smoothing: float = 0.1
    seed: int = 42
    max_train_len: int = 80    # training pairs longer than this (pieces, either side) are dropped
    max_output_len: int = 200  # decoding stops after this many target pieces
    decode_batch: int = 64
    beam_alpha: float = 1.0    # GNMT length penalty ((5+len)/6)^alpha for beam search; 0 = none
    no_repeat_ngram: int = 4   # no n-gram of target pieces twice in one output (seq2seq's default); 0 = off
    joeynmt_batch_type: str = "token"
    joeynmt_batch_size: int = 1500
    opennmt_batch_size: int = 64
    # OpenNMT's default is 2 DataLoader workers; on a 2-core machine they compete with
    # torch's threads, and JoeyNMT loads in-process too, so the benchmark uses 0.
    opennmt_workers: int = 0
    log_every: int = 20        # steps between training log lines (throughput windows)
    # Checkpoint interval in steps. OpenNMT saves nothing on SIGINT, so this is all it has.
    # JoeyNMT saves on SIGINT; these saves are its fallback, made at a validation on a tiny
    # dev set, with the interval rounded up to a multiple of log_every.
    save_every: int = 100
    joeynmt_dev_sents: int = 32  # dev pairs per JoeyNMT validation (see JoeyNMT.write_dev)
    grace: float = 120.0       # seconds a peer may take to save and exit after SIGINT
    threads: int | None = None
    flores: bool = True        # bench/speed.py's switch for FLORES-200 dev; here it is part of eval_sets
    eval_sets: tuple[str, ...] = EVAL_SETS["gru"]  # decoded when prepare_data.py wrote them
    # The Transformer recipe, which transformer_recipe() sets from the seq2seq config (--config).
    layers: int = 3            # encoder and decoder each
    d_model: int = 256
    heads: int = 4
    ff_size: int = 1024
    attention_dropout: float = 0.0
    peak_lr: float = 2e-3      # reached at the end of the linear warm-up, then inverse-sqrt decay
    warmup_steps: int = 400
    adam_beta2: float = 0.98
    batch_tokens: int = 2000   # padded max(src, tgt) length x sentences, as seq2seq counts them
    ema_decay: float = 0.995   # seq2seq's training.ema_decay; OpenNMT's average_decay is 1 - this

    @property
    def tag(self) -> str:
        """The run's name: the peer, with the model unless it is the matched GRU."""
        return self.peer if self.model == "gru" else f"{self.peer}-{self.model}"

    @property
    def run_dir(self) -> Path:
        return self.work / "runs" / self.tag

    @property
    def noam_lr(self) -> float:
        """OpenNMT's learning_rate for decay_method noam that peaks at peak_lr.

        noam (onmt/utils/optimizers.py): lr = learning_rate * d_model^-0.5 *
        min(step^-0.5, step * warmup^-1.5), which at step = warmup is learning_rate /
        sqrt(d_model * warmup). Before it the rate rises linearly and after it falls as
        step^-0.5, as seq2seq's inverse_sqrt schedule does.
        """
        return self.peak_lr * (self.d_model * self.warmup_steps) ** 0.5

    @property
    def env_bin(self) -> Path:
        return HERE / "envs" / self.peer / "bin"


# ---------------------------------------------------------------- process measurement
@dataclass
class ProcResult:
    """How one child process (and everything it spawned) ran."""

    rc: int
    wall_s: float
    peak_rss_mb: float       # largest single process (kernel ru_maxrss via wait4)
    peak_tree_pss_mb: float  # largest sampled sum of PSS over the process group
    interrupted: bool
    started_at: float        # time.time() at launch


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the ")" that closes comm: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed PSS of a process group; PSS splits shared pages between forks."""

    def __init__(self, pgid: int, period: float = 0.5):
        super().__init__(daemon=True)
        self.pgid, self.period = pgid, period
        self.peak_kb = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            total = sum(_pss_kb(p) for p in _group_pids(self.pgid))
            self.peak_kb = max(self.peak_kb, total)
            self._done.wait(self.period)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _default_sigint() -> None:
    """Popen preexec_fn: give the child SIGINT's default action back.

    A command started with `&` from a non-interactive shell (a script, nohup, a job runner)
    starts with SIGINT ignored, and an ignored signal stays ignored across fork and exec.
    Python turns SIGINT into KeyboardInterrupt only when it starts with the default action,
    so without this the peers never see the budget's SIGINT and are killed unsaved.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_measured(cmd: list[str], log_path: Path, budget: float | None = None,
                 grace: float = 120.0, stdin_path: Path | None = None,
                 stdout_path: Path | None = None, env: dict | None = None, tag: str = "run_peer") -> ProcResult:
    """Run cmd in its own process group, logging stdout+stderr to log_path.

    stdin_path feeds the process; stdout_path, if given, takes stdout apart from the log.
    tag prefixes the progress lines, so bench/speed.py's lines say whose they are.

    With a budget, the group gets SIGINT after `budget` seconds and SIGKILL if it has not
    exited `grace` seconds later; the child gets SIGINT's default action even where ours is
    ignored (see _default_sigint). wait4 gives this child's own rusage, so each stage's
    peak RSS is its own (getrusage(RUSAGE_CHILDREN) would keep the max over all stages).
    """
    print(f"[{tag}] $ {' '.join(map(str, cmd))}" + (f" < {stdin_path}" if stdin_path else "")
          + (f" > {stdout_path}" if stdout_path else ""), flush=True)
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    with open(log_path, "wb") as log, open(stdout_path or os.devnull, "wb") as out:
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=out if stdout_path else log, stderr=log,
                                stdin=stdin, start_new_session=True, env=env,
                                preexec_fn=_default_sigint)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        interrupted, status, rusage = False, None, None
        deadline = t0 + budget if budget else None
        try:
            while True:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                now = time.time()
                if deadline and now >= deadline and not interrupted:
                    print(f"[{tag}] budget of {budget:.0f}s spent: SIGINT to the process group", flush=True)
                    os.killpg(proc.pid, signal.SIGINT)
                    interrupted, deadline = True, now + grace
                elif interrupted and now >= deadline:
                    print(f"[{tag}] still running {grace:.0f}s after SIGINT: SIGKILL", flush=True)
                    os.killpg(proc.pid, signal.SIGKILL)
                    deadline = float("inf")
                time.sleep(0.2)
        except BaseException:
            # run_peer itself was stopped (e.g. Ctrl-C): the peer is in its own session
            # and would not see the signal, so take its group down with us.
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        wall = time.time() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # keeps Popen from waiting again
        sampler.stop()
        # Reap any stray members of the group (e.g. DataLoader workers).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if stdin_path:
        stdin.close()
    return ProcResult(rc=proc.returncode, wall_s=wall, peak_rss_mb=rusage.ru_maxrss / 1024,
                      peak_tree_pss_mb=sampler.peak_kb / 1024, interrupted=interrupted,
                      started_at=t0)


# ------------------------------------------------------------------------ log parsing
def parse_ts(text: str, fmt: str = "%Y-%m-%d %H:%M:%S,%f") -> float:
    return datetime.strptime(text, fmt).timestamp()


@dataclass
class TrainStats:
    steps: int
    ckpt_step: int
    tgt_tokens: int
    seconds: float     # training-loop wall time over which tgt_tokens were processed, validation excluded
    startup_s: float   # launch -> training loop start (imports, data, vocab, model)
    params: int
    window_tok_per_s: list[float] = field(default_factory=list)
    valid_s: float = 0.0  # validation time left out of `seconds` (JoeyNMT's dev decoding)


# ------------------------------------------------------------------------------ peers
class Peer:
    """What differs between toolkits: configs, commands, logs, checkpoints."""

    name = ""

    def __init__(self, s: Settings):
        self.s = s
        self.pieces = (s.work / "pieces").resolve()
        self.vocab = (s.work / "vocab").resolve()
        self.run_dir = s.run_dir.resolve()

    def python(self) -> str:
        return str(self.s.env_bin / "python")

    def decode_env(self, env: dict) -> dict:
        return env

    def require_joint_vocabulary(self) -> None:
        """The Transformer recipe shares one vocabulary's embeddings: refuse a work folder with two."""
        if (self.vocab / "src.txt").read_bytes() != (self.vocab / "tgt.txt").read_bytes():
            raise PeerError(f"the Transformer shares one vocabulary and its embeddings, but {self.vocab} "
                            f"holds two: prepare the pieces with prepare_data.py --config {self.s.config}")

    def fill(self, template: str, **values) -> str:
        """The template with every ${...} field filled (a missing value raises KeyError)."""
        text = (HERE / template).read_text(encoding="utf-8")
        return Template(text).substitute(**values)


class JoeyNMT(Peer):
    name = "joeynmt"
    # A train.log line's timestamp, level and logger name.
    LOG_TS = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \w+ - [\w.]+ - "

    @property
    def dev(self) -> Path:
        return self.run_dir / "dev"

    def write_dev(self) -> None:
        """The first few dozen dev pairs. JoeyNMT saves a checkpoint only when it validates
        (and on SIGINT), and each validation decodes the whole dev set; this one takes ~1 s."""
        for lang in ("en", "hi"):
            take_lines(self.pieces / f"dev.{lang}", self.dev.with_suffix(f".{lang}"),
                       self.s.joeynmt_dev_sents)

    def config(self, beam: int = 1, load_model: Path | None = None) -> Path:
        s = self.s
        # JoeyNMT requires validation_freq to be a multiple of logging_freq.
        valid_every = -(-s.save_every // s.log_every) * s.log_every
        shared = dict(model_dir=self.run_dir / "model", seed=s.seed, pieces=self.pieces, dev=self.dev,
                      vocab=self.vocab, max_train_len=s.max_train_len, beam_size=beam, beam_alpha=s.beam_alpha,
                      no_repeat_ngram=s.no_repeat_ngram or -1, decode_batch=s.decode_batch,
                      max_output_len=s.max_output_len, clip=s.clip, label_smoothing=s.label_smoothing,
                      log_every=s.log_every, valid_every=valid_every, dropout=s.dropout)
        if s.model == "transformer":
            self.require_joint_vocabulary()
            text = self.fill(TEMPLATES[s.peer, s.model], **shared, layers=s.layers, d_model=s.d_model,
                             heads=s.heads, ff_size=s.ff_size, lr=s.peak_lr, warmup_steps=s.warmup_steps,
                             adam_beta2=s.adam_beta2, batch_size=s.batch_tokens)
        else:
            text = self.fill(TEMPLATES[s.peer, s.model], **shared, lr=s.lr, batch_size=s.joeynmt_batch_size,
                             batch_type=s.joeynmt_batch_type, emb=s.emb, hidden=s.hidden)
        if load_model:
            text = text.replace("testing:\n", f"testing:\n  load_model: \"{load_model}\"\n", 1)
        path = self.run_dir / f"joeynmt.beam{beam}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def train_cmd(self) -> list[str]:
        self.write_dev()
        return [self.python(), "-m", "joeynmt", "train", str(self.config()), "--skip-test"]

    def checkpoint(self) -> Path:
        """The newest save: latest.ckpt, which JoeyNMT points at every save it finishes, or,
        if it was killed between writing a checkpoint and relinking, the highest step."""
        model = self.run_dir / "model"
        if (model / "latest.ckpt").is_file():  # False when missing or dangling
            return (model / "latest.ckpt").resolve()
        ckpts = sorted(model.glob("[0-9]*.ckpt"), key=lambda p: int(p.stem))
        if not ckpts:
            raise PeerError(f"JoeyNMT saved no checkpoint (it saves on SIGINT and every "
                            f"{self.s.save_every} steps); see {self.run_dir / 'train.stdout.log'}")
        return ckpts[-1]

    def saved_stats(self, ckpt: Path) -> dict:
        """The checkpoint's training counters; total_tokens is exact: every target token
        (EOS included, padding excluded) JoeyNMT trained on up to that step."""
        code = ("import json, torch; ck = torch.load(%r, map_location='cpu', weights_only=True);"
                "print(json.dumps(ck['stats_state']))" % str(ckpt))
        return json.loads(subprocess.run([self.python(), "-c", code], check=True,
                                         capture_output=True, text=True).stdout)

    def step_done_at(self, log: str, step: int) -> float:
        """When `step` was done: the Interrupt line for the SIGINT save, else that step's
        progress line (periodic saves fall on logged steps), else the log's end (epoch cap)."""
        for event in (rf"Interrupt at epoch \d+, step {step}\.", rf"Epoch\s+\d+, Step:\s+{step},"):
            m = re.search(self.LOG_TS + event, log, re.M)
            if m:
                return parse_ts(m.group(1))
        return parse_ts(re.findall(self.LOG_TS, log, re.M)[-1])

    def train_stats(self, res: ProcResult) -> TrainStats:
        """Tokens and seconds both run to the decoded checkpoint's step. The seconds leave out
        validation: JoeyNMT's own "Generation took" timer around dev decoding (OpenNMT does
        not validate). Checkpoint writes stay in, as they do in OpenNMT's figure."""
        log = (self.run_dir / "model" / "train.log").read_text(encoding="utf-8")
        start = re.search(self.LOG_TS + r"EPOCH 1$", log, re.M)
        if not start:
            raise PeerError(f"JoeyNMT never started its training loop; see {self.run_dir / 'train.stdout.log'}")
        stats = self.saved_stats(self.checkpoint())
        t_start, t_end = parse_ts(start.group(1)), self.step_done_at(log, stats["steps"])
        valid_s = sum(float(m.group(2)) for m in
                      re.finditer(self.LOG_TS + r"Generation took ([\d.]+)\[sec\]", log, re.M)
                      if parse_ts(m.group(1)) <= t_end)
        windows = [float(m) for m in re.findall(r"Tokens per Sec:\s+([\d.]+)", log)]
        params = re.search(r"Total params: (\d+)", log)
        return TrainStats(steps=stats["steps"], ckpt_step=stats["steps"],
                          tgt_tokens=stats["total_tokens"], seconds=t_end - t_start - valid_s,
                          startup_s=t_start - res.started_at,
                          params=int(params.group(1)) if params else 0,
                          window_tok_per_s=windows, valid_s=valid_s)

    def decode_cmd(self, beam: int, src: Path, out: Path) -> tuple[list[str], Path, Path]:
        """Translate stdin to stdout: JoeyNMT 2.3.0's translate --output-path crashes
        (AttributeError: 'BaseConfig' object has no attribute 'n_best'); logs go to stderr."""
        cfg = self.config(beam=beam, load_model=self.checkpoint())
        return [self.python(), "-m", "joeynmt", "translate", str(cfg)], src, out

    @staticmethod
    def decode_seconds(log: str, n: int) -> float:
        m = re.search(r"Generation took ([\d.]+)\[sec\]", log)
        if not m:
            raise PeerError("JoeyNMT decode log has no 'Generation took' line")
        return float(m.group(1))


class OpenNMT(Peer):
    name = "opennmt"

    def write_vocab(self) -> None:
        # OpenNMT adds its own specials (<unk> <blank> <s> </s>); drop SentencePiece's so
        # both sides keep exactly 8000 entries.
        specials = {"<pad>", "<unk>", "<s>", "</s>"}
        for side, dest in (("src", "vocab.src"), ("tgt", "vocab.tgt")):
            pieces = (self.vocab / f"{side}.txt").read_text(encoding="utf-8").splitlines()
            kept = [p for p in pieces if p not in specials]
            (self.run_dir / dest).write_text("\n".join(kept) + "\n", encoding="utf-8")
        self.vocab_size = len(kept) + len(specials)  # the target side's, written last

    def train_cmd(self) -> list[str]:
        s = self.s
        self.write_vocab()
        n_train = sum(1 for _ in open(self.pieces / "train.en", encoding="utf-8"))
        # Each DataLoader worker reads every k-th example into its own bucket, so a bucket
        # holding the whole corpus is n_train / workers per worker.
        bucket_size = -(-n_train // max(1, s.opennmt_workers))
        shared = dict(run_dir=self.run_dir, seed=s.seed, pieces=self.pieces, vocab_size=self.vocab_size,
                      max_train_len=s.max_train_len, dropout=s.dropout, clip=s.clip,
                      label_smoothing=s.label_smoothing, bucket_size=bucket_size,
                      num_workers=s.opennmt_workers, log_every=s.log_every, save_every=s.save_every)
        if s.model == "transformer":
            self.require_joint_vocabulary()
            text = self.fill(
                TEMPLATES[s.peer, s.model], **shared, layers=s.layers, d_model=s.d_model, heads=s.heads,
                ff_size=s.ff_size, attention_dropout=s.attention_dropout, lr=f"{s.noam_lr:.6g}",
                warmup_steps=s.warmup_steps, adam_beta2=s.adam_beta2, batch_size=s.batch_tokens,
                average_decay=f"{1 - s.ema_decay:.6g}")
        else:
            text = self.fill(TEMPLATES[s.peer, s.model], **shared, emb=s.emb, hidden=s.hidden, lr=s.lr,
                             batch_size=s.opennmt_batch_size)
        cfg = self.run_dir / "opennmt.yaml"
        cfg.write_text(text, encoding="utf-8")
        return [str(self.s.env_bin / "onmt_train"), "-config", str(cfg)]

    def checkpoint(self) -> Path:
        ckpts = sorted(self.run_dir.glob("model_step_*.pt"),
                       key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        if not ckpts:
            raise PeerError(
                f"OpenNMT saved no checkpoint within the budget (it saves every "
                f"{self.s.save_every} steps): raise --budget or lower --save-every")
        return ckpts[-1]

    def train_stats(self, res: ProcResult) -> TrainStats:
        # onmt_train's -log_file stops receiving records once training starts (its
        # logger is set up again in train_single), so read the console copy instead.
        log = (self.run_dir / "train.stdout.log").read_text(encoding="utf-8", errors="replace")
        ts_re = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO\] "
        start = re.search(ts_re + r"Start training loop", log, re.M)
        if not start:
            raise PeerError(f"OpenNMT never started its training loop; see {self.run_dir / 'train.stdout.log'}")
        # Step 20/100000000; acc: ..; bsz: src/tgt/sents; src/tgt tok/s; N sec;
        report = re.compile(ts_re + r"Step\s+(\d+)(?:/\s*\d+)?;.*?bsz:\s*([\d.]+)/\s*([\d.]+)/"
                            r"\s*([\d.]+);\s*([\d.]+)/\s*([\d.]+) tok/s;", re.M)
        tokens, prev_step, t_last, windows = 0.0, 0, None, []
        for m in report.finditer(log):
            step = int(m.group(2))
            # bsz tgt = target tokens (incl. EOS) per batch, averaged over the window.
            tokens += float(m.group(4)) * (step - prev_step)
            prev_step, t_last = step, parse_ts(m.group(1))
            windows.append(float(m.group(7)))
        if t_last is None:
            raise PeerError(f"OpenNMT logged no training step; see {self.run_dir / 'train.stdout.log'}")
        params = re.search(r"\* number of parameters: (\d+)", log)
        t_start = parse_ts(start.group(1))
        ckpt_step = int(self.checkpoint().stem.rsplit("_", 1)[1])
        return TrainStats(steps=prev_step, ckpt_step=ckpt_step, tgt_tokens=int(round(tokens)),
                          seconds=t_last - t_start, startup_s=t_start - res.started_at,
                          params=int(params.group(1)) if params else 0,
                          window_tok_per_s=windows)

    def decode_cmd(self, beam: int, src: Path, out: Path) -> tuple[list[str], None, None]:
        s = self.s
        cmd = [str(s.env_bin / "onmt_translate"), "-model", str(self.checkpoint()),
               "-src", str(src), "-output", str(out), "-beam_size", str(beam),
               "-batch_size", str(s.decode_batch), "-batch_type", "sents",
               "-max_length", str(s.max_output_len), "-min_length", "1",
               "-block_ngram_repeat", str(s.no_repeat_ngram),
               "-seed", str(s.seed), "-report_time"]
        if beam > 1 and s.beam_alpha > 0:
            # "wu" is the GNMT penalty ((5+len)/6)^alpha, the one JoeyNMT's beam_alpha uses.
            cmd += ["-length_penalty", "wu", "-alpha", str(s.beam_alpha)]
        else:
            cmd += ["-length_penalty", "none"]
        return cmd, None, None

    def decode_env(self, env: dict) -> dict:
        # onmt_translate calls torch.load without weights_only, and torch >= 2.6 then
        # refuses the argparse.Namespace inside OpenNMT checkpoints. These are our own files.
        return env | {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}

    @staticmethod
    def decode_seconds(log: str, n: int) -> float:
        # The per-sentence average has more digits than "Total translation time (s): %.1f".
        m = re.search(r"Average translation time \(ms\): ([\d.]+)", log)
        if not m:
            raise PeerError("OpenNMT decode log has no 'Average translation time' line")
        return float(m.group(1)) * n / 1000


# ------------------------------------------------------------------------- evaluation
def depiece(sp: spm.SentencePieceProcessor, line: str) -> str:
    """Space-separated pieces -> text; unknown pieces (<unk>) are dropped, not rendered."""
    ids = [sp.piece_to_id(p) for p in line.split()]
    return sp.decode([i for i in ids if i != sp.unk_id()])


def score(hyps: list[str], refs: list[str]) -> dict:
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(hyps, [refs])
    c = chrf.corpus_score(hyps, [refs])
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2),
            "len_ratio": round(b.sys_len / b.ref_len, 4) if b.ref_len else 0.0,
            "bleu_sig": str(bleu.get_signature()), "chrf_sig": str(chrf.get_signature())}


def take_lines(src: Path, dest: Path, limit: int | None) -> int:
    lines = src.read_text(encoding="utf-8").splitlines()[:limit]
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


# -------------------------------------------------------------------------------- main
def decode_set(peer: Peer, s: Settings, env: dict, sp: spm.SentencePieceProcessor, split: str,
               prefix: str) -> dict:
    """Decode the first --limit sentences of one evaluation set greedy and with beam 5, and score them.

    Keys are prefixed (e.g. "flores_") so that several sets fit in one JSON line; the IITB
    test set keeps the bare names the speed figures have always had.
    """
    src = s.run_dir / f"{split}.src.pieces"
    n = take_lines(s.work / "pieces" / f"{split}.en", src, s.limit)
    refs = (s.work / "raw" / f"{split}.hi").read_text(encoding="utf-8").splitlines()[:n]
    result: dict = {f"{prefix}sents" if prefix else "test_sents": n}
    for name, beam in BEAMS.items():
        out = s.run_dir / f"{split}.{name}.pieces"
        log_path = s.run_dir / f"decode.{split}.{name}.log"
        cmd, stdin, stdout = peer.decode_cmd(beam, src, out)
        dec = run_measured(cmd, log_path, stdin_path=stdin, stdout_path=stdout, env=peer.decode_env(env))
        log = log_path.read_text(encoding="utf-8", errors="replace")
        if dec.rc != 0 or not out.exists():
            raise PeerError(f"{s.peer} decoding ({split}, {name}) failed with rc={dec.rc}; see {log_path}")
        hyps = [depiece(sp, line) for line in out.read_text(encoding="utf-8").splitlines()]
        if len(hyps) != n:
            raise PeerError(f"{s.peer} wrote {len(hyps)} {name} outputs for {n} inputs ({out})")
        (s.run_dir / f"{split}.{name}.hi").write_text("\n".join(hyps) + "\n", encoding="utf-8")
        secs = peer.decode_seconds(log, n)
        scores = score(hyps, refs)
        key = f"{prefix}{name}"
        result.update({
            f"{key}_sent_per_s": round(n / secs, 2) if secs > 0 else None,
            f"{key}_decode_s": round(secs, 2), f"{key}_wall_s": round(dec.wall_s, 2),
            f"{key}_peak_rss_mb": round(dec.peak_rss_mb, 1),
            f"{key}_bleu": scores["bleu"], f"{key}_chrf": scores["chrf"],
            f"{key}_len_ratio": scores["len_ratio"],
        })
        result["bleu_signature"], result["chrf_signature"] = scores["bleu_sig"], scores["chrf_sig"]
    return result


def check_ready(s: Settings) -> None:
    if (s.peer, s.model) not in TEMPLATES:
        raise PeerError(f"no {s.model} template for {s.peer} yet (have: "
                        f"{', '.join(f'{p} {m}' for p, m in TEMPLATES)})")
    exe = s.env_bin / "python"
    if not exe.exists():
        raise PeerError(f"no env for {s.peer} at {exe.parent.parent}: run bash bench/peers/setup.sh {s.peer}")
    prepare = f"bench/peers/prepare_data.py --out {s.work}" + (f" --config {s.config}"
                                                              if s.model == "transformer" else "")
    for rel in ("pieces/train.en", "pieces/train.hi", "pieces/dev.en", "pieces/dev.hi",
                "pieces/test.en", "raw/test.hi",
                "vocab/src.txt", "vocab/tgt.txt", "spm/tgt.model"):
        if not (s.work / rel).exists():
            raise PeerError(f"missing {s.work / rel}: run {prepare} first")


def run(s: Settings) -> dict:
    check_ready(s)
    peer = {"joeynmt": JoeyNMT, "opennmt": OpenNMT}[s.peer](s)
    if s.run_dir.exists():
        shutil.rmtree(s.run_dir)
    s.run_dir.mkdir(parents=True)
    env = dict(os.environ)
    if s.threads:
        env.update(OMP_NUM_THREADS=str(s.threads), MKL_NUM_THREADS=str(s.threads))

    train = run_measured(peer.train_cmd(), s.run_dir / "train.stdout.log", budget=s.budget,
                         grace=s.grace, env=env)
    print(f"[run_peer] training process ended: rc={train.rc} after {train.wall_s:.0f}s", flush=True)
    if train.rc != 0 and not train.interrupted:
        raise PeerError(f"{s.peer} training failed with rc={train.rc} before the budget was spent; "
                        f"see {s.run_dir / 'train.stdout.log'}")
    stats = peer.train_stats(train)
    ckpt = peer.checkpoint()
    print(f"[run_peer] step {stats.steps}, checkpoint {ckpt.name} (step {stats.ckpt_step})", flush=True)

    result = {
        "peer": s.peer, "model": s.model, "version": VERSIONS[s.peer], "budget_s": s.budget,
        "params": stats.params, "train_steps": stats.steps, "ckpt_step": stats.ckpt_step,
        "train_tgt_tokens": stats.tgt_tokens, "train_seconds": round(stats.seconds, 2),
        "train_valid_s": round(stats.valid_s, 2),
        "train_tok_per_s": round(stats.tgt_tokens / stats.seconds, 1) if stats.seconds > 0 else 0.0,
        "train_window_tok_per_s_median": (sorted(stats.window_tok_per_s)[len(stats.window_tok_per_s) // 2]
                                          if stats.window_tok_per_s else None),
        "train_tgt_tokens_per_step": round(stats.tgt_tokens / stats.steps, 1) if stats.steps else 0.0,
        "train_startup_s": round(stats.startup_s, 2), "train_wall_s": round(train.wall_s, 2),
        "train_peak_rss_mb": round(train.peak_rss_mb, 1),
        "train_peak_tree_pss_mb": round(train.peak_tree_pss_mb, 1),
    }

    sp = spm.SentencePieceProcessor(model_file=str(s.work / "spm" / "tgt.model"))
    for split in s.eval_sets:
        if split == "test" or (s.work / "pieces" / f"{split}.en").exists():
            result.update(decode_set(peer, s, env, sp, split, PREFIXES.get(split, f"{split}_")))
        else:
            hint = {"flores": " (python -m seq2seq download flores200, then prepare_data.py again)",
                    "tatoeba": f" (written by prepare_data.py --config {s.config})"}.get(split, "")
            print(f"[run_peer] no {s.work / 'pieces' / f'{split}.en'}: {split} skipped{hint}", flush=True)
    result["settings"] = {"model": s.model, "dropout": s.dropout,
                          "clip": s.clip, "label_smoothing": s.label_smoothing,
                          "max_train_len": s.max_train_len,
                          "max_output_len": s.max_output_len, "decode_batch": s.decode_batch,
                          "beam_alpha": s.beam_alpha, "no_repeat_ngram": s.no_repeat_ngram,
                          "seed": s.seed, "threads": s.threads}
    if s.model == "transformer":
        result["settings"].update({
            "layers": s.layers, "d_model": s.d_model, "heads": s.heads, "ff_size": s.ff_size,
            "peak_lr": s.peak_lr, "warmup_steps": s.warmup_steps, "adam_betas": [0.9, s.adam_beta2],
            "batch": f"tokens:{s.batch_tokens}"})
        if s.peer == "opennmt":  # JoeyNMT has neither a separate attention dropout nor a weight average
            result["settings"].update({"attention_dropout": s.attention_dropout, "noam_learning_rate": s.noam_lr,
                                       "ema_decay": s.ema_decay})
    else:
        result["settings"].update({
            "emb": s.emb, "hidden": s.hidden, "lr": s.lr,
            "batch": (f"{s.joeynmt_batch_type}:{s.joeynmt_batch_size}" if s.peer == "joeynmt"
                      else f"sents:{s.opennmt_batch_size}")})
    return result


def transformer_recipe(config_path: Path) -> dict:
    """The Settings fields of the Transformer recipe, read from a seq2seq config so the peer follows it."""
    sys.path.insert(0, str(REPO))
    from seq2seq.config import load_config
    from seq2seq.errors import UserError

    try:
        config = load_config(config_path)
    except UserError as error:
        raise SystemExit(f"run_peer: error: {error}") from None
    m, t = config.model, config.training
    if m.type != "transformer" or m.encoder_layers != m.decoder_layers or t.batch_unit != "tokens":
        raise SystemExit(f"run_peer: error: {config_path}: the peer template needs a Transformer with as many "
                         "encoder as decoder layers and token batches")
    return {"layers": m.encoder_layers, "d_model": m.d_model, "heads": m.heads, "ff_size": m.ff_size,
            "attention_dropout": m.attention_dropout, "peak_lr": t.lr, "warmup_steps": t.warmup_steps,
            "adam_beta2": t.adam_betas[1], "batch_tokens": t.batch_size, "ema_decay": t.ema_decay,
            "dropout": m.dropout, "clip": t.clip_grad_norm, "label_smoothing": t.label_smoothing,
            "length_penalty": config.decoding.length_penalty, "no_repeat_ngram": config.decoding.no_repeat_ngram}


def parse_args(argv: list[str] | None) -> Settings:
    d = Settings(peer="", budget=0, work=Path())
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", required=True, choices=PEERS)
    ap.add_argument("--model", choices=MODELS, default="gru",
                    help="gru: the matched GRU model; transformer: the peer's Transformer with "
                         "seq2seq's configs/en-hi.yaml recipe")
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "en-hi.yaml",
                    help="--model transformer: the seq2seq config whose model, training and decoding "
                         "settings the peer's Transformer takes (default: configs/en-hi.yaml)")
    ap.add_argument("--budget", type=float, required=True, help="training wall-clock seconds")
    ap.add_argument("--work", type=Path, help="prepare_data.py --out dir (default: bench/peers/work, "
                                              "or bench/peers/work-en-hi for --model transformer)")
    ap.add_argument("--limit", type=int, help="decode only the first N sentences of each evaluation set")
    ap.add_argument("--eval-sets", help="comma-separated sets to decode, each where prepared (default: "
                                        + "; ".join(f"{m}: {','.join(v)}" for m, v in EVAL_SETS.items()) + ")")
    ap.add_argument("--skip-flores", action="store_true", help="leave FLORES-200 dev out of the evaluation sets")
    ap.add_argument("--hidden", type=int, default=d.hidden)
    ap.add_argument("--max-output-len", type=int, default=d.max_output_len)
    ap.add_argument("--max-train-len", type=int, default=d.max_train_len)
    ap.add_argument("--clip", type=float, help=f"gradient-norm clipping (default: {d.clip}, or the config's)")
    ap.add_argument("--label-smoothing", type=float,
                    help=f"default: {d.label_smoothing}, or the config's with --model transformer")
    ap.add_argument("--beam-alpha", type=float,
                    help=f"GNMT length penalty alpha (default: {d.beam_alpha} for gru, "
                         "the config's decoding.length_penalty for transformer)")
    ap.add_argument("--joeynmt-batch-type", choices=("token", "sentence"), default=d.joeynmt_batch_type)
    ap.add_argument("--joeynmt-batch-size", type=int, default=d.joeynmt_batch_size)
    ap.add_argument("--opennmt-workers", type=int, default=d.opennmt_workers)
    ap.add_argument("--log-every", type=int, default=d.log_every)
    ap.add_argument("--save-every", type=int, default=d.save_every,
                    help="checkpoint interval in steps: OpenNMT's only saves, "
                         "JoeyNMT's fallback to its SIGINT save")
    ap.add_argument("--threads", type=int, help="OMP/MKL threads for the peer (default: torch's)")
    a = ap.parse_args(argv)
    if a.budget <= 0:
        ap.error("--budget must be > 0 seconds")
    work = a.work or HERE / ("work-en-hi" if a.model == "transformer" else "work")
    eval_sets = tuple(x for x in a.eval_sets.split(",") if x) if a.eval_sets else EVAL_SETS[a.model]
    if "test" not in eval_sets:
        eval_sets = ("test", *eval_sets)  # the speed figures are the IITB test set's
    if a.skip_flores:
        eval_sets = tuple(x for x in eval_sets if x != "flores")
    recipe = transformer_recipe(a.config) if a.model == "transformer" else {}
    if a.beam_alpha is None:
        a.beam_alpha = recipe.pop("length_penalty") if recipe else d.beam_alpha
    if a.clip is None:
        a.clip = recipe.pop("clip", d.clip)
    if a.label_smoothing is None:
        a.label_smoothing = recipe.pop("label_smoothing", d.label_smoothing)
    for key in ("length_penalty", "clip", "label_smoothing"):  # a command-line value wins
        recipe.pop(key, None)
    return Settings(**recipe, peer=a.peer, budget=a.budget, work=work, model=a.model, config=a.config,
                    limit=a.limit, hidden=a.hidden,
                    max_output_len=a.max_output_len, max_train_len=a.max_train_len,
                    clip=a.clip, label_smoothing=a.label_smoothing,
                    beam_alpha=a.beam_alpha, joeynmt_batch_type=a.joeynmt_batch_type,
                    joeynmt_batch_size=a.joeynmt_batch_size, opennmt_workers=a.opennmt_workers,
                    log_every=a.log_every, save_every=a.save_every, threads=a.threads,
                    eval_sets=eval_sets, flores="flores" in eval_sets)


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    try:
        result = run(s)
    except PeerError as e:
        print(f"run_peer: error: {e}", file=sys.stderr)
        return 1
    line = json.dumps(result, ensure_ascii=False)
    (s.work / f"{s.tag}.json").write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
