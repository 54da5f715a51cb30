"""Attention over encoder states: additive (Bahdanau) and multiplicative (Luong dot, general)."""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over source positions; padding gets exactly zero weight."""
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


class BahdanauAttention(nn.Module):
    """score(s, h) = v . tanh(W_q s + W_k h); keys W_k h are computed once per sentence."""

    def __init__(self, query_size: int, value_size: int, attention_size: int):
        super().__init__()
        self.key_layer = nn.Linear(value_size, attention_size, bias=False)
        self.query_layer = nn.Linear(query_size, attention_size, bias=False)
        self.energy_layer = nn.Linear(attention_size, 1, bias=False)

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        return self.key_layer(values)  # (batch, src_len, attention)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (batch, value) and weights (batch, src_len) for a query (batch, query)."""
        energy = torch.tanh(keys + self.query_layer(query).unsqueeze(1))  # (batch, src_len, attention)
        weights = masked_softmax(self.energy_layer(energy).squeeze(2), mask)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
        return context, weights


class LuongAttention(nn.Module):
    """score(s, h) = s . h (dot) or s . W h (general); W h is computed once per sentence."""

    def __init__(self, query_size: int, value_size: int, general: bool):
        super().__init__()
        self.key_layer = nn.Linear(value_size, query_size, bias=False) if general else None

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.key_layer is None else self.key_layer(values)  # (batch, src_len, query)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2)  # (batch, src_len)
        weights = masked_softmax(scores, mask)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
        return context, weights
