"""The encoder-decoder: the interface that training and search use."""

from __future__ import annotations

import torch
from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.model.decoder import Decoder, DecoderState, Memory
from seq2seq.model.encoder import Encoder
from seq2seq.vocab import PAD_ID


class Seq2Seq(nn.Module):
    def __init__(self, config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, src_vocab_size)
        self.decoder = Decoder(config, tgt_vocab_size, self.encoder.output_size)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        states, final, final_cell = self.encoder(src, src_lengths)
        return self.decoder.init(states, src != PAD_ID, final, final_cell)

    def step(
        self, tokens: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """Logits (batch, vocab) for the next token after `tokens` (batch,)."""
        attentional, state, weights = self.decoder.step(self.decoder.embed(tokens), state, memory)
        return self.decoder.logits(attentional), state, weights

    def forward(
        self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor, teacher_forcing_ratio: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        memory, state = self.encode(src, src_lengths)
        return self.decoder(tgt_in, state, memory, teacher_forcing_ratio)
