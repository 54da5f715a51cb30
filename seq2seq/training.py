"""The training loop: teacher-forced updates, validation, checkpoints, TensorBoard, early stopping, resume.

`train(config)` prepares the run (seq2seq.startup), trains it, then scores the test sets
with best.pt. The Trainer reads top to bottom: build the model and optimiser, restore a
checkpoint when resuming, then `train` loops over epochs of token-budget batches, one
`_train_step` per batch, validating and saving every valid_every updates.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from seq2seq.checkpoint import load_checkpoint, model_payload, save_checkpoint
from seq2seq.config import Config
from seq2seq.data.batching import Batch, make_batches
from seq2seq.ema import WeightAverage
from seq2seq.errors import UserError
from seq2seq.fulldisk import full_disk_stops_the_run
from seq2seq.loss import sequence_loss
from seq2seq.model.build import build_model, count_parameters
from seq2seq.run_folder import checkpoint_files
from seq2seq.runtime import (
    PrecisionTiming,
    autocast,
    autocast_dtype,
    bound_onednn_cache,
    cpu_precision_is_timed,
    release_freed_memory,
    time_precisions,
)
from seq2seq.schedules import Budget, LearningRate, teacher_forcing_ratio
from seq2seq.startup import Setup, prepare_run
from seq2seq.testsets import evaluate_tests
from seq2seq.translator import Translator
from seq2seq.validation import ScoreTracker, Validator, perplexity

log = logging.getLogger("seq2seq")

# training.amp: auto on a CPU with native bf16 times this many rounds each way, each over batches of its own:
# bf16 builds a oneDNN primitive per new batch shape, a cost training pays too, so no round reuses a shape
PRECISION_ROUNDS = 2
PRECISION_BATCHES_PER_ROUND = 8
PRECISION_NAMES = {None: "float32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint so a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0
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


@dataclass
class LossWindow:
    """Summed NLL and target tokens since the last log line, and when the clock for tokens/s started."""

    loss: float = 0.0
    tokens: float = 0.0
    began: float = field(default_factory=time.monotonic)

    def add(self, loss: float, tokens: int) -> None:
        self.loss += loss
        self.tokens += tokens

    def restart_clock(self) -> None:
        self.began = time.monotonic()

    def clear(self) -> None:
        self.loss = self.tokens = 0.0
        self.restart_clock()


class Trainer:
    """Trains the model of a prepared run until a limit, early stopping or a signal."""

    def __init__(self, setup: Setup):
        self.config = config = setup.config
        t = config.training
        self.run_path, self.device, self.world = config.run_path, setup.device, setup.world
        self.eval_sets, self.training_data = setup.eval_sets, setup.data
        self.src_vocab, self.tgt_vocab, self.train_data = setup.data.src_vocab, setup.data.tgt_vocab, setup.data.corpus
        self.run_lock = setup.run_lock  # taken by prepare_run: one writer per run folder
        self.startup_began: float | None = setup.began  # cleared once the first update has been timed
        self.amp_dtype = autocast_dtype(t, self.device)
        precision_timed = cpu_precision_is_timed(t, self.device)
        if precision_timed or (self.amp_dtype is not None and self.device.type == "cpu"):
            bound_onednn_cache()  # bf16 on a CPU: keep its memory near float32's (see seq2seq.runtime)
        precision_reason = f"training.amp: {t.amp}"
        random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, len(self.src_vocab), len(self.tgt_vocab)).to(self.device)
        if setup.initial_weights is not None:  # fine-tuning (training.init_from)
            self.model.load_state_dict(setup.initial_weights)
        log.info("model: %s parameters, device %s", f"{count_parameters(self.model):,}", self.device)
        optimizer_class = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        # the fused kernel does an update in one pass over each tensor instead of about ten
        self.optimizer = optimizer_class(
            self.model.parameters(), lr=t.lr, betas=tuple(t.adam_betas), weight_decay=t.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.budget = Budget.of(t)
        self.lr = LearningRate(t, self.budget)
        self.scores = ScoreTracker(higher_is_better=t.valid_metric != "loss")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.progress = Progress()
        self.ema = WeightAverage(self.model, t.ema_decay) if t.ema_decay else None
        if setup.checkpoints:  # resuming
            self._restore(setup.checkpoints[-1], precision_timed)
            if precision_timed:
                precision_reason += ", as timed when the run started"
        elif precision_timed:
            timing = self._time_precisions()
            precision_reason += f", the faster when timed at start-up: {timing.summary()}"
        self.cpu_autocast = self.amp_dtype is not None and self.device.type == "cpu"
        log.info("precision: %s%s (%s)", PRECISION_NAMES[self.amp_dtype], " autocast" if self.amp_dtype else "",
                 precision_reason)
        # DistributedDataParallel averages gradients across processes during backward
        self.network = DistributedDataParallel(self.model) if self.world.active else self.model
        self.writer = SummaryWriter(str(self.run_path)) if self.world.is_main else None
        self.translator = Translator(self.model, self.src_vocab, self.tgt_vocab, config.decoding, self.device)
        dev = self.eval_sets.dev
        self.validator = None if dev is None or not self.world.is_main else Validator(
            self.translator, dev, t.valid_limit, t.batch_size, t.batch_unit, t.samples, self.writer,
            config.evaluation)

    def _time_precisions(self) -> PrecisionTiming:
        """Forward and backward passes over the first training batches in float32 and in bf16; the faster becomes
        the run's precision. Weights, optimiser and random state stay as they were; the seconds count towards
        max_time. Every process times; the main process's choice holds for all."""
        t = self.config.training
        began = time.monotonic()
        order = make_batches(self.train_data.src_lengths, self.train_data.tgt_lengths, t.batch_size, t.batch_unit,
                             self.config.seed, 0)
        batches = [self.training_data.training_batch(order[i % len(order)], 0, i).to(self.device)
                   for i in range(1 + PRECISION_ROUNDS * PRECISION_BATCHES_PER_ROUND)]
        size = PRECISION_BATCHES_PER_ROUND
        rounds = [batches[:1]] + [batches[1 + r * size: 1 + (r + 1) * size] for r in range(PRECISION_ROUNDS)]

        def passes(dtype: torch.dtype | None, round_number: int) -> None:
            for batch in rounds[round_number]:
                with autocast(self.device, dtype):
                    logits, _ = self.model(batch.src, batch.src_lengths, batch.tgt_in, 1.0)
                loss_sum, _ = sequence_loss(logits, batch.tgt_out, t.label_smoothing, overwrite_logits=True)
                del logits
                loss_sum.backward()
                if dtype is not None:  # as _train_step does after a bf16 update on a CPU: part of bf16's cost
                    release_freed_memory()
            self.model.zero_grad(set_to_none=True)

        self.model.train()
        with torch.random.fork_rng(devices=[]):
            timing = time_precisions(passes, PRECISION_ROUNDS)
        release_freed_memory()  # the heap the passes grew (bf16 copies among it) need not stay with a float32 run
        self.amp_dtype = self.world.broadcast(timing.faster)
        self.progress.elapsed = time.monotonic() - began
        return timing

    def _restore(self, path: Path, precision_timed: bool) -> None:
        """Everything a checkpoint holds; with a timed precision also the precision the run chose, so the rest
        of the run computes as its start did."""
        payload = load_checkpoint(path)
        state = payload["training"]
        if precision_timed and "precision" in state:
            self.amp_dtype = {name: dtype for dtype, name in PRECISION_NAMES.items()}[state["precision"]]
        self.model.load_state_dict(payload["model"])
        if self.ema is not None:  # "model" holds the average, the training state the weights being trained
            self.ema.take_from_model()
            self.model.load_state_dict(state["trained_weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr.load_state_dict(state["lr"])
        self.scaler.load_state_dict(state["scaler"])
        progress = dict(state["progress"])
        # checkpoints written before the score tracker kept its record in progress
        legacy = {"best": progress.pop("best_score", None), "bad_validations": progress.pop("bad_validations", 0)}
        self.scores.load_state_dict(state.get("scores", legacy))
        self.progress = Progress(**progress)
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
            "scores": self.scores.state_dict(),
            "precision": PRECISION_NAMES[self.amp_dtype],
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
        previous = (checkpoint_files(self.run_path) or [None])[-1]  # sizes the free-space check
        save_checkpoint(path, payload, like=previous)
        if best:
            save_checkpoint(self.run_path / "best.pt", payload, like=path)
        for old in checkpoint_files(self.run_path)[: -self.config.training.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def train(self) -> StopReason:
        """Train until a limit, early stopping or a signal; returns why it stopped."""
        t = self.config.training
        start = time.monotonic() - self.progress.elapsed
        bar = tqdm(total=t.max_steps or None, initial=self.progress.step, unit="step", dynamic_ncols=True,
                   disable=None if self.world.is_main else True)
        window = LossWindow()
        stop_reason = self._limit_reached()
        with StopRequest() as stop:
            while stop_reason is None:
                batches = self.world.shard(make_batches(self.train_data.src_lengths, self.train_data.tgt_lengths,
                                                        t.batch_size, t.batch_unit, self.config.seed,
                                                        self.progress.epoch))
                for batch_index in range(self.progress.batch_in_epoch, len(batches)):
                    batch = self.training_data.training_batch(batches[batch_index], self.progress.epoch, batch_index)
                    loss, tokens = self._train_step(batch.to(self.device))
                    self._report_startup()
                    self.progress.batch_in_epoch = batch_index + 1
                    self.progress.elapsed = time.monotonic() - start
                    if loss is not None:
                        window.add(loss, tokens)
                        bar.update(1)
                        if self.progress.step % t.log_every == 0 and self.world.is_main:
                            self._log_train(window, bar)
                        if self.progress.step % t.valid_every == 0 and self.world.is_main:
                            stop_reason = self._validate_and_save()
                            window.restart_clock()  # tokens/s counts training time only
                    stop_reason = stop_reason or self._limit_reached()
                    if stop.signal_name and stop_reason is None:
                        stop_reason = StopReason(f"stopped by {stop.signal_name}", interrupted=True)
                    if self.world.any(stop_reason is not None):  # every process stops at the same step
                        stop_reason = stop_reason or StopReason("stopped with the main process")
                        break
                else:
                    self.progress.epoch += 1
                    self.progress.batch_in_epoch = 0
                    stop_reason = self._limit_reached()
        bar.close()
        return self._finish(stop_reason)

    def _finish(self, stop_reason: StopReason) -> StopReason:
        """Validate the last weights (unless interrupted or just done), save them, and say why training ended."""
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
        self.run_lock.release()
        return stop_reason

    def _report_startup(self) -> None:
        """Log once how long start-up took, which the data cache exists to keep small."""
        if self.startup_began is not None:
            log.info("first update %.1f s after the trainer started", time.monotonic() - self.startup_began)
            self.startup_began = None

    def _limit_reached(self) -> StopReason | None:
        t, budget = self.config.training, self.budget
        if budget.max_steps and self.progress.step >= budget.max_steps:
            return StopReason(f"reached max_steps={t.max_steps}")
        if budget.max_epochs and self.progress.epoch >= budget.max_epochs:
            return StopReason(f"reached max_epochs={t.max_epochs}")
        if budget.seconds and self.progress.elapsed >= budget.seconds:
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
        with autocast(self.device, self.amp_dtype):
            logits, _ = self.network(batch.src, batch.src_lengths, batch.tgt_in, ratio)
        loss_sum, nll_sum = sequence_loss(logits, batch.tgt_out, t.label_smoothing, overwrite_logits=True)
        del logits  # backward turns them into their gradient: nothing may read them after it
        tokens = self.world.sum(batch.target_tokens)  # all processes' tokens: one global normalisation
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages over processes, so scaling by their number gives sum(loss) / all tokens
        self.scaler.scale(loss_sum * (self.world.size / tokens)).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), t.clip_grad_norm if t.clip_grad_norm else float("inf")
        )
        loss_finite = not self.world.any(not bool(torch.isfinite(loss_sum)))
        # with fp16 the GradScaler decides about the gradients (below); a non-finite loss is never the scale's doing
        if not (loss_finite and (self.scaler.is_enabled() or bool(torch.isfinite(norm)))):
            return self._skip_nonfinite()
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scaler.get_scale() < scale:  # the scaler found inf/NaN gradients, skipped the update, lowered its scale
            return self._skip_overflow()
        self.progress.step += 1
        if self.ema is not None:
            self.ema.update(self.progress.step)
        if self.cpu_autocast:
            release_freed_memory()
        self.progress.nonfinite_in_row = 0
        self._grad_norm, self._ratio, self._lr = float(norm), ratio, lr
        return self.world.sum(float(nll_sum)), int(tokens)

    def _skip_nonfinite(self) -> tuple[None, int]:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.update()  # fp16: closes the scaler's unscale_ of this step (and lowers its scale); else nothing
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

    def _skip_overflow(self) -> tuple[None, int]:
        """fp16: gradients overflowed at this loss scale. Counted like any non-finite step, but not towards
        max_nonfinite: the scaler lowers its scale and retries, which is how it finds the scale at the start."""
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.nonfinite_total += 1
        log.info("fp16 gradients overflowed at step %d: update skipped, loss scale lowered to %g",
                 self.progress.step + 1, self.scaler.get_scale())
        return None, 0

    def _log_train(self, window: LossWindow, bar: tqdm) -> None:
        """Training scalars of the window since the last log line, then a fresh window."""
        step, w = self.progress.step, self.writer
        nll = window.loss / window.tokens
        rate = window.tokens / max(time.monotonic() - window.began, 1e-9)
        w.add_scalar("train/loss", nll, step)
        w.add_scalar("train/perplexity", perplexity(nll), step)
        w.add_scalar("train/learning_rate", self._lr, step)
        w.add_scalar("train/grad_norm", self._grad_norm, step)
        w.add_scalar("train/tokens_per_second", rate, step)
        if self.config.training.scheduled_sampling != "none" or self._ratio < 1:
            w.add_scalar("train/teacher_forcing_ratio", self._ratio, step)
        bar.set_postfix(loss=f"{nll:.3f}", tok_s=f"{rate:,.0f}")
        if bar.disable:  # no terminal: the log carries the progress instead
            log.info("step %d  loss %.3f  lr %.2e  %.0f tokens/s", step, nll, self._lr, rate)
        window.clear()

    def _validate_and_save(self) -> StopReason | None:
        """Validate, keep best.pt and the periodic checkpoints; a StopReason when early stopping triggers.

        Without a dev set there is nothing to choose by, so best.pt is simply the newest weights:
        translate.py's default lookup (the newest runs/*/best.pt) then finds every run's model.
        """
        t = self.config.training
        if self.validator is None:
            self.save(best=True)
            return None
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            result = self.validator(self.progress.step)
        improved = self.scores.observe(result.metric(t.valid_metric))
        self.lr.observe(self.scores.bad_validations)
        self.progress.history.append({"step": self.progress.step, "dev_loss": result.loss,
                                      "bleu": result.scores.bleu, "chrf": result.scores.chrf,
                                      "ter": result.scores.ter})
        path = self.save(best=improved)
        log.info("step %d: dev loss %.3f  ppl %.2f  %s%s  -> %s", self.progress.step, result.loss,
                 perplexity(result.loss), result.scores.summary(), "  (best)" if improved else "", path.name)
        if t.early_stopping_patience and self.scores.bad_validations >= t.early_stopping_patience:
            return StopReason(f"early stopping: no improvement in {t.early_stopping_patience} validations")
        return None


def train(config: Config, resume: bool = False) -> Trainer:
    """Prepare the run, train it, and score the test sets with best.pt (unless interrupted)."""
    with full_disk_stops_the_run(config.run_path):
        setup = prepare_run(config, resume)
        try:
            trainer = Trainer(setup)
            stop_reason = trainer.train()
        finally:
            setup.run_lock.release()  # now, not whenever a failed trainer is garbage-collected
    best = trainer.run_path / "best.pt"
    decode_tests = trainer.eval_sets.tests and best.is_file() and not stop_reason.interrupted
    if decode_tests and trainer.world.is_main:  # the other processes wait rather than decode the same sets
        translator = Translator.from_checkpoint(best, device=str(trainer.device))
        for name, scores in evaluate_tests(translator, trainer.eval_sets.tests, options=config.evaluation).items():
            log.info("test %s: %s", name, scores.summary())
    trainer.world.barrier()
    log.info("TensorBoard: tensorboard --logdir %s", trainer.config.run_dir)
    return trainer
