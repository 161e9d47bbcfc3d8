"""Deterministic synthetic regression data and the world-size-independent global data cursor."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

FEATURES = 16


class SyntheticRegression:
    """``N`` samples of ``y = tanh(x @ w) + noise``, a pure function of the seed (no downloads)."""

    def __init__(self, size: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, FEATURES, generator=g)
        w = torch.randn(FEATURES, 1, generator=g)
        self.y = torch.tanh(self.x @ w) + 0.01 * torch.randn(size, 1, generator=g)

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and targets for the given sample ids, in that order."""
        index = torch.tensor(ids, dtype=torch.long)
        return self.x[index], self.y[index]


@lru_cache(maxsize=2)
def _permutation(size: int, seed: int) -> tuple[int, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(int(i) for i in torch.randperm(size, generator=g))


@dataclass(frozen=True)
class DataCursor:
    """Position in the data stream: ``(epoch, samples consumed in that epoch)`` over all ranks.

    Every epoch walks ``randperm(N, seed + epoch)`` (the permutation DistributedSampler uses) in global
    batches of ``global_batch``; rank ``r`` of ``W`` takes positions ``r, r + W, ...`` of each global batch.
    No rank-local state exists, so a checkpoint taken at any world size resumes at any other one and every
    sample is still seen once per epoch. The ``N mod global_batch`` tail of each epoch is skipped.
    """

    dataset_size: int
    global_batch: int
    seed: int
    epoch: int = 0
    consumed: int = 0

    @classmethod
    def at_step(cls, step: int, dataset_size: int, global_batch: int, seed: int) -> DataCursor:
        """The cursor after ``step`` global batches."""
        per_epoch = dataset_size // global_batch
        return cls(dataset_size, global_batch, seed, step // per_epoch, (step % per_epoch) * global_batch)

    def permutation(self) -> tuple[int, ...]:
        return _permutation(self.dataset_size, self.seed + self.epoch)

    def global_batch_ids(self) -> list[int]:
        """Sample ids of the next global batch, in global order."""
        return list(self.permutation()[self.consumed : self.consumed + self.global_batch])

    def local_ids(self, rank: int, world_size: int) -> list[int]:
        """This rank's share of the next global batch."""
        if self.global_batch % world_size:
            raise ValueError(f"global batch {self.global_batch} is not divisible by world size {world_size}")
        return self.global_batch_ids()[rank::world_size]

    def advance(self) -> DataCursor:
        """The cursor after one more global batch."""
        consumed = self.consumed + self.global_batch
        if consumed + self.global_batch > self.dataset_size:
            return DataCursor(self.dataset_size, self.global_batch, self.seed, self.epoch + 1, 0)
        return DataCursor(self.dataset_size, self.global_batch, self.seed, self.epoch, consumed)
