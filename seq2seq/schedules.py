"""What changes with the step: the training budget, the learning rate and scheduled sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass

from seq2seq.config import TrainingConfig, parse_duration


def teacher_forcing_ratio(config: TrainingConfig, step: int) -> float:
    """Probability of feeding the reference token at this step (scheduled sampling, Bengio et al. 2015)."""
    if config.scheduled_sampling == "none":
        return config.teacher_forcing_ratio
    decay = {
        "linear": lambda: max(0.0, 1.0 - step / config.sampling_decay),
        "exponential": lambda: config.sampling_decay ** step,
        "inverse_sigmoid": lambda: config.sampling_decay / (config.sampling_decay + math.exp(
            min(step / config.sampling_decay, 700.0))),  # exp overflows past 709
    }[config.scheduled_sampling]()
    return max(config.sampling_min_ratio, config.teacher_forcing_ratio * decay)


@dataclass(frozen=True)
class Budget:
    """The training limits of a config, with max_time parsed once (0 = no limit for each)."""

    max_steps: int
    max_epochs: int
    seconds: float

    @classmethod
    def of(cls, config: TrainingConfig) -> Budget:
        return cls(config.max_steps, config.max_epochs, parse_duration(config.max_time))

    def used(self, step: int, elapsed: float) -> float:
        """The fraction spent, by steps or by time, whichever is further along."""
        used = [step / self.max_steps] if self.max_steps else []
        used += [elapsed / self.seconds] if self.seconds else []
        return min(1.0, max(used, default=0.0))


class LearningRate:
    """The schedule as plain state: a step-dependent factor times a plateau scale."""

    def __init__(self, config: TrainingConfig, budget: Budget | None = None):
        self.config = config
        self.budget = budget or Budget.of(config)
        self.scale = 1.0

    def at(self, step: int, elapsed: float = 0.0) -> float:
        """The rate for this update; elapsed (seconds trained so far) matters only to linear_decay."""
        c = self.config
        warmup = min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        factor = warmup
        if c.schedule == "inverse_sqrt":
            factor = warmup * math.sqrt(max(c.warmup_steps, 1) / max(step + 1, c.warmup_steps, 1))
        if c.schedule == "linear_decay":  # the budget-aware decay of Li et al. 2020, "Budgeted training"
            factor = min(warmup, 1.0 - self.budget.used(step, elapsed))
        return max(c.min_lr, c.lr * factor * self.scale)

    def observe(self, bad_validations: int) -> None:
        """After a validation: plateau decays the rate at every plateau_patience validations without improvement."""
        if self.config.schedule == "plateau" and bad_validations and bad_validations % self.config.plateau_patience == 0:
            self.scale *= self.config.plateau_factor

    def state_dict(self) -> dict:
        return {"scale": self.scale}

    def load_state_dict(self, state: dict) -> None:
        self.scale = state["scale"]
