"""The recurrent encoder: embeddings, a (bi)directional GRU/LSTM over packed sequences."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.config import ModelConfig
from seq2seq.special_ids import PAD_ID


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(config.dropout)
        rnn_class = nn.GRU if config.rnn == "gru" else nn.LSTM
        self.rnn = rnn_class(
            config.emb_size,
            config.encoder_hidden,
            num_layers=config.encoder_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
        )
        self.directions = 2 if config.bidirectional else 1
        self.output_size = config.encoder_hidden * self.directions
        self.layer_norm = nn.LayerNorm(self.output_size) if config.layer_norm else nn.Identity()

    def forward(
        self, src: torch.Tensor, src_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Encoder states (batch, src_len, out), and the top layer's final hidden and cell (batch, out).

        Packing makes padding cost nothing and keeps the backward direction starting at
        each sentence's real last token.
        """
        embedded = self.dropout(self.embedding(src))  # (batch, src_len, emb)
        packed = pack_padded_sequence(embedded, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_states, final = self.rnn(packed)
        states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=src.size(1))
        hidden, cell = final if isinstance(final, tuple) else (final, None)
        return self.layer_norm(states), self._top_layer(hidden), self._top_layer(cell) if cell is not None else None

    def _top_layer(self, final: torch.Tensor) -> torch.Tensor:
        # (layers * directions, batch, hidden) -> (batch, directions * hidden) of the top layer
        top = final[-self.directions:]
        return top.transpose(0, 1).reshape(final.size(1), -1)
