"""Ensembles: several models behind the one encoder-decoder interface, any mix of families.

At every step each member's log-softmax is taken and the ensemble's log-probability is
their mean (a normalised geometric mean would change scores without changing greedy or
beam choices; the plain mean is what the members' scores average to). Memory and decoder
state are tuples of the members' own, each reordered by its own `select`, so search code
does not know it decodes with several models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from seq2seq.config import Config
from seq2seq.errors import UserError
from seq2seq.model.interface import EncoderDecoder, Selectable
from seq2seq.vocab import Vocab


@dataclass
class Members:
    """One Selectable per member (its memory, or its decoder state), reordered together."""

    parts: tuple[Selectable, ...]

    def select(self, index: torch.Tensor) -> Members:
        return Members(tuple(part.select(index) for part in self.parts))


class Ensemble(EncoderDecoder):
    """Averages the members' per-step log-probabilities; `step` returns that average as its logits."""

    def __init__(self, members: list[EncoderDecoder]):
        super().__init__()
        self.members = nn.ModuleList(members)
        limits = [m.max_target_positions for m in members if m.max_target_positions is not None]
        self.max_target_positions = min(limits) if limits else None

    def output_layer(self) -> nn.Linear:
        raise NotImplementedError("an ensemble has one output layer per member")

    def show_attention_of(self, layer: int) -> None:
        """Applies to every member that has several attention layers (the Transformers)."""
        shown = 0
        for member in self.members:
            try:
                member.show_attention_of(layer)
                shown += 1
            except UserError:
                continue
        if shown == 0:
            raise UserError("--attention-layer: no model of the ensemble is a Transformer; the option is for them")

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float()  # step already returns the mean log-probability

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Members, Members]:
        encoded = [member.encode(src, src_lengths) for member in self.members]
        return Members(tuple(m for m, _ in encoded)), Members(tuple(s for _, s in encoded))

    def step(self, tokens: torch.Tensor, state: Members, memory: Members
             ) -> tuple[torch.Tensor, Members, torch.Tensor | None]:
        outputs = [member.step(tokens, s, m) for member, s, m in zip(self.members, state.parts, memory.parts)]
        mean = torch.stack([member.log_probs(logits) for member, (logits, _, _) in zip(self.members, outputs)]).mean(0)
        return mean, Members(tuple(s for _, s, _ in outputs)), average_attention([w for _, _, w in outputs])

    def teacher_forced(self, tgt_in: torch.Tensor, state: Members, memory: Members
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        outputs = [member.teacher_forced(tgt_in, s, m) for member, s, m in zip(self.members, state.parts, memory.parts)]
        mean = torch.stack([member.log_probs(logits) for member, (logits, _) in zip(self.members, outputs)]).mean(0)
        return mean, average_attention([w for _, w in outputs])


def average_attention(weights: list[torch.Tensor | None]) -> torch.Tensor | None:
    """The mean of the members' attention (those that have one: an RNN may have attention: none)."""
    present = [w.float() for w in weights if w is not None]
    return torch.stack(present).mean(0) if present else None


def read_ensemble(paths: list[str | Path]) -> tuple[Config, Ensemble, Vocab, Vocab]:
    """The first checkpoint's config (decoding defaults), the ensemble and the shared vocabularies.

    Members must share both SentencePiece models byte for byte: the same piece id must mean the
    same piece in every member, or averaging their distributions would mix unrelated pieces.
    """
    from seq2seq.checkpoint import read_model

    first_config, first_model, src_vocab, tgt_vocab = read_model(paths[0])
    members = [first_model]
    for path in paths[1:]:
        _, model, src, tgt = read_model(path)
        for side, mine, theirs in (("source", src, src_vocab), ("target", tgt, tgt_vocab)):
            if mine.model_proto != theirs.model_proto:
                raise UserError(f"{path}: its {side} vocabulary differs from {paths[0]}'s; an ensemble needs "
                                "models trained with the same SentencePiece models (the same vocabulary cache)")
        members.append(model)
    return first_config, Ensemble(members), src_vocab, tgt_vocab
