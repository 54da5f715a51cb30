"""The recurrent decoder: one step function shared by training and every search method.

Work that does not depend on the recurrence is done once for the whole sequence: the
embedding part of the first layer's gate inputs (under teacher forcing), the attention
keys, the readout where nothing feeds it back (Bahdanau, no attention), and the output
projection to the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.model.rnn_attention import BahdanauAttention, LuongAttention
from seq2seq.special_ids import PAD_ID


@dataclass
class Memory:
    """What the decoder attends to, per sentence."""

    values: torch.Tensor  # (batch, src_len, enc_out)
    keys: torch.Tensor | None  # (batch, src_len, key) or None without attention
    mask: torch.Tensor  # (batch, src_len) bool, True on real tokens

    def select(self, index: torch.Tensor) -> Memory:
        keys = None if self.keys is None else self.keys.index_select(0, index)
        return Memory(self.values.index_select(0, index), keys, self.mask.index_select(0, index))


@dataclass
class DecoderState:
    """Recurrent state between steps; `feed` is Luong's attentional vector fed to the next input."""

    hidden: torch.Tensor  # (layers, batch, hidden)
    cell: torch.Tensor | None  # (layers, batch, hidden), LSTM only
    feed: torch.Tensor | None  # (batch, hidden), Luong only

    def select(self, index: torch.Tensor) -> DecoderState:
        def pick(t: torch.Tensor | None, dim: int) -> torch.Tensor | None:
            return None if t is None else t.index_select(dim, index)

        return DecoderState(pick(self.hidden, 1), pick(self.cell, 1), pick(self.feed, 0))


