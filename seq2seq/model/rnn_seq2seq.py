"""The recurrent family behind the encoder-decoder interface."""

from __future__ import annotations

import torch
from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.model.interface import EncoderDecoder
from seq2seq.model.rnn_decoder import Decoder, DecoderState, Memory
from seq2seq.model.rnn_encoder import Encoder
from seq2seq.special_ids import PAD_ID


class RecurrentSeq2Seq(EncoderDecoder):
    def __init__(self, config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, src_vocab_size)
        self.decoder = Decoder(config, tgt_vocab_size, self.encoder.output_size)
        if config.share_embeddings:
            self.encoder.embedding.weight = self.decoder.embedding.weight

    def output_layer(self) -> nn.Linear:
        return self.decoder.output

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        states, final, final_cell = self.encoder(src, src_lengths)
        return self.decoder.init(states, src != PAD_ID, final, final_cell)

    def step(
        self, tokens: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        attentional, state, weights = self.decoder.step(self.decoder.input_gates(tokens), state, memory)
        return self.decoder.logits(attentional), state, weights

    def teacher_forced(
        self, tgt_in: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.decoder(tgt_in, state, memory)
