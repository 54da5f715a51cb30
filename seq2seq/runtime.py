"""Where and at what precision tensors are computed: device choice, bf16 support, autocast."""

from __future__ import annotations

import contextlib
import logging

import torch

from seq2seq.config import TrainingConfig
from seq2seq.errors import UserError

log = logging.getLogger("seq2seq")


def select_device(spec: str) -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {spec!r} asked for, but CUDA is not available here; use --device cpu or auto")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise UserError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None


def cpu_computes_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX); emulated bf16 is slower than float32."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe is not None and probe())


def autocast_dtype(config: TrainingConfig, device: torch.device) -> torch.dtype | None:
    """On CUDA, auto and bf16 are bf16 where the GPU has it, else fp16 (with a GradScaler). On a CPU only an
    explicit bf16 turns it on, and only where the CPU computes bf16 natively: emulated bf16 is slower than float32.
    So a config that asks for bf16 runs everywhere, at the best precision the hardware offers."""
    if config.amp == "off":
        return None
    if device.type == "cpu":
        if config.amp != "bf16":
            return None
        if not cpu_computes_bf16():
            log.warning("training.amp: bf16, but this CPU has no native bf16 (AVX512-BF16 or AMX); "
                        "training in float32")
            return None
        return torch.bfloat16
    if device.type != "cuda":
        return None
    if config.amp == "fp16" or not torch.cuda.is_bf16_supported():
        if config.amp == "bf16":
            log.warning("training.amp: bf16, but this GPU has no bf16; training with fp16 autocast")
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass, or nothing when dtype is None (full precision)."""
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
