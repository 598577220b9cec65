"""A shuffling sampler whose order depends only on (seed, epoch).

``DataLoader(shuffle=True)`` draws its order (and its workers' base seed) from the global torch
generator when each epoch's iterator is created, and Lightning creates that iterator at different
moments in a fresh and in a resumed run; the order then differs after resume. Seeding the order from
the epoch number makes a resumed run see exactly the batches an uninterrupted run sees. Lightning
calls :meth:`set_epoch` before every epoch (under DDP its distributed wrapper reshuffles per epoch).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A random permutation of ``range(num_samples)`` drawn from ``seed`` and the epoch."""

    def __init__(self, num_samples: int, seed: int) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=g).tolist())
