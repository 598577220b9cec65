"""The prediction plan's geometry: tiles covering a scene, blend weights, strips spread over ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aerogan.prediction import (
    ArraySource,
    OutputSpec,
    PredictScene,
    TileGrid,
    blend_weights,
    make_plan,
    partition_strips,
)


def test_tiling_blends_to_full_weight_and_ranks_cover_rows_once() -> None:
    grid = TileGrid(150, 170, 64, 32)
    total = np.zeros((150 * 2, 170 * 2))
    for j, r in enumerate(grid.row_starts):
        for i, c in enumerate(grid.col_starts):
            w = grid.row_weights(j, 2)[:, None] * grid.col_weights(i, 2)[None]
            total[r * 2 : (r + 64) * 2, c * 2 : (c + 64) * 2] += w
    assert total.min() > 0.05
    w = blend_weights(40, True, True, 16)
    assert (w[:4] == 0).all() and (w[-4:] == 0).all() and w[20] == 1
    grids = [TileGrid(150, 170, 64, 32), TileGrid(50, 20, 64, 32)]
    for world in (1, 2, 3, 5):
        rows = {0: [], 1: []}
        for rank in range(world):
            for s, j, own in partition_strips([g.num_strips for g in grids], grids, world, rank):
                if own:
                    a, b = grids[s].strip_rows_done(j)
                    rows[s].extend(range(a, b))
        assert sorted(rows[0]) == list(range(150)) and sorted(rows[1]) == list(range(50))


def test_tile_grid_and_plan_reject_bad_settings() -> None:
    with pytest.raises(ValueError, match=r"overlap=40 must be at most half the tile \(64\)"):
        TileGrid(100, 100, 64, 40)
    with pytest.raises(ValueError, match=r"tile=0 must be >= 1"):
        TileGrid(100, 100, 0, 0)
    src = ArraySource(np.zeros((2, 30, 40), np.float32), None, "channels_first")
    spec = OutputSpec(path=Path("out.npy"), format="npy", height=30, width=40)
    plan = make_plan([PredictScene(src, [0, 1], 0)], [spec], scale=2, tile=16, overlap=8)
    assert plan.grids[0].row_starts == [0, 8, 14] and plan.grids[0].col_starts == [0, 8, 16, 24]
    with pytest.raises(ValueError, match="output_dtype='uint8' must be 'float32' or 'input'"):
        make_plan([PredictScene(src, [0, 1], 0)], [spec], scale=2, tile=16, overlap=8, output_dtype="uint8")
