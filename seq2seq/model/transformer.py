"""The Transformer family (Vaswani et al. 2017) behind the encoder-decoder interface.

Every projection is an nn.Linear, so int8 quantization reaches all of them, and attention
itself is F.scaled_dot_product_attention, which picks a fused kernel on CPU and CUDA.
Search decodes incrementally: the cross-attention keys and values are projected once per
sentence, and each decoder layer keeps a self-attention key/value cache that grows by one
position per step and is reordered with the beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.errors import UserError
from seq2seq.model.interface import EncoderDecoder
from seq2seq.special_ids import PAD_ID

KeyValue = tuple[torch.Tensor, torch.Tensor]  # (batch, heads, length, head_size) each


@dataclass
class TransformerMemory:
    """Per decoder layer, the projected encoder output that cross-attention reads."""

    cross: list[KeyValue]
    mask: torch.Tensor  # (batch, 1, 1, src_len) bool, True on real tokens

    def select(self, index: torch.Tensor) -> TransformerMemory:
        cross = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cross]
        return TransformerMemory(cross, self.mask.index_select(0, index))


@dataclass
class TransformerState:
    """Per decoder layer, the self-attention keys and values of the positions decoded so far."""

    cache: list[KeyValue]
    position: int  # index of the next position

    def select(self, index: torch.Tensor) -> TransformerState:
        cache = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cache]
        return TransformerState(cache, self.position)


def sinusoids(positions: int, width: int, layout: str = "interleaved") -> torch.Tensor:
    """The paper's fixed encoding, wavelengths up to 10000 * 2pi, channel pair i at rate 10000 ** (-2i / width).

    interleaved: sin on even, cos on odd channels (the paper's layout). split: sin on the first
    ceil(width / 2) channels, cos on the rest, computed in float64 as Hugging Face's Marian does, so
    an export there reads the same table.
    """
    dtype = torch.float64 if layout == "split" else torch.float32
    position = torch.arange(positions, dtype=dtype).unsqueeze(1)
    rates = torch.exp(torch.arange(0, width, 2, dtype=dtype) * (-math.log(10000.0) / width))
    table = torch.zeros(positions, width, dtype=dtype)
    if layout == "split":
        half = rates.numel()
        table[:, :half] = torch.sin(position * rates)
        table[:, half:] = torch.cos(position * rates[: width - half])
    else:
        table[:, 0::2] = torch.sin(position * rates)
        table[:, 1::2] = torch.cos(position * rates[: width // 2])
    return table.float()


class Embedder(nn.Module):
    """Token embedding scaled by sqrt(d_model), plus positions, then dropout."""

    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, config.d_model, padding_idx=PAD_ID)
        nn.init.normal_(self.tokens.weight, std=config.d_model ** -0.5)
        with torch.no_grad():
            self.tokens.weight[PAD_ID].zero_()
        self.scale = math.sqrt(config.d_model)
        self.learned = nn.Embedding(config.max_positions, config.d_model) if config.positions == "learned" else None
        if self.learned is None:
            table = sinusoids(config.max_positions, config.d_model, config.position_layout)
            self.register_buffer("sinusoids", table, persistent=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """(batch, length) ids from position `start` -> (batch, length, d_model)."""
        index = torch.arange(start, start + tokens.size(1), device=tokens.device)
        positions = self.sinusoids[index] if self.learned is None else self.learned(index)
        return self.dropout(self.tokens(tokens) * self.scale + positions)


class MultiHeadAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.heads = config.heads
        self.head_size = config.d_model // config.heads
        self.query = nn.Linear(config.d_model, config.d_model)
        self.key = nn.Linear(config.d_model, config.d_model)
        self.value = nn.Linear(config.d_model, config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.attention_dropout

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, length, d_model) -> (batch, heads, length, head_size)."""
        return x.view(x.size(0), x.size(1), self.heads, self.head_size).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> KeyValue:
        return self.split(self.key(x)), self.split(self.value(x))

    def forward(
        self, x: torch.Tensor, keys_values: KeyValue, mask: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        """x (batch, q_len, d_model) attends to projected keys/values; mask (batch, 1, 1|q_len, k_len) True = attend."""
        query = self.split(self.query(x))
        key, value = keys_values
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        return self.out(out.transpose(1, 2).reshape(x.shape))

    def weights(self, x: torch.Tensor, keys_values: KeyValue, mask: torch.Tensor) -> torch.Tensor:
        """The attention probabilities (batch, heads, q_len, k_len), computed only for heatmaps."""
        scores = self.split(self.query(x)) @ keys_values[0].transpose(-1, -2) / math.sqrt(self.head_size)
        return scores.masked_fill(~mask, -math.inf).softmax(dim=-1)


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.inner = nn.Linear(config.d_model, config.ff_size)
        self.outer = nn.Linear(config.ff_size, config.d_model)
        self.dropout = nn.Dropout(config.activation_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.dropout(F.relu(self.inner(x))))


class Sublayer(nn.Module):
    """Residual connection with LayerNorm before the sublayer (pre-norm) or after the sum (post-norm)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model)
        self.pre_norm = config.norm == "pre"
        self.dropout = nn.Dropout(config.dropout)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """What the sublayer reads from the residual stream."""
        return self.norm(x) if self.pre_norm else x

    def add(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(out)
        return x if self.pre_norm else self.norm(x)


class EncoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = MultiHeadAttention(config)
        self.feed_forward = FeedForward(config)
        self.attention_residual = Sublayer(config)
        self.feed_forward_residual = Sublayer(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.attention_residual.input(x)
        x = self.attention_residual.add(x, self.attention(h, self.attention.keys_values(h), mask))
        return self.feed_forward_residual.add(x, self.feed_forward(self.feed_forward_residual.input(x)))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self_attention = MultiHeadAttention(config)
        self.cross_attention = MultiHeadAttention(config)
        self.feed_forward = FeedForward(config)
        self.self_residual = Sublayer(config)
        self.cross_residual = Sublayer(config)
        self.feed_forward_residual = Sublayer(config)

    def forward(
        self, x: torch.Tensor, past: KeyValue | None, cross: KeyValue, cross_mask: torch.Tensor, want_weights: bool
    ) -> tuple[torch.Tensor, KeyValue, torch.Tensor | None]:
        """Without `past` (teacher forcing) x is a whole prefix under a causal mask; with it (search)
        x is one new position that attends to the cached ones and itself.

        Returns the output, the self-attention keys/values to cache, and, when asked, the
        cross-attention weights averaged over heads (batch, q_len, src_len).
        """
        h = self.self_residual.input(x)
        key, value = self.self_attention.keys_values(h)
        if past is not None:
            key, value = torch.cat([past[0], key], dim=2), torch.cat([past[1], value], dim=2)
        x = self.self_residual.add(x, self.self_attention(h, (key, value), causal=past is None))
        h = self.cross_residual.input(x)
        weights = self.cross_attention.weights(h, cross, cross_mask).mean(dim=1) if want_weights else None
        x = self.cross_residual.add(x, self.cross_attention(h, cross, cross_mask))
        x = self.feed_forward_residual.add(x, self.feed_forward(self.feed_forward_residual.input(x)))
        return x, (key, value), weights


class Transformer(EncoderDecoder):
    def __init__(self, config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int):
        super().__init__()
        self.config = config
        self.src_embedder = Embedder(config, src_vocab_size)
        self.tgt_embedder = Embedder(config, tgt_vocab_size)
        if config.share_embeddings:
            self.src_embedder.tokens.weight = self.tgt_embedder.tokens.weight
        self.encoder_layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        # pre-norm leaves the residual stream unnormalised, so each stack ends with a LayerNorm
        self.encoder_norm = nn.LayerNorm(config.d_model) if config.norm == "pre" else nn.Identity()
        self.decoder_norm = nn.LayerNorm(config.d_model) if config.norm == "pre" else nn.Identity()
        self.output = nn.Linear(config.d_model, tgt_vocab_size)
        if config.tie_embeddings:
            self.output.weight = self.tgt_embedder.tokens.weight
        self.attention_layer = config.attention_layer % config.decoder_layers
        self.max_target_positions = config.max_positions
        self.layerdrop = config.decoder_layerdrop

    def output_layer(self) -> nn.Linear:
        return self.output

    def show_attention_of(self, layer: int) -> None:
        layers = len(self.decoder_layers)
        if not -layers <= layer < layers:
            raise UserError(f"--attention-layer: the decoder has {layers} layers (0..{layers - 1}, or -1 for the last),"
                            f" got {layer}")
        self.attention_layer = layer % layers

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[TransformerMemory, TransformerState]:
        real = src != PAD_ID
        mask = real[:, None, None, :]
        x = self.src_embedder(src)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        states = self.encoder_norm(x)
        cross = [layer.cross_attention.keys_values(states) for layer in self.decoder_layers]
        empty = states.new_zeros(src.size(0), self.config.heads, 0, self.config.d_model // self.config.heads)
        return TransformerMemory(cross, mask), TransformerState([(empty, empty)] * len(self.decoder_layers), 0)

    def _kept_layers(self) -> list[int]:
        """Decoder layer-drop: in training each layer is skipped for the whole batch with probability p."""
        if not self.training or self.layerdrop == 0:
            return list(range(len(self.decoder_layers)))
        keep = torch.rand(len(self.decoder_layers)) >= self.layerdrop
        return [i for i in range(len(self.decoder_layers)) if keep[i]]

    def teacher_forced(
        self, tgt_in: torch.Tensor, state: TransformerState, memory: TransformerMemory
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.tgt_embedder(tgt_in, state.position)
        attention = None
        for i in self._kept_layers():
            x, _, weights = self.decoder_layers[i](x, None, memory.cross[i], memory.mask,
                                                   want_weights=i == self.attention_layer and not self.training)
            attention = weights if weights is not None else attention
        return self.output(self.decoder_norm(x)), attention

    def step(
        self, tokens: torch.Tensor, state: TransformerState, memory: TransformerMemory
    ) -> tuple[torch.Tensor, TransformerState, torch.Tensor | None]:
        x = self.tgt_embedder(tokens.unsqueeze(1), state.position)
        cache, attention = [], None
        for i, layer in enumerate(self.decoder_layers):
            x, keys_values, weights = layer(x, state.cache[i], memory.cross[i], memory.mask,
                                            want_weights=i == self.attention_layer)
            cache.append(keys_values)
            attention = weights[:, 0] if weights is not None else attention
        logits = self.output(self.decoder_norm(x))[:, 0]
        return logits, TransformerState(cache, state.position + 1), attention
