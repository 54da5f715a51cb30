"""Where and at what precision tensors are computed: device choice, bf16 support, autocast."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from seq2seq.config import TrainingConfig
from seq2seq.errors import UserError

log = logging.getLogger("seq2seq")

# oneDNN builds a primitive for each input shape of a bf16 matmul and caches it with its own packed
# copy of the weights. Token-budget batches come in hundreds of shapes, so with the default capacity
# (1,024) a bf16 run's memory grew with every new shape; float32 matmuls do not use this cache.
ONEDNN_CACHE_CAPACITY = 32
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


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
    """On CUDA, auto and bf16 are bf16 where the GPU has it, else fp16 (with a GradScaler). On a CPU an explicit
    bf16 turns it on where the CPU computes bf16 natively (emulated bf16 is slower than float32); auto starts
    in float32 there, and the Trainer times both ways when `cpu_precision_is_timed` says so.
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


def cpu_precision_is_timed(config: TrainingConfig, device: torch.device) -> bool:
    """training.amp: auto on a CPU with native bf16: whether bf16 pays depends on the CPU and the model's shape
    (1.4x the updates on one AVX512-BF16 EPYC, 0.9x on another), so it is measured, not assumed."""
    return config.amp == "auto" and device.type == "cpu" and cpu_computes_bf16()


# bf16 must save at least this share of float32's time: timings of a few seconds vary by about as much, and
# bf16 costs precision and memory (its weight copies), so a tie goes to float32
BF16_MIN_SAVING = 0.05


@dataclass(frozen=True)
class PrecisionTiming:
    """Seconds the same forward and backward passes took in float32 and under bf16 autocast."""

    float32_seconds: float
    bf16_seconds: float

    @property
    def faster(self) -> torch.dtype | None:
        """bf16 where it saved at least BF16_MIN_SAVING of float32's time, else None (float32)."""
        return torch.bfloat16 if self.bf16_seconds < (1 - BF16_MIN_SAVING) * self.float32_seconds else None

    def summary(self) -> str:
        return f"float32 {self.float32_seconds:.1f} s, bf16 autocast {self.bf16_seconds:.1f} s"


def time_precisions(passes: Callable[[torch.dtype | None, int], None], rounds: int) -> PrecisionTiming:
    """Time `passes(dtype, round)` in float32 and in bf16, once each to warm up (round 0), then in `rounds`
    rounds whose order alternates, so a machine that slows down or speeds up meanwhile favours neither."""
    order: tuple[torch.dtype | None, ...] = (None, torch.bfloat16)
    for dtype in order:
        passes(dtype, 0)
    seconds = {dtype: 0.0 for dtype in order}
    for number in range(1, rounds + 1):
        for dtype in order if number % 2 else order[::-1]:
            began = time.perf_counter()
            passes(dtype, number)
            seconds[dtype] += time.perf_counter() - began
    return PrecisionTiming(float32_seconds=seconds[None], bf16_seconds=seconds[torch.bfloat16])


def bound_onednn_cache() -> None:
    """Cap oneDNN's primitive cache, unless ONEDNN_PRIMITIVE_CACHE_CAPACITY is set already; oneDNN reads it once,
    when it first builds a primitive, so this must run before the model computes anything."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))


def release_freed_memory() -> None:
    """Hand freed heap memory back to the system (glibc's malloc_trim; nothing elsewhere).

    bf16 autocast on a CPU frees bf16 copies of many sizes at every update; glibc keeps such
    freed blocks in its heap, so without this a bf16 run grows while a float32 one stays flat.
    """
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass, or nothing when dtype is None (full precision)."""
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
