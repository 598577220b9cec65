"""The prediction plan: which scenes, where their outputs go, and how each scene is cut into tiles.

Pure bookkeeping on pixel coordinates (no I/O, no model):

* :class:`OutputSpec`, :class:`PredictScene`, :class:`PredictionPlan` (:func:`make_plan`): the scenes to
  super-resolve, their input bands and output files, tile size, overlap and output encoding;
* :class:`TileGrid`, :func:`blend_weights`: overlapping tiles covering a scene and the feathered
  weights that blend them without seams (``sum(w * tile) / sum(w)``);
* :func:`partition_strips`: strips (rows of tiles) spread over ranks in contiguous runs, so that
  every rank writes finished, disjoint rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aerogan.prediction.sources import Layout, SceneSource

OutputDtype = Literal["float32", "input"]


# ---------------------------------------------------------------------------------------------- tiling
def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``min(tile, length)`` covering ``[0, length)`` with >= ``overlap`` shared."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_weights(length: int, ramp_start: bool, ramp_end: bool, overlap: int) -> np.ndarray:
    """1-D blending weights of a tile of ``length`` output pixels.

    On a side shared with a neighbouring tile (``ramp_start``/``ramp_end``), the outer quarter of the
    ``overlap`` gets weight 0 (discarded: the border effects of zero padding live there) and the next
    half rises as a raised cosine to 1; the rest is 1. Neighbours share at least ``overlap`` pixels, so
    every pixel keeps a positive total weight. Blending is ``sum(w * tile) / sum(w)``.
    """
    w = np.ones(length, dtype=np.float64)
    if overlap <= 0:
        return w.astype(np.float32)
    margin = overlap // 4
    ramp = max(overlap - 2 * margin, 1)
    rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    prof = np.concatenate([np.zeros(margin), rise])[:length]
    if ramp_start:
        w[: prof.size] = np.minimum(w[: prof.size], prof)
    if ramp_end:
        w[length - prof.size :] = np.minimum(w[length - prof.size :], prof[::-1])
    return w.astype(np.float32)


@dataclass
class TileGrid:
    """Overlapping tiles covering one ``height x width`` input scene (input pixels)."""

    height: int
    width: int
    tile: int
    overlap: int
    row_starts: list[int] = field(init=False)
    col_starts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if self.tile < 1 or not 0 <= self.overlap < self.tile:
            raise ValueError(f"tile={self.tile} must be >= 1 and overlap={self.overlap} in [0, tile)")
        if self.overlap > self.tile // 2:
            raise ValueError(f"overlap={self.overlap} must be at most half the tile ({self.tile})")
        self.row_starts = tile_starts(self.height, self.tile, self.overlap)
        self.col_starts = tile_starts(self.width, self.tile, self.overlap)

    @property
    def tile_h(self) -> int:
        return min(self.tile, self.height)

    @property
    def tile_w(self) -> int:
        return min(self.tile, self.width)

    @property
    def num_strips(self) -> int:
        return len(self.row_starts)

    def strip_rows_done(self, strip: int) -> tuple[int, int]:
        """Input rows ``[a, b)`` complete once strips ``0..strip`` are blended (no later strip reaches them)."""
        a = 0 if strip == 0 else self.row_starts[strip]
        b = self.row_starts[strip + 1] if strip + 1 < self.num_strips else self.height
        return a, b

    def predecessors(self, strip: int) -> list[int]:
        """Earlier strips that contribute to the rows finished by ``strip``."""
        r = self.row_starts[strip]
        return [k for k in range(strip) if self.row_starts[k] + self.tile_h > r]

    def row_weights(self, strip: int, scale: int) -> np.ndarray:
        r = self.row_starts[strip]
        return blend_weights(self.tile_h * scale, r > 0, r + self.tile_h < self.height, self.overlap * scale)

    def col_weights(self, index: int, scale: int) -> np.ndarray:
        c = self.col_starts[index]
        return blend_weights(self.tile_w * scale, c > 0, c + self.tile_w < self.width, self.overlap * scale)


def partition_strips(strips_per_scene: list[int], grids: list[TileGrid], world: int, rank: int) -> list[tuple[int, int, bool]]:
    """The (scene, strip, owned) list that ``rank`` of ``world`` computes, in order.

    All strips of all scenes are split into ``world`` contiguous runs; a rank *owns* (writes) the rows
    finished by its run, and also computes, without writing, the earlier strips that overlap its first
    owned strip, so that its rows come out fully blended and no cross-rank summation is needed.
    """
    flat = [(s, j) for s, n in enumerate(strips_per_scene) for j in range(n)]
    lo, hi = len(flat) * rank // world, len(flat) * (rank + 1) // world
    owned = flat[lo:hi]
    out: list[tuple[int, int, bool]] = []
    for i, (s, j) in enumerate(owned):
        if i == 0 or owned[i - 1][0] != s:  # first owned strip of this scene on this rank
            out.extend((s, k, False) for k in grids[s].predecessors(j))
        out.append((s, j, True))
    return out


# ---------------------------------------------------------------------------------------------- the plan
@dataclass
class OutputSpec:
    """One output file of a prediction run (input geometry; the sinks derive the output's)."""

    path: Path
    format: Literal["GTiff", "npy"]
    height: int
    width: int
    input_dtype: str = "float32"
    input_nodata: float | None = None
    crs: Any = None
    transform: Any = None
    num_scenes: int = 1
    stacked: bool = False
    layout: Layout = "channels_first"
    source_name: str = ""


@dataclass
class PredictScene:
    """One scene to super-resolve: its reader, the input bands, its output (index into the plan's outputs)
    and its position in that output (scenes stacked in one ``.npy``).

    A scene wider than the plan's block is cut into block columns (:func:`make_plan`): each is a
    ``PredictScene`` that reads input columns ``window`` (its block column plus a halo of half the tile
    overlap, at least the generator's receptive radius) and writes only input columns ``keep``.
    """

    source: SceneSource
    bands: list[int]
    output: int
    index: int = 0
    window: tuple[int, int] | None = None
    keep: tuple[int, int] | None = None

    @property
    def col0(self) -> int:
        """First input column read (0 for a whole scene)."""
        return 0 if self.window is None else self.window[0]

    @property
    def width(self) -> int:
        """Input columns read."""
        return self.source.width if self.window is None else self.window[1] - self.window[0]

    def kept(self) -> tuple[int, int]:
        """Input columns ``[k0, k1)`` written, relative to :attr:`col0`, and absolute."""
        return (0, self.width) if self.keep is None else (self.keep[0] - self.col0, self.keep[1] - self.col0)


@dataclass
class PredictionPlan:
    """Everything a prediction run needs besides the model: scenes, outputs, their tilings, encoding."""

    scenes: list[PredictScene]
    outputs: list[OutputSpec]
    grids: list[TileGrid]
    scale: int
    tile: int
    overlap: int
    output_dtype: OutputDtype = "float32"

    def strips_for(self, world: int, rank: int) -> list[tuple[int, int, bool]]:
        """The (scene, strip, owned) list ``rank`` of ``world`` computes (see :func:`partition_strips`)."""
        return partition_strips([g.num_strips for g in self.grids], self.grids, world, rank)


#: Default block-column width of a prediction plan, in output pixels: memory follows it, not the scene's width.
DEFAULT_BLOCK_WIDTH = 2048


def column_spans(width: int, count: int, unit: int) -> list[tuple[int, int]]:
    """``[c0, c1)`` spans of ``count`` columns of about equal width covering ``[0, width)``, their edges on multiples
    of ``unit`` (fewer columns when ``unit`` is coarse; one when the scene is narrower than ``unit``)."""
    step = max(unit, -(-width // (count * unit)) * unit)
    return [(c, min(c + step, width)) for c in range(0, width, step)]


def block_columns(width: int, scale: int, block_width: int, overlap: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``(window, keep)`` input-column ranges of the block columns of a scene ``width`` input px wide: ``ceil(width
    * scale / block_width)`` columns of about equal width, their kept edges on the output's 256-px tiles, each
    read with a halo of ``overlap // 2`` (>= the receptive radius when the overlap is seamless: the dropped
    margin is ``overlap // 4``); one whole-scene column when the scene is narrower than the block."""
    unit = math.lcm(256, scale) // scale  # input px per output-tile-aligned step
    spans = column_spans(width, -(-width * scale // block_width), unit)
    if len(spans) == 1:
        return [((0, width), (0, width))]
    halo = max(overlap // 2, 1)
    return [((max(0, c0 - halo), min(width, c1 + halo)), (c0, c1)) for c0, c1 in spans]


def make_plan(scenes: Sequence[PredictScene], outputs: Sequence[OutputSpec], scale: int, tile: int, overlap: int,
              output_dtype: OutputDtype = "float32", block_width: int | None = DEFAULT_BLOCK_WIDTH) -> PredictionPlan:
    """A plan tiling every scene with ``tile``-px tiles sharing ``overlap`` px (input pixels), scenes wider than
    ``block_width`` output px cut into block columns (:func:`block_columns`; None: never)."""
    if output_dtype not in ("float32", "input"):
        raise ValueError(f"output_dtype={output_dtype!r} must be 'float32' or 'input'")
    if block_width is not None and (isinstance(block_width, bool) or not isinstance(block_width, int) or block_width < 1):
        raise ValueError(f"block_width={block_width!r} must be an integer >= 1 (output px) or None")
    cut: list[PredictScene] = []
    for sc in scenes:
        columns = block_columns(sc.source.width, scale, block_width, overlap) if block_width is not None else []
        if len(columns) <= 1:
            cut.append(sc)
        else:
            cut.extend(replace(sc, window=w, keep=k) for w, k in columns)
    grids = [TileGrid(sc.source.height, sc.width, tile, overlap) for sc in cut]
    return PredictionPlan(cut, list(outputs), grids, scale, tile, overlap, output_dtype)
