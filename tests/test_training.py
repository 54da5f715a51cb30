"""Training: the loss, schedules, end-to-end learning, exact resume, signals and divergence."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT, tiny_config
from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import Config, TrainingConfig
from seq2seq.data.batching import make_batches
from seq2seq.errors import UserError
from seq2seq.loss import sequence_loss
from seq2seq.runtime import autocast_dtype, cpu_computes_bf16
from seq2seq.schedules import LearningRate, teacher_forcing_ratio
from seq2seq.testsets import evaluate_tests
from seq2seq.startup import prepare_run
from seq2seq.training import Trainer
from seq2seq.validation import ScoreTracker
from seq2seq.translator import Translator


def test_sequence_loss_matches_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    targets = torch.randint(1, 11, (3, 5))
    targets[1, 3:] = 0
    mask = targets != 0
    for smoothing in (0.0, 0.1):
        loss, nll = sequence_loss(logits, targets, smoothing)
        expected = F.cross_entropy(logits[mask], targets[mask], label_smoothing=smoothing, reduction="sum")
        assert torch.allclose(loss, expected, atol=1e-4)
        assert torch.allclose(nll, F.cross_entropy(logits[mask], targets[mask], reduction="sum"), atol=1e-4)


def test_sequence_loss_gradient_matches_autograd_of_cross_entropy() -> None:
    torch.manual_seed(0)
    targets = torch.randint(1, 11, (3, 5))
    targets[0, 2:] = 0
    mask = targets != 0
    for smoothing, dtype in ((0.0, torch.float32), (0.1, torch.float32), (0.3, torch.float64)):
        for overwrite in (False, True):
            weights = torch.randn(3, 5, 11, dtype=dtype, requires_grad=True)
            reference = weights.detach().clone().requires_grad_(True)
            # computed logits, as in training; the caller holds no reference when it lets backward overwrite them
            (2.5 * sequence_loss(weights * 1.0, targets, smoothing, overwrite_logits=overwrite)[0]).backward()
            (2.5 * F.cross_entropy(reference[mask], targets[mask], label_smoothing=smoothing,
                                   reduction="sum")).backward()
            assert torch.allclose(weights.grad, reference.grad, atol=1e-6)
        assert not sequence_loss(weights * 1.0, targets, smoothing)[1].requires_grad  # the NLL is a statistic
        assert weights.grad[~mask].abs().max() == 0  # padding gets no gradient


def test_logits_read_after_backward_are_intact_unless_the_caller_gave_them_up() -> None:
    torch.manual_seed(0)
    weights = torch.randn(4, 6, 9, requires_grad=True)
    targets = torch.randint(1, 9, (4, 6))
    logits = weights * 2.0
    before = logits.detach().clone()
    sequence_loss(logits, targets, 0.1)[0].backward()
    assert torch.equal(logits.detach(), before)  # the default never touches them
    overwritten = weights * 2.0
    sequence_loss(overwritten, targets, 0.1, overwrite_logits=True)[0].backward()
    assert not torch.equal(overwritten.detach(), before)  # why an opted-in caller must hold no reference


def test_a_training_step_keeps_no_logits_alive_after_backward(reversal_data: Path, tmp_path: Path) -> None:
    """The trainer opts in to overwriting the logits, so no tensor holding them may outlive its step."""
    import weakref

    trainer = Trainer(prepare_run(short_run(reversal_data, tmp_path, 1)))
    seen = []
    trainer.model.register_forward_hook(lambda module, inputs, output: seen.append(weakref.ref(output[0])))
    batches = make_batches(trainer.train_data.src_lengths, trainer.train_data.tgt_lengths, 64, "sentences", 0, 0)
    loss, tokens = trainer._train_step(trainer.training_data.training_batch(batches[0], 0, 0))
    assert loss is not None and tokens > 0 and len(seen) == 1
    assert seen[0]() is None


def test_fp16_overflow_steps_are_skipped_and_counted(reversal_data: Path, tmp_path: Path) -> None:
    """A GradScaler that finds inf gradients skips the update: the step is counted as non-finite, not as an update
    (a CPU scaler stands in for the CUDA one; a gradient hook stands in for an fp16 overflow)."""
    trainer = Trainer(prepare_run(short_run(reversal_data, tmp_path, 1)))
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    trainer.model.output_layer().weight.register_hook(lambda grad: grad * math.inf)
    before = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    batches = make_batches(trainer.train_data.src_lengths, trainer.train_data.tgt_lengths, 64, "sentences", 0, 0)
    assert trainer._train_step(trainer.training_data.training_batch(batches[0], 0, 0)) == (None, 0)
    assert trainer.progress.step == 0 and trainer.progress.nonfinite_total == 1
    assert trainer.progress.nonfinite_in_row == 0  # the scaler's search for its scale is no divergence
    assert trainer.scaler.get_scale() == 2.0 ** 15
    assert all(torch.equal(value, before[name]) for name, value in trainer.model.state_dict().items())


def test_one_score_tracker_serves_best_checkpoint_early_stopping_and_plateau() -> None:
    scores = ScoreTracker(higher_is_better=False)  # dev loss
    assert [scores.observe(v) for v in (3.0, 2.5, 2.7, 2.6, 2.4)] == [True, True, False, False, True]
    assert scores.best == 2.4 and scores.bad_validations == 0
    scores.observe(2.9)
    restored = ScoreTracker(higher_is_better=False)
    restored.load_state_dict(scores.state_dict())
    assert (restored.best, restored.bad_validations) == (2.4, 1)


def test_teacher_forcing_schedules() -> None:
    fixed = TrainingConfig(teacher_forcing_ratio=0.75)
    assert teacher_forcing_ratio(fixed, 10_000) == 0.75
    linear = TrainingConfig(scheduled_sampling="linear", sampling_decay=100, sampling_min_ratio=0.2)
    assert teacher_forcing_ratio(linear, 0) == 1.0
    assert teacher_forcing_ratio(linear, 50) == pytest.approx(0.5)
    assert teacher_forcing_ratio(linear, 1000) == 0.2
    exponential = TrainingConfig(scheduled_sampling="exponential", sampling_decay=0.99)
    assert teacher_forcing_ratio(exponential, 100) == pytest.approx(0.99 ** 100)
    sigmoid = TrainingConfig(scheduled_sampling="inverse_sigmoid", sampling_decay=10)
    values = [teacher_forcing_ratio(sigmoid, s) for s in (0, 10, 50, 100_000)]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(10 / 11) and values[-1] < 1e-100


def test_learning_rate_schedules() -> None:
    warm = LearningRate(TrainingConfig(lr=1.0, warmup_steps=4, min_lr=0.0))
    assert [warm.at(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    inv = LearningRate(TrainingConfig(lr=1.0, schedule="inverse_sqrt", warmup_steps=4, min_lr=0.0))
    assert inv.at(3) == 1.0 and inv.at(15) == pytest.approx(0.5)
    plateau = LearningRate(TrainingConfig(lr=1.0, schedule="plateau", plateau_patience=2, plateau_factor=0.5))
    scores = ScoreTracker(higher_is_better=True)
    for value in (10, 9, 8):  # chrF falling: two bad validations halve the rate
        scores.observe(value)
        plateau.observe(scores.bad_validations)
    assert plateau.at(0) == 0.5
    restored = LearningRate(plateau.config)
    restored.load_state_dict(plateau.state_dict())
    assert restored.at(0) == 0.5


def test_linear_decay_reaches_its_floor_as_the_budget_ends() -> None:
    by_time = LearningRate(TrainingConfig(lr=1.0, schedule="linear_decay", warmup_steps=4, max_time="100s",
                                          min_lr=0.0))
    assert [by_time.at(s, elapsed=1.0) for s in range(5)] == [0.25, 0.5, 0.75, 0.99, 0.99]
    assert by_time.at(1000, elapsed=25.0) == pytest.approx(0.75)
    assert by_time.at(1000, elapsed=130.0) == 0.0
    by_steps = LearningRate(TrainingConfig(lr=1.0, schedule="linear_decay", max_steps=200, min_lr=0.01))
    assert by_steps.at(50) == pytest.approx(0.75) and by_steps.at(199) == 0.01
    both = LearningRate(TrainingConfig(lr=1.0, schedule="linear_decay", max_steps=200, max_time="100s",
                                       min_lr=0.0))
    assert both.at(50, elapsed=60.0) == pytest.approx(0.4)  # the time budget is further along
    assert both.at(150, elapsed=10.0) == pytest.approx(0.25)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "overrides"), [
    ("rnn", ("model.rnn=gru", "model.attention=bahdanau")),
    ("rnn", ("model.rnn=lstm", "model.attention=luong_general")),
    ("transformer", ()),
    pytest.param("transformer", ("training.amp=bf16",),
                 marks=pytest.mark.skipif(not cpu_computes_bf16(), reason="this CPU has no native bf16")),
], ids=["gru-bahdanau", "lstm-luong", "transformer", "transformer-cpu-bf16"])
def test_learns_word_reversal(reversal_data: Path, tmp_path: Path, family: str, overrides: tuple[str, ...]) -> None:
    """Greedy and beam search both reach BLEU >= 90 on held-out reversal sentences."""
    config = tiny_config(reversal_data, tmp_path, *overrides, family=family)
    trainer = Trainer(prepare_run(config))
    assert trainer.amp_dtype == (torch.bfloat16 if "training.amp=bf16" in overrides else None)
    trainer.train()
    translator = Translator.from_checkpoint(trainer.run_path / "best.pt", device="cpu")
    for method in ("greedy", "beam"):
        translator.decoding = dataclasses.replace(translator.decoding, method=method)
        scores = evaluate_tests(translator, trainer.eval_sets.tests, progress=False)["reverse-test"]
        assert scores.bleu >= 90, f"{method}: {scores.summary()}"


def short_run(data: Path, run_dir: Path, steps: int, *extra: str, family: str = "rnn") -> Config:
    return tiny_config(data, run_dir, f"training.max_steps={steps}", "training.valid_every=10",
                       "training.valid_limit=5", "model.dropout=0.3", "training.scheduled_sampling=linear",
                       "training.sampling_decay=40", "data.test=[]", "training.batch_size=16", "training.log_every=5",
                       "training.src_word_dropout=0.1", "training.tgt_word_dropout=0.1", *extra, family=family)


@pytest.mark.parametrize("family, extra", [("rnn", ()), ("transformer", ()),
                                           ("transformer", ("training.ema_decay=0.9",))],
                         ids=["rnn", "transformer", "transformer-ema"])
def test_resume_ends_with_the_same_weights(reversal_data: Path, tmp_path: Path, family: str,
                                           extra: tuple[str, ...]) -> None:
    """Dropout, word dropout, scheduled sampling and shuffling all draw randomness: resume must restore it all,
    and the weight average too."""
    straight = Trainer(prepare_run(short_run(reversal_data, tmp_path / "a", 30, *extra, family=family)))
    straight.train()
    Trainer(prepare_run(short_run(reversal_data, tmp_path / "b", 20, *extra, family=family))).train()
    resumed = Trainer(prepare_run(short_run(reversal_data, tmp_path / "b", 30, *extra, family=family), resume=True))
    assert resumed.progress.step == 20
    resumed.train()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    if extra:
        for a, b in zip(straight.ema.average, resumed.ema.average):
            assert torch.equal(a, b)
    assert straight.progress.history == resumed.progress.history


def timing_that_prefers(dtype: torch.dtype | None, calls: list[str]):
    """A stand-in for runtime.time_precisions: runs the real passes (so they must leave no trace), then
    reports timings under which `dtype` is the faster."""
    import seq2seq.runtime as runtime

    def fake(passes, rounds: int) -> runtime.PrecisionTiming:
        calls.append("timed")
        runtime.time_precisions(passes, rounds)
        return runtime.PrecisionTiming(float32_seconds=1.0 if dtype is None else 2.0,
                                       bf16_seconds=1.0 if dtype is torch.bfloat16 else 2.0)
    return fake


def test_auto_precision_on_a_bf16_cpu_is_timed_and_the_timing_leaves_no_trace(
        reversal_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing float32 against bf16 changes neither the weights nor the random state: a run that chose float32
    ends exactly where a plain float32 run does."""
    import seq2seq.runtime as runtime
    import seq2seq.training as training

    calls: list[str] = []
    monkeypatch.setattr(runtime, "cpu_computes_bf16", lambda: True)
    monkeypatch.setattr(training, "time_precisions", timing_that_prefers(None, calls))
    timed = Trainer(prepare_run(short_run(reversal_data, tmp_path / "a", 12, "training.amp=auto",
                                          family="transformer")))
    assert calls == ["timed"] and timed.amp_dtype is None
    assert timed.progress.elapsed > 0  # the timing counts towards max_time
    timed.train()
    plain = Trainer(prepare_run(short_run(reversal_data, tmp_path / "b", 12, "training.amp=off",
                                          family="transformer")))
    plain.train()
    for (name, a), b in zip(timed.model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert timed.progress.history == plain.progress.history


def test_the_timed_precision_is_kept_when_the_run_resumes(
        reversal_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seq2seq.runtime as runtime
    import seq2seq.training as training

    calls: list[str] = []
    monkeypatch.setattr(runtime, "cpu_computes_bf16", lambda: True)
    monkeypatch.setattr(training, "time_precisions", timing_that_prefers(torch.bfloat16, calls))
    first = Trainer(prepare_run(short_run(reversal_data, tmp_path, 10, "training.amp=auto", family="transformer")))
    assert first.amp_dtype is torch.bfloat16 and first.cpu_autocast
    first.train()
    assert load_checkpoint(tmp_path / "tiny-transformer" / "best.pt")["training"]["precision"] == "bf16"
    monkeypatch.setattr(training, "time_precisions", timing_that_prefers(None, calls))
    resumed = Trainer(prepare_run(short_run(reversal_data, tmp_path, 20, "training.amp=auto", family="transformer"),
                                  resume=True))
    assert calls == ["timed"]  # not timed again
    assert resumed.amp_dtype is torch.bfloat16
    assert Trainer(prepare_run(short_run(reversal_data, tmp_path / "c", 10, "training.amp=auto",
                                         family="transformer"))).amp_dtype is None


def test_existing_run_needs_resume_and_resume_needs_a_run(reversal_data: Path, tmp_path: Path) -> None:
    config = short_run(reversal_data, tmp_path, 10)
    with pytest.raises(UserError, match="nothing to resume"):
        Trainer(prepare_run(config, resume=True))
    Trainer(prepare_run(config)).train()
    with pytest.raises(UserError, match="--resume"):
        Trainer(prepare_run(config))


def test_keeps_last_checkpoints_best_and_tensorboard(reversal_data: Path, tmp_path: Path) -> None:
    trainer = Trainer(prepare_run(short_run(reversal_data, tmp_path, 40, "training.keep_last=2")))
    trainer.train()
    names = sorted(p.name for p in trainer.run_path.glob("*.pt"))
    assert names == ["best.pt", "step-00000030.pt", "step-00000040.pt"]
    assert (trainer.run_path / "config.yaml").is_file() and (trainer.run_path / "train.log").is_file()
    payload = load_checkpoint(trainer.run_path / "step-00000040.pt")
    assert payload["training"]["progress"]["step"] == 40 and isinstance(payload["src_vocab"], bytes)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trainer.run_path))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/perplexity", "train/learning_rate", "train/grad_norm", "train/tokens_per_second",
            "dev/loss", "dev/bleu", "dev/chrf", "dev/ter", "train/teacher_forcing_ratio"} <= scalars
    assert "dev/attention" in events.Tags()["images"]



