"""Model construction from the config: one place for shapes and initialisation."""

from __future__ import annotations

from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.vocab import PAD_ID


def build_model(config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    model = Seq2Seq(config, src_vocab_size, tgt_vocab_size)
    initialise(model)
    return model


def initialise(model: nn.Module) -> None:
    """Small uniform weights, zero biases, orthogonal recurrent matrices: stable early training."""
    for name, parameter in model.named_parameters():
        if "layer_norm" in name:
            continue  # LayerNorm keeps its identity start: weight 1, bias 0
        if name.endswith("bias") or "bias_" in name:
            nn.init.zeros_(parameter)
        elif "hidden_to_gates" in name or "weight_hh" in name:
            for block in parameter.data.split(parameter.size(1), dim=0):
                nn.init.orthogonal_(block)
        elif name.endswith("embedding.weight"):
            nn.init.normal_(parameter, std=parameter.size(1) ** -0.5)
            parameter.data[PAD_ID].zero_()
        else:
            nn.init.xavier_uniform_(parameter)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
