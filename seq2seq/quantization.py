"""Dynamic int8 quantization of a trained model, for faster decoding on the CPU.

Every nn.Linear gets int8 weights with one scale per output row; its input is quantized
on the fly at each call, so no calibration data is needed. The choices below were measured
with the en-hi GRU model (configs/en-hi-gru.yaml, the default config before the
Transformer) on IITB test, where int8 left chrF all but unchanged (figures: commit 46f997d):
- per-row weight scales, not one per matrix: the same speed, and outputs closer to the
  float model's;
- a recurrent encoder (GRU/LSTM) stays float: int8 made encoding faster, but encoding is a
  small share of decoding time, and the outputs drifted further from the float model's.

torch.ao.quantization is deprecated in favour of torchao, yet in torch 2.13 it still works
with no extra package. Its deprecation notices are developer news, not something a user
translating text can act on, so those two messages, and only they, are hidden here.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from seq2seq.errors import UserError
from seq2seq.model.interface import EncoderDecoder

DEPRECATION_NOTICES = (
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel"),
)


def quantized_device(spec: str) -> torch.device:
    """Where a quantized model runs: its int8 kernels exist only for the CPU, so 'auto' means the CPU."""
    if spec == "auto":
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"unknown device {spec!r}; quantized decoding runs on device cpu (or auto)") from None
    if device.type != "cpu":
        raise UserError(f"int8 quantization runs on the CPU only, but device {spec!r} was asked for; "
                        "use device cpu or auto, or decode without quantization")
    return device


def quantize_model(model: EncoderDecoder) -> EncoderDecoder:
    """An int8 copy of a float CPU model for inference; the model passed in is left as it was."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("move the model to the CPU before quantizing it")
    with warnings.catch_warnings():
        for category, message in DEPRECATION_NOTICES:
            warnings.filterwarnings("ignore", message=message, category=category)
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