def test_linear_decay_curve_in_tensorboard_ends_at_the_step_budget(reversal_data: Path, tmp_path: Path) -> None:
    trainer = Trainer(prepare_run(short_run(reversal_data, tmp_path, 40, "training.schedule=linear_decay", "training.lr=0.01",
                                "training.warmup_steps=4", "training.min_lr=0")))
    trainer.train()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trainer.run_path))
    events.Reload()
    curve = {e.step: e.value for e in events.Scalars("train/learning_rate")}
    assert sorted(curve) == list(range(5, 41, 5))
    for step, value in curve.items():  # logged after update `step`, which ran at step index step - 1
        assert value == pytest.approx(0.01 * (1 - (step - 1) / 40), rel=1e-5)

def test_non_finite_steps_are_skipped_then_stop_with_a_checkpoint(reversal_data: Path, tmp_path: Path) -> None:
    trainer = Trainer(prepare_run(short_run(reversal_data, tmp_path, 50, "training.max_nonfinite=3")))
    with torch.no_grad():
        trainer.model.output_layer().bias.fill_(math.nan)
    with pytest.raises(UserError, match="3 non-finite"):
        trainer.train()
    assert trainer.progress.step == 0 and trainer.progress.nonfinite_total == 3
    assert (trainer.run_path / "step-00000000.pt").is_file()


