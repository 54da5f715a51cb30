"""Runtime: device choice and the bound on oneDNN's cache that bf16 training on a CPU needs."""

from __future__ import annotations

import os
import sys

import pytest

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
