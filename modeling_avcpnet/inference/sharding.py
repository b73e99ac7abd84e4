"""This process's place in a multi-process job (`torchrun` or any launcher that sets RANK / WORLD_SIZE / LOCAL_RANK):
which files it labels and which device it uses (`avcpnet predict` over many processes)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ProcessShard:
    """This process's place in a `torchrun` (or any launcher setting RANK / WORLD_SIZE / LOCAL_RANK) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, environ=None) -> "ProcessShard":
        environ = os.environ if environ is None else environ
        rank, world_size = int(environ.get("RANK", 0)), int(environ.get("WORLD_SIZE", 1))
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"RANK={rank} / WORLD_SIZE={world_size} are inconsistent")
        return cls(rank, world_size, int(environ.get("LOCAL_RANK", 0)))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def select(self, items: list) -> list:
        """Every `world_size`-th item from `rank`: the shards of all ranks partition `items` exactly."""
        return items[self.rank::self.world_size]

    def device(self, requested: str | None, cuda_available: bool | None = None, gpus: int | None = None) -> str:
        """The device of this process: `requested` if given, else `cuda:LOCAL_RANK` where CUDA is available (one
        GPU per process, as torchrun's GPU jobs expect; with more processes than GPUs they share them round-robin:
        inference needs no GPU of its own), else CPU."""
        if requested:
            return requested
        cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
        if not cuda_available:
            return "cpu"
        gpus = torch.cuda.device_count() if gpus is None else gpus
        return f"cuda:{self.local_rank % max(gpus, 1)}"


__all__ = ["ProcessShard"]