def test_sigterm_finishes_the_step_saves_and_exits_zero(reversal_data: Path, tmp_path: Path) -> None:
    command = [sys.executable, "train.py", "--config", "configs/tiny.yaml", "--data-dir", str(reversal_data),
               "--set", f"run_dir={tmp_path}", "--set", "training.max_steps=100000", "--set", "training.log_every=5"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path / "tiny" / "train.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.is_file() and "step 5 " in log.read_text()):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert "stopped by SIGTERM" in output and "--resume" in output
    assert list((tmp_path / "tiny").glob("step-*.pt"))


KILL_STEPS = 100
KILL_ATTEMPTS = 5


def logged_step(log: Path) -> int:
    """The last update a run's train.log reports (0 before the first)."""
    steps = re.findall(r"step (\d+) ", log.read_text()) if log.is_file() else []
    return int(steps[-1]) if steps else 0


def train_command(data: Path, run_dir: Path, resume: bool, config: str = "tiny") -> list[str]:
    command = [sys.executable, "train.py", "--config", f"configs/{config}.yaml", "--data-dir", str(data),
               "--set", f"run_dir={run_dir}"]
    for key_value in (f"training.max_steps={KILL_STEPS}", "training.valid_every=5", "training.valid_limit=5",
                      "model.dropout=0.3", "training.scheduled_sampling=linear", "training.sampling_decay=40",
                      "data.test=[]", "training.batch_size=16", "training.log_every=5", "training.keep_last=2",
                      "training.src_word_dropout=0.1", "training.tgt_word_dropout=0.1", "training.threads=1"):
        command += ["--set", key_value]
    return command + (["--resume"] if resume else [])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(reversal_data: Path, tmp_path: Path,
                                                                            family: str) -> None:
    """Kill -9 at random instants (one aimed at a checkpoint write), resume each time, compare weights.

    Each kill waits for the log to reach a random step, not for a random time, so every kill lands
    inside training on a machine of any speed while the run stays short."""
    straight = Trainer(prepare_run(short_run(reversal_data, tmp_path / "straight", KILL_STEPS, "training.keep_last=2",
                                 "training.threads=1", family=family)))  # as the command: bitwise needs one thread count
    straight.train()
    name = "tiny" if family == "rnn" else "tiny-transformer"
    run_path = tmp_path / "killed" / name
    rng = random.Random(0)
    spacing = KILL_STEPS // KILL_ATTEMPTS  # targets rise by more than the steps a kill can lose or overshoot
    targets = [attempt * spacing + rng.randint(0, spacing // 2) for attempt in range(1, KILL_ATTEMPTS)]
    kills = 0
    for attempt in range(KILL_ATTEMPTS):
        resume = bool(list(run_path.glob("step-*.pt")))
        process = subprocess.Popen(train_command(reversal_data, tmp_path / "killed", resume, name), cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        if attempt == 0:  # aim at a checkpoint being written
            while time.monotonic() < deadline and process.poll() is None and not list(run_path.glob(".step-*.tmp")):
                time.sleep(0.001)
        else:
            while time.monotonic() < deadline and process.poll() is None and \
                    logged_step(run_path / "train.log") < targets[attempt - 1]:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))  # then somewhere in the next few updates, validations or saves
        if process.poll() is None:
            process.kill()
            kills += 1
        process.wait()
        for leftover in run_path.glob("step-*.pt"):
            load_checkpoint(leftover)  # every checkpoint on disk stays loadable
    finish = subprocess.run(train_command(reversal_data, tmp_path / "killed",
                                          bool(list(run_path.glob("step-*.pt"))), name),
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finish.returncode == 0, finish.stderr
    assert kills == KILL_ATTEMPTS
    final = load_checkpoint(run_path / f"step-{KILL_STEPS:08d}.pt")["model"]
    for name, weight in straight.model.state_dict().items():
        assert torch.equal(weight, final[name]), name


@pytest.mark.parametrize(("overrides", "reason"), [
    (("training.max_epochs=1", "training.batch_size=512"), "reached max_epochs=1"),
    (("training.max_time=1s",), "reached max_time=1s"),
    (("training.early_stopping_patience=1", "training.valid_metric=bleu", "training.lr=1e-9",
      "training.min_lr=1e-9", "training.valid_every=2"), "early stopping"),
])
def test_stopping_rules(reversal_data: Path, tmp_path: Path, overrides: tuple[str, ...], reason: str) -> None:
    config = tiny_config(reversal_data, tmp_path, "training.max_steps=1000", "training.valid_limit=5",
                         "data.test=[]", *overrides)
    trainer = Trainer(prepare_run(config))
    assert trainer.train().message.startswith(reason)
    if "epochs" in reason:
        assert trainer.progress.epoch == 1 and trainer.progress.step == len(
            make_batches(trainer.train_data.src_lengths, trainer.train_data.tgt_lengths, 512, "sentences", 1, 0))


def test_autocast_on_cuda_and_on_cpus_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import seq2seq.runtime as runtime

    cpu = torch.device("cpu")
    cuda = torch.device("cuda")
    assert autocast_dtype(TrainingConfig(amp="off"), cuda) is None
    assert autocast_dtype(TrainingConfig(amp="fp16"), cuda) is torch.float16
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
        assert autocast_dtype(TrainingConfig(amp="bf16"), cuda) is dtype
        assert autocast_dtype(TrainingConfig(amp="auto"), cuda) is dtype
    for amp in ("auto", "fp16", "off"):
        assert autocast_dtype(TrainingConfig(amp=amp), cpu) is None
    monkeypatch.setattr(runtime, "cpu_computes_bf16", lambda: True)
    assert autocast_dtype(TrainingConfig(amp="bf16"), cpu) is torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_computes_bf16", lambda: False)
    assert autocast_dtype(TrainingConfig(amp="bf16"), cpu) is None  # emulated bf16 would only be slower


def test_missing_data_is_downloaded_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that names its dataset fetches the missing files first (here a fake download writes them)."""
    import seq2seq.startup as startup
    from conftest import write_reversal_task

    root = tmp_path / "data"
    calls = []

    def fake_download(dataset: str, where: Path, needed: list[Path]) -> None:
        calls.append((dataset, where, sorted(str(p) for p in needed if not (where / p).exists())))
        write_reversal_task(where, train=200, dev=10, test=10)

    monkeypatch.setattr(startup, "ensure_files", fake_download)
    config = tiny_config(root, tmp_path / "runs", "data.download=en-hi", "training.max_steps=2",
                         "training.valid_every=2", "data.test=[]")
    Trainer(prepare_run(config)).train()
    assert calls == [("en-hi", root, ["dev.src", "dev.tgt", "train.src", "train.tgt"])]
    assert (tmp_path / "runs" / "tiny" / "best.pt").is_file()


def test_data_under_a_relative_root_is_found_without_downloading(
    reversal_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--data-dir ../shared/data style paths: present files must not trigger a download."""
    import shutil

    shutil.copytree(reversal_data, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    config = tiny_config(Path("data"), tmp_path / "runs", "data.download=en-hi", "training.max_steps=2",
                         "training.valid_every=2", "training.valid_limit=2")
    Trainer(prepare_run(config)).train()  # a download attempt would fail here: no such server is reachable
    assert (tmp_path / "runs" / "tiny" / "best.pt").is_file()


def test_a_run_without_dev_set_leaves_a_model_the_default_lookup_finds(reversal_data: Path, tmp_path: Path) -> None:
    from seq2seq.cli import newest_checkpoint

    config = tiny_config(reversal_data, tmp_path, "data.dev=null", "data.test=[]", "training.max_steps=12",
                         "training.valid_every=5")
    trainer = Trainer(prepare_run(config))
    trainer.train()
    best = trainer.run_path / "best.pt"
    assert newest_checkpoint(tmp_path) == best
    final = load_checkpoint(trainer.run_path / "step-00000012.pt")["model"]
    assert all(torch.equal(final[name], weight) for name, weight in load_checkpoint(best)["model"].items())
