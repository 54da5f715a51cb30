"""The one encoder-decoder interface that search, training, translation and checkpoints use.

A family (RNN or Transformer) implements three things: encode a batch once into memory
and a first decoder state, step one token, and a teacher-forced pass over a whole target
prefix. Scheduled sampling is written here, once, over `step`.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import torch
from torch import nn

from seq2seq.errors import UserError

Reorderable = TypeVar("Reorderable", bound="Selectable")


class Selectable(Protocol):
    """Memory and decoder state: beam search keeps, repeats and reorders sentences with `select`."""

    def select(self: Reorderable, index: torch.Tensor) -> Reorderable: ...


StepOutput = tuple[torch.Tensor, Selectable, "torch.Tensor | None"]


class EncoderDecoder(nn.Module):
    max_target_positions: int | None = None  # the longest target (BOS included) a family can read; None = any

    def output_layer(self) -> nn.Linear:
        """The projection to target-vocabulary logits."""
        raise NotImplementedError

    def show_attention_of(self, layer: int) -> None:
        """Choose the decoder layer whose cross-attention `step` reports (families with several)."""
        raise UserError("--attention-layer: this model has a single attention; the option is for Transformers")

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Float log-probabilities from `step`'s logits (an ensemble's step returns them already)."""
        return logits.float().log_softmax(dim=-1)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Selectable, Selectable]:
        """Memory (what the decoder attends to) and the first decoder state for a padded batch."""
        raise NotImplementedError

    def step(self, tokens: torch.Tensor, state: Selectable, memory: Selectable) -> StepOutput:
        """Logits (batch, vocab) for the token after `tokens` (batch,), the new state and the
        cross-attention weights (batch, src_len) for heatmaps, or None without attention."""
        raise NotImplementedError

    def teacher_forced(
        self, tgt_in: torch.Tensor, state: Selectable, memory: Selectable
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (batch, tgt_len, vocab) and attention (batch, tgt_len, src_len) or None for a gold prefix."""
        raise NotImplementedError

    def forward(
        self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor, teacher_forcing_ratio: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training's pass. With teacher_forcing_ratio < 1 each position is fed the model's own
        previous prediction with probability 1 - ratio (scheduled sampling), token by token."""
        memory, state = self.encode(src, src_lengths)
        if teacher_forcing_ratio >= 1.0:
            return self.teacher_forced(tgt_in, state, memory)
        use_gold = torch.rand(tgt_in.shape, device=tgt_in.device) < teacher_forcing_ratio
        use_gold[:, 0] = True
        step_logits, weights = [], []
        previous = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            token = torch.where(use_gold[:, t], tgt_in[:, t], previous)
            logits, state, w = self.step(token, state, memory)
            step_logits.append(logits)
            weights.append(w)
            previous = logits.detach().argmax(dim=-1)
        attention = None if weights[0] is None else torch.stack(weights, dim=1)
        return torch.stack(step_logits, dim=1), attention