class RecurrentStack(nn.Module):
    """Stacked GRU or LSTM cells whose first layer receives its input already projected to gates."""

    def __init__(self, rnn: str, hidden_size: int, layers: int, dropout: float):
        super().__init__()
        self.is_lstm = rnn == "lstm"
        gates = (4 if self.is_lstm else 3) * hidden_size
        self.hidden_to_gates = nn.ModuleList(nn.Linear(hidden_size, gates) for _ in range(layers))
        self.input_to_gates = nn.ModuleList(nn.Linear(hidden_size, gates) for _ in range(layers - 1))
        self.dropout = nn.Dropout(dropout)
        self.gate_size = gates

    def forward(
        self, first_gates: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One time step; first_gates (batch, gates) is layer 0's input projection."""
        new_hidden, new_cell = [], []
        gates_in = first_gates
        for layer, hidden_layer in enumerate(self.hidden_to_gates):
            if layer > 0:
                gates_in = self.input_to_gates[layer - 1](self.dropout(new_hidden[-1]))
            gates_h = hidden_layer(hidden[layer])
            if self.is_lstm:
                i, f, g, o = (gates_in + gates_h).chunk(4, dim=1)
                c = torch.sigmoid(f) * cell[layer] + torch.sigmoid(i) * torch.tanh(g)
                new_cell.append(c)
                new_hidden.append(torch.sigmoid(o) * torch.tanh(c))
            else:
                in_r, in_z, in_n = gates_in.chunk(3, dim=1)
                h_r, h_z, h_n = gates_h.chunk(3, dim=1)
                r = torch.sigmoid(in_r + h_r)
                z = torch.sigmoid(in_z + h_z)
                n = torch.tanh(in_n + r * h_n)
                new_hidden.append(torch.lerp(n, hidden[layer], z))  # (1 - z) * n + z * h
        return torch.stack(new_hidden), torch.stack(new_cell) if self.is_lstm else None


class Decoder(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int, encoder_size: int):
        super().__init__()
        hidden = config.decoder_hidden
        self.attention_type = config.attention
        self.layers = config.decoder_layers
        self.hidden_size = hidden
        self.embedding = nn.Embedding(vocab_size, config.emb_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = RecurrentStack(config.rnn, hidden, config.decoder_layers, config.dropout)
        self.embedding_to_gates = nn.Linear(config.emb_size, self.rnn.gate_size)
        self.bridge = nn.Linear(encoder_size, hidden * self.layers)
        self.bridge_cell = nn.Linear(encoder_size, hidden * self.layers) if config.rnn == "lstm" else None
        if config.attention == "bahdanau":
            self.attention = BahdanauAttention(hidden, encoder_size, hidden)
            self.context_to_gates = nn.Linear(encoder_size, self.rnn.gate_size, bias=False)
        elif config.attention.startswith("luong"):
            self.attention = LuongAttention(hidden, encoder_size, general=config.attention == "luong_general")
            self.feed_to_gates = nn.Linear(hidden, self.rnn.gate_size, bias=False)
        else:
            self.attention = None
        context_size = encoder_size if self.attention is not None else 0
        self.combine = nn.Linear(hidden + context_size, hidden)
        self.output = nn.Linear(hidden, vocab_size)
        if config.tie_embeddings:
            self.output.weight = self.embedding.weight

    def init(
        self, states: torch.Tensor, mask: torch.Tensor, final: torch.Tensor, final_cell: torch.Tensor | None
    ) -> tuple[Memory, DecoderState]:
        """Memory for attention and the first state, bridged from the encoder's final state."""
        batch = states.size(0)

        def bridged(layer: nn.Linear, source: torch.Tensor) -> torch.Tensor:
            out = torch.tanh(layer(source)).view(batch, self.layers, self.hidden_size)
            return out.transpose(0, 1).contiguous()  # (layers, batch, hidden)

        keys = self.attention.keys(states) if self.attention is not None else None
        cell = bridged(self.bridge_cell, final_cell) if self.bridge_cell is not None else None
        feed = states.new_zeros(batch, self.hidden_size) if self.attention_type.startswith("luong") else None
        return Memory(states, keys, mask), DecoderState(bridged(self.bridge, final), cell, feed)

    def input_gates(self, tokens: torch.Tensor) -> torch.Tensor:
        """Layer-0 gate inputs from the embeddings: (..., ) ids -> (..., gates)."""
        return self.embedding_to_gates(self.dropout(self.embedding(tokens)))

    def step(
        self, token_gates: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """Advance one position: attentional vector (batch, hidden), new state, weights (batch, src_len)."""
        if self.attention_type.startswith("luong"):
            return self._luong_step(token_gates, state, memory)
        top, context, state, weights = self._recur(token_gates, state, memory)
        return self.readout(top, context), state, weights

    def _recur(
        self, token_gates: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor | None, DecoderState, torch.Tensor | None]:
        """Bahdanau or no attention: the recurrence alone, whose outputs the readout needs.

        The readout feeds nothing back here, so training applies it to all positions at once.
        """
        if self.attention is None:
            hidden, cell = self.rnn(token_gates, state.hidden, state.cell)
            return hidden[-1], None, DecoderState(hidden, cell, None), None
        # Bahdanau attends with the previous state and feeds the context into the cell
        context, weights = self.attention(state.hidden[-1], memory.keys, memory.values, memory.mask)
        hidden, cell = self.rnn(token_gates + self.context_to_gates(context), state.hidden, state.cell)
        return hidden[-1], context, DecoderState(hidden, cell, None), weights

    def _luong_step(
        self, token_gates: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """Luong attends with the new state; its attentional vector is fed to the next step."""
        hidden, cell = self.rnn(token_gates + self.feed_to_gates(state.feed), state.hidden, state.cell)
        context, weights = self.attention(hidden[-1], memory.keys, memory.values, memory.mask)
        attentional = self.readout(hidden[-1], context)
        return attentional, DecoderState(hidden, cell, attentional), weights

    def readout(self, top: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """The attentional vector tanh(W [top; context]), for one step or a whole sequence."""
        return torch.tanh(self.combine(top if context is None else torch.cat([top, context], dim=-1)))

    def logits(self, attentional: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(attentional))

    def forward(
        self, tgt_in: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (batch, tgt_len, vocab) and attention (batch, tgt_len, src_len) for a gold target prefix."""
        weights = []
        # unbind, not gates[:, t]: each slice's backward would zero a whole (batch, tgt_len, gates) tensor
        gates = self.input_gates(tgt_in).unbind(1)  # (batch, gates) per position, all embedded at once
        if self.attention_type.startswith("luong"):
            attentionals = []
            for token_gates in gates:
                attentional, state, w = self._luong_step(token_gates, state, memory)
                attentionals.append(attentional)
                weights.append(w)
            attentional = torch.stack(attentionals, dim=1)
        else:
            tops, contexts = [], []
            for token_gates in gates:
                top, context, state, w = self._recur(token_gates, state, memory)
                tops.append(top)
                contexts.append(context)
                weights.append(w)
            context = torch.stack(contexts, dim=1) if self.attention is not None else None
            attentional = self.readout(torch.stack(tops, dim=1), context)
        attention = torch.stack(weights, dim=1) if self.attention is not None else None
        return self.logits(attentional), attention
