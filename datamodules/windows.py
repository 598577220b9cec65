"""Window geometry of training on real scenes: split blocks and patch validity.

Everything here is pure NumPy bookkeeping on pixel coordinates (no I/O); the tiling of whole scenes
for prediction lives in :mod:`aerogan.prediction.plan`:

* :func:`split_regions`: a scene cut into whole train / val / test blocks along one axis, with a gap
  between blocks so that no patch (and little of its receptive field) is shared across splits;
* :class:`CellGrid`: the scene's validity on a coarse grid of ``cell``-pixel cells, filled strip by
  strip from windowed reads, answering "which patch positions contain no nodata?" in O(1) each
  through a summed-area table (memory ~ scene / cell², not scene size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

SplitAxis = Literal["rows", "cols", "auto"]
SPLIT_NAMES = ("train", "val", "test")


class Box(NamedTuple):
    """Half-open pixel rectangle ``[row0, row1) x [col0, col1)``."""

    row0: int
    col0: int
    row1: int
    col1: int


# ---------------------------------------------------------------------------------------------- splits
def split_regions(
    height: int,
    width: int,
    patch_size: int,
    val_fraction: float,
    test_fraction: float,
    gap: int,
    axis: SplitAxis = "auto",
    name: str = "scene",
    order: Sequence[str] = ("train", "val", "test"),
) -> dict[str, list[Box]]:
    """Cut a ``height x width`` scene into train, val and test blocks along one axis.

    ``order`` lists the blocks along the axis (default ``train | val | test``); "train" may appear
    several times (e.g. ``train, val, train, test, train`` keeps the held-out blocks away from the
    scene's edges, where swaths often hold nodata), the training length being shared equally. A split
    with fraction 0 is left out. Neighbouring blocks are ``gap`` pixels apart. ``axis="auto"`` cuts
    across the longer side. A patch lies inside one block, so patches of different splits never
    overlap. Raises ``ValueError`` naming ``name`` when a block cannot hold one patch.
    """
    for label, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"data.{label}={frac} must lie in [0, 1)")
    if gap < 0:
        raise ValueError(f"data.split_gap={gap} must be >= 0")
    if axis == "auto":
        axis = "rows" if height >= width else "cols"
    if axis not in ("rows", "cols"):
        raise ValueError(f"data.split_axis={axis!r} must be 'rows', 'cols' or 'auto'")
    order = [str(o) for o in order]
    if set(order) - set(SPLIT_NAMES) or "train" not in order or order.count("val") > 1 or order.count("test") > 1:
        raise ValueError(f"data.split_order={order}: list 'train' (once or more), 'val' and 'test' (at most once each)")
    length = height if axis == "rows" else width
    sizes = {"val": round(length * val_fraction) if val_fraction > 0 else 0,
             "test": round(length * test_fraction) if test_fraction > 0 else 0}
    for split in ("val", "test"):
        frac = val_fraction if split == "val" else test_fraction
        if frac > 0 and split not in order:
            raise ValueError(f"data.split_order={order} has no {split!r} block but data.{split}_fraction={frac}")
    blocks = [o for o in order if o == "train" or sizes[o] > 0]
    n_train_blocks = blocks.count("train")
    gaps = gap * (len(blocks) - 1)
    n_train = length - sizes["val"] - sizes["test"] - gaps
    for split in ("val", "test"):
        frac = val_fraction if split == "val" else test_fraction
        if frac > 0 and sizes[split] < patch_size:
            raise ValueError(
                f"{name}: data.{split}_fraction={frac} holds out {sizes[split]} {axis} of {length}, fewer than "
                f"data.patch_size={patch_size}; raise the fraction or lower the patch size"
            )
    share = n_train // max(n_train_blocks, 1)
    if share < patch_size:
        raise ValueError(
            f"{name}: after holding out val ({sizes['val']}) and test ({sizes['test']}) {axis} and {gaps} gap {axis}, "
            f"{max(n_train, 0)} of {length} {axis} remain for {n_train_blocks} training block(s), fewer than "
            f"data.patch_size={patch_size} each"
        )
    out: dict[str, list[Box]] = {}
    pos, seen_train = 0, 0
    for k, split in enumerate(blocks):
        if split == "train":
            seen_train += 1
            n = share if seen_train < n_train_blocks else n_train - share * (n_train_blocks - 1)
        else:
            n = sizes[split]
        a, b = pos, pos + n
        box = Box(a, 0, b, width) if axis == "rows" else Box(0, a, height, b)
        out.setdefault(split, []).append(box)
        pos = b + (gap if k + 1 < len(blocks) else 0)
    return out


# ---------------------------------------------------------------------------------------------- validity
class CellGrid:
    """Validity of a scene on a grid of ``cell x cell`` pixel cells (invalid if any pixel is).

    Patch positions are multiples of ``cell``; a patch is valid when every cell it touches is valid,
    which is exact when ``patch_size`` is a multiple of ``cell`` and conservative otherwise.
    """

    def __init__(self, height: int, width: int, cell: int) -> None:
        if cell < 1:
            raise ValueError(f"cell size must be >= 1, got {cell}")
        self.height, self.width, self.cell = height, width, cell
        self.invalid = np.zeros((math.ceil(height / cell), math.ceil(width / cell)), dtype=bool)
        self._sat: np.ndarray | None = None

    def mark_pixels(self, row0: int, invalid: np.ndarray) -> None:
        """Mark the cells holding invalid pixels of a full-width strip starting at ``row0``."""
        h, w = invalid.shape
        if w != self.width:
            raise ValueError(f"strip width {w} differs from the scene width {self.width}")
        if not invalid.any():
            return
        rows, cols = np.nonzero(invalid)
        self.invalid[(rows + row0) // self.cell, cols // self.cell] = True
        self._sat = None

    def keep_only(self, box: Box) -> None:
        """Mark every cell not entirely inside ``box`` as invalid."""
        keep = np.zeros_like(self.invalid)
        r0, c0 = math.ceil(max(box.row0, 0) / self.cell), math.ceil(max(box.col0, 0) / self.cell)
        r1, c1 = min(box.row1, self.height) // self.cell, min(box.col1, self.width) // self.cell
        # the last partial cell at the scene edge counts as inside when the box reaches the edge
        if box.row1 >= self.height:
            r1 = self.invalid.shape[0]
        if box.col1 >= self.width:
            c1 = self.invalid.shape[1]
        if r1 > r0 and c1 > c0:
            keep[r0:r1, c0:c1] = True
        self.invalid |= ~keep
        self._sat = None

    @property
    def any_valid(self) -> bool:
        return not bool(self.invalid.all())

    def _table(self) -> np.ndarray:
        if self._sat is None:
            sat = np.zeros((self.invalid.shape[0] + 1, self.invalid.shape[1] + 1), dtype=np.int64)
            sat[1:, 1:] = self.invalid.cumsum(0).cumsum(1)
            self._sat = sat
        return self._sat

    def _valid_at(self, rows: np.ndarray, cols: np.ndarray, patch: int) -> np.ndarray:
        sat = self._table()
        ri, ci = rows // self.cell, cols // self.cell
        rj = (rows + patch - 1) // self.cell + 1
        cj = (cols + patch - 1) // self.cell + 1
        count = sat[rj, cj] - sat[ri, cj] - sat[rj, ci] + sat[ri, ci]
        return count == 0

    def _candidates(self, box: Box, patch: int) -> tuple[np.ndarray, np.ndarray]:
        def axis(lo: int, hi: int) -> np.ndarray:
            first = math.ceil(lo / self.cell) * self.cell
            return np.arange(first, hi - patch + 1, self.cell, dtype=np.int64)

        rows, cols = axis(box.row0, box.row1), axis(box.col0, box.col1)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        return rr.ravel(), cc.ravel()

    def positions(self, box: Box, patch: int) -> np.ndarray:
        """All valid patch corners (row, col) inside ``box`` on the ``cell`` lattice, shape (N, 2)."""
        rr, cc = self._candidates(box, patch)
        ok = self._valid_at(rr, cc, patch) if rr.size else np.zeros(0, dtype=bool)
        return np.stack([rr[ok], cc[ok]], 1) if rr.size else np.zeros((0, 2), dtype=np.int64)

    def grid_positions(self, box: Box, patch: int) -> np.ndarray:
        """Non-overlapping valid patches inside ``box`` (for evaluation), (N, 2), fixed for a given scene.

        Greedy in raster order over the valid lattice positions: denser than a fixed grid where
        nodata cuts the block irregularly (e.g. the slanted edge of a satellite swath).
        """
        pos = self.positions(box, patch)
        k = math.ceil(patch / self.cell)
        taken = np.zeros_like(self.invalid)
        keep = []
        for r, c in pos:
            i, j = r // self.cell, c // self.cell
            if not taken[i : i + k, j : j + k].any():
                taken[i : i + k, j : j + k] = True
                keep.append((r, c))
        return np.array(keep, dtype=np.int64).reshape(-1, 2)
