"""Several processes, one model: the few collective operations training needs under torchrun.

A single process is the world of size 1: every helper then does nothing, so the training
loop reads the same either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    collective_device: str = "cpu"  # NCCL reduces CUDA tensors only

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, value: object) -> object:
        """The main process's value, in every process."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, value: float) -> float:
        """The sum of a number over all processes."""
        if not self.active:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.collective_device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def any(self, flag: bool) -> bool:
        return self.sum(1.0 if flag else 0.0) > 0

    def shard(self, batches: list[list[int]]) -> list[list[int]]:
        """This process's batches: every size-th from its rank; each step uses `size` distinct batches.

        The last len % size batches of an epoch are left out so every process takes the same
        number of steps; the order is reshuffled each epoch, so different ones each time.
        """
        usable = len(batches) - len(batches) % self.size
        return batches[self.rank:usable:self.size]


def init_world(device_type: str) -> World:
    """Join the process group that torchrun describes in the environment (gloo on CPU, NCCL on CUDA)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    collective_device = "cpu"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        collective_device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), local_rank, collective_device)
