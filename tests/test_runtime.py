"""Runtime: device choice, timing float32 against bf16, and the bound on oneDNN's cache that bf16 on a CPU needs."""

from __future__ import annotations

import os
import sys

import pytest
import torch

import seq2seq.runtime as runtime
from seq2seq.config import TrainingConfig
from seq2seq.errors import UserError
from seq2seq.runtime import ONEDNN_CACHE_CAPACITY, bound_onednn_cache, release_freed_memory, select_device


def test_onednn_cache_is_bounded_unless_the_user_chose_a_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    bound_onednn_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(ONEDNN_CACHE_CAPACITY)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    bound_onednn_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"


def test_unknown_device_is_a_user_error() -> None:
    assert select_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        select_device("tpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    """Blocks freed under a live one stay in the heap (and in RSS) until they are released."""
    def resident_mib() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    blocks = [bytearray(100_000) for _ in range(2000)]  # under glibc's mmap threshold: heap memory
    keep = blocks[-1]
    del blocks
    before = resident_mib()
    release_freed_memory()
    assert resident_mib() < before - 100
    assert len(keep) == 100_000


def test_precision_timing_warms_both_up_alternates_and_keeps_the_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: clock[0])
    calls: list[tuple[str, int]] = []

    def passes(dtype: torch.dtype | None, round_number: int) -> None:
        calls.append(("bf16" if dtype is torch.bfloat16 else "float32", round_number))
        clock[0] += cost[dtype]

    for cost, faster in (({None: 1.0, torch.bfloat16: 0.7}, torch.bfloat16), ({None: 1.0, torch.bfloat16: 1.3}, None),
                         ({None: 1.0, torch.bfloat16: 0.97}, None)):  # a tie, within the timing's noise
        calls.clear()
        timing = runtime.time_precisions(passes, rounds=3)
        assert timing.faster is faster
        assert timing.float32_seconds == pytest.approx(3 * cost[None])  # the warm-up round is not counted
        assert timing.bf16_seconds == pytest.approx(3 * cost[torch.bfloat16])
        assert calls == [("float32", 0), ("bf16", 0), ("float32", 1), ("bf16", 1), ("bf16", 2), ("float32", 2),
                         ("float32", 3), ("bf16", 3)]


def test_precision_is_timed_only_for_auto_on_a_cpu_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(runtime, "cpu_computes_bf16", lambda: True)
    assert runtime.cpu_precision_is_timed(TrainingConfig(amp="auto"), cpu)
    assert not runtime.cpu_precision_is_timed(TrainingConfig(amp="auto"), cuda)
    for amp in ("off", "bf16", "fp16"):
        assert not runtime.cpu_precision_is_timed(TrainingConfig(amp=amp), cpu)
    monkeypatch.setattr(runtime, "cpu_computes_bf16", lambda: False)
    assert not runtime.cpu_precision_is_timed(TrainingConfig(amp="auto"), cpu)
