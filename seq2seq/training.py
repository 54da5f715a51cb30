"""The training loop: teacher forcing, schedules, validation, checkpoints, TensorBoard, resume."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from seq2seq.checkpoint import load_checkpoint, model_payload, save_checkpoint
from seq2seq.config import Config, TrainingConfig, config_to_dict, parse_duration
from seq2seq.data.batching import Batch, make_batches
from seq2seq.data.catalogue import ensure_files
from seq2seq.data.corpus import Corpus, check_files_exist, data_files, load_eval_sets
from seq2seq.data.prepare import open_training_data, prepare_training_data
from seq2seq.distributed import World, init_world
from seq2seq.ema import WeightAverage
from seq2seq.errors import UserError
from seq2seq.evaluation import Scores, score
from seq2seq.files import atomic_write
from seq2seq.loss import sequence_loss
from seq2seq.model.build import build_model, count_parameters
from seq2seq.translator import Translator, select_device
from seq2seq.validation import Validator, improves

log = logging.getLogger("seq2seq")


def teacher_forcing_ratio(config: TrainingConfig, step: int) -> float:
    """Probability of feeding the reference token at this step (scheduled sampling, Bengio et al. 2015)."""
    decay = {
        "none": lambda: 1.0,
        "linear": lambda: max(0.0, 1.0 - step / config.sampling_decay),
        "exponential": lambda: config.sampling_decay ** step,
        "inverse_sigmoid": lambda: config.sampling_decay / (config.sampling_decay + math.exp(
            min(step / config.sampling_decay, 700.0))),
    }[config.scheduled_sampling]()
    if config.scheduled_sampling == "none":
        return config.teacher_forcing_ratio
    return max(config.sampling_min_ratio, config.teacher_forcing_ratio * decay)


@dataclass
class LearningRate:
    """The schedule as plain state: a step-dependent factor times a plateau scale."""

    config: TrainingConfig
    scale: float = 1.0
    best: float | None = None
    bad_validations: int = 0

    def __post_init__(self) -> None:
        self.budget_seconds = parse_duration(self.config.max_time)  # parsed once, not at every update

    def at(self, step: int, elapsed: float = 0.0) -> float:
        """The rate for this update; elapsed (seconds trained so far) matters only to linear_decay."""
        c = self.config
        warmup = min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        factor = warmup
        if c.schedule == "inverse_sqrt":
            factor = warmup * math.sqrt(max(c.warmup_steps, 1) / max(step + 1, c.warmup_steps, 1))
        if c.schedule == "linear_decay":
            factor = min(warmup, 1.0 - self.budget_used(step, elapsed))
        return max(c.min_lr, c.lr * factor * self.scale)

    def budget_used(self, step: int, elapsed: float) -> float:
        """The fraction of the training budget spent, by steps or by time, whichever is further along
        (the budget-aware decay of Li et al. 2020, "Budgeted training")."""
        used = [step / self.config.max_steps] if self.config.max_steps else []
        used += [elapsed / self.budget_seconds] if self.budget_seconds else []
        return min(1.0, max(used, default=0.0))

    def observe(self, value: float, higher_is_better: bool) -> None:
        if self.config.schedule != "plateau":
            return
        if improves(value, self.best, higher_is_better):
            self.best, self.bad_validations = value, 0
            return
        self.bad_validations += 1
        if self.bad_validations >= self.config.plateau_patience:
            self.scale *= self.config.plateau_factor
            self.bad_validations = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad_validations = state["scale"], state["best"], state["bad_validations"]


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint so a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0
    best_score: float | None = None
    bad_validations: int = 0
    nonfinite_in_row: int = 0
    nonfinite_total: int = 0
    history: list = field(default_factory=list)

    def state_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StopReason:
    """Why training ended. An interrupted run (a signal) skips the final validation and test decoding:
    it is meant to be resumed."""

    message: str
    interrupted: bool = False

    def __str__(self) -> str:
        return self.message


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves and exits cleanly."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __enter__(self) -> StopRequest:
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, number: int, frame: object) -> None:
        self.signal_name = signal.Signals(number).name

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def setup_logging(run_path: Path) -> None:
    """Console and run_path/train.log; messages go through tqdm so progress bars stay intact."""

    class TqdmHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            tqdm.write(self.format(record))

    log.setLevel(logging.INFO)
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    console = TqdmHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    file_handler = logging.FileHandler(run_path / "train.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(console)
    log.addHandler(file_handler)
    log.propagate = False


def cpu_computes_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX): about 3x float32's matrix speed."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe is not None and probe())


def autocast_dtype(config: TrainingConfig, device: torch.device) -> torch.dtype | None:
    """On CUDA, auto and bf16 are bf16 where the GPU has it, else fp16 (with a GradScaler). On a CPU only an
    explicit bf16 turns it on, and only where the CPU computes bf16 natively: emulated bf16 is slower than float32.
    So a config that asks for bf16 runs everywhere, at the best precision the hardware offers."""
    if config.amp == "off":
        return None
    if device.type == "cpu":
        if config.amp != "bf16":
            return None
        if not cpu_computes_bf16():
            log.warning("training.amp: bf16, but this CPU has no native bf16 (AVX512-BF16 or AMX); "
                        "training in float32")
            return None
        return torch.bfloat16
    if device.type != "cuda":
        return None
    if config.amp == "fp16" or not torch.cuda.is_bf16_supported():
        if config.amp == "bf16":
            log.warning("training.amp: bf16, but this GPU has no bf16; training with fp16 autocast")
        return torch.float16
    return torch.bfloat16


def open_run_dir(run_path: Path, resume: bool, world: World) -> list[Path]:
    """Create or reopen the run folder; returns its periodic checkpoints, oldest first."""
    existing = checkpoint_files(run_path)
    if existing and not resume:
        raise UserError(f"{run_path} already holds a run; add --resume to continue it, "
                        "or choose another name (--set name=...)")
    if resume and not existing:
        raise UserError(f"{run_path}: nothing to resume (no step-*.pt checkpoint)")
    if world.is_main:
        try:
            run_path.mkdir(parents=True, exist_ok=True)
            probe = run_path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise UserError(f"{run_path}: cannot write the run directory ({error.strerror})") from None
    world.barrier()
    return existing


def checkpoint_files(run_path: Path) -> list[Path]:
    """Periodic checkpoints, oldest first."""
    return sorted(run_path.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))


class Trainer:
    def __init__(self, config: Config, resume: bool = False):
        self.config = config
        self.run_path = config.run_path
        t = config.training
        self.device = select_device(t.device)
        self.world = init_world(self.device.type)
        if self.world.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
        self.startup_began: float | None = time.monotonic()  # cleared once the first update has been timed
        if self.world.is_main:
            ensure_files(config.data.download, Path(config.data.root), data_files(config.data))
        self.world.barrier()
        check_files_exist(config.data)
        self.eval_sets = load_eval_sets(config.data, config.seed)  # data errors come before any file is written
        existing = open_run_dir(self.run_path, resume, self.world)
        if self.world.is_main:
            setup_logging(self.run_path)
            resolved = yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True).encode("utf-8")
            atomic_write(self.run_path / "config.yaml", lambda stream: stream.write(resolved))
        else:
            log.setLevel(logging.WARNING)
        if t.threads:
            torch.set_num_threads(t.threads)
        self._seed(config.seed)
        folder = prepare_training_data(config, self.eval_sets, self.run_path) if self.world.is_main else None
        self.training_data = data = open_training_data(self.world.broadcast(folder), self.run_path, config)
        log.info("training data: %s", data.report.summary())
        self.src_vocab, self.tgt_vocab, self.train_data = data.src_vocab, data.tgt_vocab, data.corpus
        self.model = build_model(config.model, len(self.src_vocab), len(self.tgt_vocab)).to(self.device)
        log.info("model: %s parameters, device %s", f"{count_parameters(self.model):,}", self.device)
        optimizer_class = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        # the fused kernel does an update in one pass over each tensor instead of about ten
        self.optimizer = optimizer_class(
            self.model.parameters(), lr=t.lr, betas=tuple(t.adam_betas), weight_decay=t.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.lr = LearningRate(t)
        self.amp_dtype = autocast_dtype(t, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.progress = Progress()
        self.ema = WeightAverage(self.model, t.ema_decay) if t.ema_decay else None
        if resume:
            self._restore(existing[-1])
        # DistributedDataParallel averages gradients across processes during backward
        self.network = DistributedDataParallel(self.model) if self.world.active else self.model
        self.writer = SummaryWriter(str(self.run_path)) if self.world.is_main else None
        self.translator = Translator(self.model, self.src_vocab, self.tgt_vocab, config.decoding, self.device)
        dev = self.eval_sets.dev
        self.validator = None if dev is None or not self.world.is_main else Validator(
            self.translator, dev, t.valid_limit, t.batch_size, t.batch_unit, t.samples, self.writer)

    def _seed(self, seed: int) -> None:
        random.seed(seed)
        torch.manual_seed(seed)

    def _restore(self, path: Path) -> None:
        payload = load_checkpoint(path)
        state = payload["training"]
        self.model.load_state_dict(payload["model"])
        if self.ema is not None:  # "model" holds the average, the training state the weights being trained
            self.ema.take_from_model()
            self.model.load_state_dict(state["trained_weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr.load_state_dict(state["lr"])
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"])
        random.setstate(state["rng"]["python"])
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        log.info("resumed from %s at step %d (epoch %d)", path, self.progress.step, self.progress.epoch + 1)

    def _payload(self) -> dict:
        training = {
            "optimizer": self.optimizer.state_dict(),
            "lr": self.lr.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": self.progress.state_dict(),
            "rng": {
                "python": random.getstate(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }
        payload = model_payload(self.config, self.src_vocab, self.tgt_vocab, self.model, training)
        if self.ema is not None:  # translators get the average; resuming also needs the weights being trained
            training["trained_weights"] = payload["model"]
            payload["model"] = self.ema.averaged_state_dict()
        return payload

    def save(self, best: bool = False) -> Path:
        """A periodic checkpoint (written by the main process), and best.pt from the same payload when best;
        only the newest keep_last periodic ones are kept."""
        path = self.run_path / f"step-{self.progress.step:08d}.pt"
        if not self.world.is_main:
            return path
        payload = self._payload()  # with EMA this averages and copies the weights: once per save
        save_checkpoint(path, payload)
        if best:
            save_checkpoint(self.run_path / "best.pt", payload)
        for old in checkpoint_files(self.run_path)[: -self.config.training.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def train(self) -> StopReason:
        """Train until a limit, early stopping or a signal; returns why it stopped."""
        t = self.config.training
        budget = parse_duration(t.max_time)
        start = time.monotonic() - self.progress.elapsed
        bar = tqdm(total=t.max_steps or None, initial=self.progress.step, unit="step", dynamic_ncols=True,
                   disable=None if self.world.is_main else True)
        window_loss = window_tokens = 0.0
        window_start = time.monotonic()
        stop_reason = self._limit_reached(budget)
        with StopRequest() as stop:
            while stop_reason is None:
                batches = self.world.shard(make_batches(self.train_data.src_lengths, self.train_data.tgt_lengths,
                                                        t.batch_size, t.batch_unit, self.config.seed,
                                                        self.progress.epoch))
                for batch_index in range(self.progress.batch_in_epoch, len(batches)):
                    batch = self.training_data.training_batch(batches[batch_index], self.progress.epoch,
                                                       batch_index).to(self.device)
                    loss, tokens = self._train_step(batch)
                    if self.startup_began is not None:  # start-up cost, which the data cache exists to keep small
                        log.info("first update %.1f s after the trainer started", time.monotonic() - self.startup_began)
                        self.startup_began = None
                    self.progress.batch_in_epoch = batch_index + 1
                    self.progress.elapsed = time.monotonic() - start
                    if loss is not None:
                        window_loss += loss
                        window_tokens += tokens
                        bar.update(1)
                    if (self.progress.step % t.log_every == 0 and window_tokens and loss is not None
                            and self.world.is_main):
                        rate = window_tokens / max(time.monotonic() - window_start, 1e-9)
                        self._log_train(window_loss / window_tokens, rate)
                        bar.set_postfix(loss=f"{window_loss / window_tokens:.3f}", tok_s=f"{rate:,.0f}")
                        if bar.disable:  # no terminal: the log carries the progress instead
                            log.info("step %d  loss %.3f  lr %.2e  %.0f tokens/s", self.progress.step,
                                     window_loss / window_tokens, self._lr, rate)
                        window_loss = window_tokens = 0.0
                        window_start = time.monotonic()
                    if loss is not None and self.progress.step % t.valid_every == 0 and self.world.is_main:
                        if self._validate_and_save():
                            stop_reason = StopReason(
                                f"early stopping: no improvement in {t.early_stopping_patience} validations")
                        window_start = time.monotonic()
                    stop_reason = stop_reason or self._limit_reached(budget)
                    if stop.signal_name and stop_reason is None:
                        stop_reason = StopReason(f"stopped by {stop.signal_name}", interrupted=True)
                    if self.world.any(stop_reason is not None):  # every process stops at the same step
                        stop_reason = stop_reason or StopReason("stopped with the main process")
                        break
                else:
                    self.progress.epoch += 1
                    self.progress.batch_in_epoch = 0
                    stop_reason = self._limit_reached(budget)
        bar.close()
        validated_now = bool(self.progress.history) and self.progress.history[-1]["step"] == self.progress.step
        if not validated_now and not stop_reason.interrupted and self.world.is_main:
            self._validate_and_save()
        path = self.save()
        self.world.barrier()
        log.info("%s after %d steps, %.0f s; checkpoint %s", stop_reason, self.progress.step,
                 self.progress.elapsed, path)
        if stop_reason.interrupted:
            log.info("resume with: python train.py --config %s --resume", self.run_path / "config.yaml")
        if self.writer is not None:
            self.writer.close()
        return stop_reason

    def _limit_reached(self, budget: float) -> StopReason | None:
        t = self.config.training
        if t.max_steps and self.progress.step >= t.max_steps:
            return StopReason(f"reached max_steps={t.max_steps}")
        if t.max_epochs and self.progress.epoch >= t.max_epochs:
            return StopReason(f"reached max_epochs={t.max_epochs}")
        if budget and self.progress.elapsed >= budget:
            return StopReason(f"reached max_time={t.max_time}")
        return None

    def _train_step(self, batch: Batch) -> tuple[float | None, int]:
        """One update; returns (summed loss, target tokens), or (None, 0) for a skipped non-finite step."""
        t = self.config.training
        self.model.train()
        batch = batch.with_word_dropout(t.src_word_dropout, t.tgt_word_dropout)
        elapsed = self.progress.elapsed
        if t.schedule == "linear_decay":  # each process's clock differs a little; all must step at one rate
            elapsed = self.world.sum(elapsed) / self.world.size
        lr = self.lr.at(self.progress.step, elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        ratio = teacher_forcing_ratio(t, self.progress.step)
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
                    else contextlib.nullcontext())
        with autocast:
            logits, _ = self.network(batch.src, batch.src_lengths, batch.tgt_in, ratio)
        loss_sum, nll_sum = sequence_loss(logits, batch.tgt_out, t.label_smoothing)
        tokens = self.world.sum(batch.target_tokens)  # all processes' tokens: one global normalisation
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages over processes, so scaling by their number gives sum(loss) / all tokens
        self.scaler.scale(loss_sum * (self.world.size / tokens)).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), t.clip_grad_norm if t.clip_grad_norm else float("inf")
        )
        loss_finite = not self.world.any(not bool(torch.isfinite(loss_sum)))
        if not (loss_finite and bool(torch.isfinite(norm))) and self.amp_dtype != torch.float16:
            return self._skip_nonfinite()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.progress.step += 1
        if self.ema is not None:
            self.ema.update(self.progress.step)
        self.progress.nonfinite_in_row = 0
        self._grad_norm, self._ratio, self._lr = float(norm), ratio, lr
        return self.world.sum(float(nll_sum)), int(tokens)

    def _skip_nonfinite(self) -> tuple[None, int]:
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.nonfinite_in_row += 1
        self.progress.nonfinite_total += 1
        limit = self.config.training.max_nonfinite
        log.warning("non-finite loss or gradient at step %d: update skipped (%d in a row)",
                    self.progress.step + 1, self.progress.nonfinite_in_row)
        if self.progress.nonfinite_in_row >= limit:
            path = self.save()
            raise UserError(
                f"training diverged: {limit} non-finite losses or gradients in a row at step "
                f"{self.progress.step + 1}; weights from before it are in {path}. "
                "Lower training.lr or set training.clip_grad_norm"
            )
        return None, 0

    def _log_train(self, nll: float, tokens_per_second: float) -> None:
        step, w = self.progress.step, self.writer
        w.add_scalar("train/loss", nll, step)
        w.add_scalar("train/perplexity", math.exp(min(nll, 50.0)), step)
        w.add_scalar("train/learning_rate", self._lr, step)
        w.add_scalar("train/grad_norm", self._grad_norm, step)
        w.add_scalar("train/tokens_per_second", tokens_per_second, step)
        if self.config.training.scheduled_sampling != "none" or self._ratio < 1:
            w.add_scalar("train/teacher_forcing_ratio", self._ratio, step)

    def _validate_and_save(self) -> bool:
        """Validate, keep best.pt and the periodic checkpoints; True when early stopping triggers.

        Without a dev set there is nothing to choose by, so best.pt is simply the newest weights:
        translate.py's default lookup (the newest runs/*/best.pt) then finds every run's model.
        """
        t = self.config.training
        if self.validator is None:
            self.save(best=True)
            return False
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            result = self.validator(self.progress.step)
        value = result.metric(t.valid_metric)
        higher = t.valid_metric != "loss"
        self.lr.observe(value, higher)
        improved = improves(value, self.progress.best_score, higher)
        if improved:
            self.progress.best_score, self.progress.bad_validations = value, 0
        else:
            self.progress.bad_validations += 1
        self.progress.history.append({"step": self.progress.step, "dev_loss": result.loss,
                                      "bleu": result.scores.bleu, "chrf": result.scores.chrf})
        path = self.save(best=improved)
        log.info("step %d: dev loss %.3f  ppl %.2f  %s%s  -> %s", self.progress.step, result.loss,
                 math.exp(min(result.loss, 50.0)), result.scores.summary(), "  (best)" if improved else "", path.name)
        return bool(t.early_stopping_patience) and self.progress.bad_validations >= t.early_stopping_patience


def evaluate_tests(translator: Translator, tests: list[Corpus], progress: bool = True) -> dict[str, Scores]:
    """Translate and score every test set of a config."""
    results = {}
    for corpus in tests:
        hypotheses = [nbest[0].text for nbest in translator.translate(corpus.src, progress=progress)]
        results[corpus.name] = score(hypotheses, corpus.tgt)
    return results


def train(config: Config, resume: bool = False) -> Trainer:
    trainer = Trainer(config, resume)
    stop_reason = trainer.train()
    best = trainer.run_path / "best.pt"
    decode_tests = trainer.eval_sets.tests and best.is_file() and not stop_reason.interrupted
    if decode_tests and trainer.world.is_main:  # the other processes wait rather than decode the same sets
        translator = Translator.from_checkpoint(best, device=str(trainer.device))
        for name, scores in evaluate_tests(translator, trainer.eval_sets.tests).items():
            log.info("test %s: %s", name, scores.summary())
    trainer.world.barrier()
    log.info("TensorBoard: tensorboard --logdir %s", trainer.config.run_dir)
    return trainer

