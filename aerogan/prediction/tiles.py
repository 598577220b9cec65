"""The tiles of a prediction plan as a dataset, and the loader that hands each rank its own strips.

An item is a *chunk*: up to ``chunk`` tiles of one strip, read as one window and stacked, so a chunk
is a batch. The loader uses ``batch_size=1`` with :func:`one_chunk` as collate function (a batch is
one chunk, unchanged): Lightning then sees an ordinary batch sampler, which it wraps to track the
batch indices of each prediction, and the sampler (a ``DistributedSampler``) is kept as it is under DDP.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from aerogan.prediction.plan import PredictionPlan


class PredictTiles(Dataset):
    """Chunks of at most ``chunk`` tiles of one strip, pre-stacked.

    Item: ``{"input": (B, C, th, tw) float32 (invalid pixels hold 0, never NaN), "valid": (B, th, tw) bool,
    "scene", "strip", "first" (index of the first tile column), "nonfinite" (NaN/inf pixels among those
    this chunk finishes)}``.
    """

    def __init__(self, plan: PredictionPlan, chunk: int) -> None:
        if chunk < 1:
            raise ValueError(f"the prediction batch size (tiles per chunk) must be >= 1, got {chunk}")
        self.plan = plan
        self.items: list[tuple[int, int, int, int]] = []
        self._index: dict[tuple[int, int], list[int]] = {}
        for s, grid in enumerate(plan.grids):
            n = len(grid.col_starts)
            for j in range(grid.num_strips):
                ids = []
                for i0 in range(0, n, chunk):
                    ids.append(len(self.items))
                    self.items.append((s, j, i0, min(i0 + chunk, n)))
                self._index[(s, j)] = ids

    def __len__(self) -> int:
        return len(self.items)

    def indices_for(self, strips: Sequence[tuple[int, int, bool]]) -> list[int]:
        """Item indices of the given (scene, strip, owned) strips, in order."""
        return [i for s, j, _ in strips for i in self._index[(s, j)]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, j, i0, i1 = self.items[index]
        scene, grid = self.plan.scenes[s], self.plan.grids[s]
        th, tw = grid.tile_h, grid.tile_w
        r = grid.row_starts[j]
        cols = grid.col_starts[i0:i1]
        c0, c1 = cols[0], cols[-1] + tw
        block = scene.source.read(r, scene.col0 + c0, th, c1 - c0, scene.bands)
        invalid, nonfinite = scene.source.invalid(block, r, scene.col0 + c0)
        x = np.stack([block[:, :, c - c0 : c - c0 + tw] for c in cols])
        valid = np.stack([~invalid[:, c - c0 : c - c0 + tw] for c in cols])
        # NaN/inf pixels among the rows and columns this chunk finishes (each counted once per scene)
        a, b = grid.strip_rows_done(j)
        k0, k1 = scene.kept()  # a block column counts only the columns it writes
        own0 = max(k0, 0 if i0 == 0 else grid.col_starts[i0])
        own1 = min(k1, grid.width if i1 == len(grid.col_starts) else grid.col_starts[i1])
        own1 = max(own0, own1)
        count = int(nonfinite[a - r : b - r, own0 - c0 : own1 - c0].sum())
        return {
            "input": torch.from_numpy(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)),
            "valid": torch.from_numpy(valid),
            "scene": s,
            "strip": j,
            "first": i0,
            "nonfinite": count,
        }


class RankStripSampler(DistributedSampler):
    """The item indices of one rank's strips, in order (a ``DistributedSampler`` so Lightning keeps it)."""

    def __init__(self, dataset: PredictTiles, indices: list[int], num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.indices = indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def one_chunk(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate function of a batch of one chunk: the chunk itself (it is already a stack of tiles)."""
    if len(items) != 1:
        raise ValueError(f"a prediction batch holds exactly one chunk of tiles, got {len(items)}")
    return items[0]


def tile_loader(tiles: PredictTiles, world: int = 1, rank: int = 0, num_workers: int = 0) -> DataLoader:
    """The chunks of ``rank``'s strips (of ``world``), in order, one chunk per batch."""
    indices = tiles.indices_for(tiles.plan.strips_for(world, rank))
    sampler = RankStripSampler(tiles, indices, world, rank)
    return DataLoader(tiles, batch_size=1, sampler=sampler, collate_fn=one_chunk, num_workers=num_workers)
