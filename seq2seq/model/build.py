"""Model construction from the config: the one place that chooses a family."""

from __future__ import annotations

from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.errors import UserError
from seq2seq.model.interface import EncoderDecoder
from seq2seq.model.rnn_seq2seq import RecurrentSeq2Seq
from seq2seq.model.transformer import Transformer


def build_model(config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> EncoderDecoder:
    """The model of the config's family, initialised as that family trains best.

    RNN: PyTorch's default initialisation, N(0, 1) embeddings (zero padding rows), U(+-1/sqrt(fan_in))
    weights. Scaled-down embeddings (std 1/sqrt(emb_size)) with Xavier and orthogonal weights were
    tried first, with the GRU model on the en-hi data (the default config before the Transformer):
    the decoder then ignored its inputs and the loss stayed at the unigram entropy for over a
    thousand steps; with PyTorch's defaults it falls at once.
    Transformer: N(0, d_model^-1/2) embeddings, which the sqrt(d_model) scale brings to unit size.
    """
    family = Transformer if config.type == "transformer" else RecurrentSeq2Seq
    try:
        return family(config, src_vocab_size, tgt_vocab_size)
    except (RuntimeError, MemoryError) as error:  # a shape too large for this machine's memory
        raise UserError(f"model: cannot build a {config.type} of this size: {str(error).splitlines()[0]}") from None


def count_parameters(model: nn.Module) -> int:
    """Each parameter once, however many modules share it."""
    return sum(p.numel() for p in model.parameters())
