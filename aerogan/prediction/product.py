"""Whole-product prediction: every band of a multi-resolution scene on its finest grid, in one COG.

Sentinel-2 as DSen2 runs it: a T2 model brings the 20 m bands to 10 m with the 10 m bands as guide, an
S6 model the 60 m bands with the 10 m and 20 m guides; :func:`super_resolve_product` runs any such set
of guided models over one product (group rasters, a ``.SAFE`` folder or ``.zip``, a STAC Item) and
writes ONE GeoTIFF holding the finest group's bands unchanged plus every model's super-resolved bands,
in Sentinel-2 band order, with the band names as descriptions.

What it reuses, so that it behaves as ``aerogan predict``: the band catalogs and alignment checks of
:mod:`~datamodules.band_catalog`; tiles and blend weights of :mod:`~aerogan.prediction.plan` and
their blending (:class:`~aerogan.prediction.assembler.SceneAssembler`); the measured seamless overlap
of :mod:`~aerogan.prediction.overlap`; the GeoTIFF sink and its encoding
(:mod:`~aerogan.prediction.sinks`); atomic writing (:func:`aerogan.atomic.atomic_output`).

Choices (documented):

* Units: values as :class:`~datamodules.band_catalog.BandGroup` reads them (the files' units plus
  any product offset, e.g. -1000 for Sentinel-2 baselines >= 04.00); the models take physical units.
* Output grid: the finest group's grid over the common extent of every group used; each model's finest
  guide must lie on it, and its target group must be exactly ``scale`` times coarser (so a model trained
  at ratio R also runs one level down: 20 m guide + 40 m bands give 20 m, Wald's reduced resolution).
* Nodata: an output pixel is nodata (in every band) where the finest group is nodata, or where a model's
  target pixel, or any of its guide pixels inside that target pixel, is nodata: a pixel nodata in any
  input stays nodata. Nodata inputs are filled before the network (target bands by
  :meth:`~aerogan.super_resolution.SuperResolution.fill_invalid`, guides by their band means), so they
  never feed extreme values to valid neighbours.
* Tiles: ``tile`` and ``overlap`` are in output pixels; a model of scale ``s`` takes tiles of
  ``tile // s`` of its input pixels. The default overlap is each model's measured seamless overlap, so
  tiled output equals whole-scene output. Tiles go to the network ``batch_size`` at a time, in row-major
  order across strips (a small scene batches as a large one).
* Blocks: the output is made block column by block column (about ``block_width`` output px, edges on
  the staged file's tiles, about 256 px wide and a multiple of every scale); each model predicts its block column plus a halo of at least its receptive
  radius, so the column equals the whole-scene prediction, and within a column the models advance strip
  by strip in step. Memory holds one strip of one block column per model and a few output block rows:
  it follows the block, not the scene's width or height.
* Layout: a cloud-optimised GeoTIFF (GDAL's COG driver: tiled, deflate, internal average overviews),
  built from a temporary GeoTIFF; the final file appears complete or not at all.
* Consistency (:class:`ProductReport`): the float predictions, before rounding to the output dtype,
  block-averaged back to the target grid against the input bands, over valid pixels
  (:class:`aerogan.metrics.Consistency`).

Command line::

    python -m aerogan.prediction.product --ckpt t2.ckpt --ckpt s6.ckpt --out product_10m.tif S2_10m.tif S2_20m.tif S2_60m.tif
"""

from __future__ import annotations

import argparse
import math
import os
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerogan.atomic import atomic_output
from aerogan.degradation import gaussian_block_mean
from aerogan.metrics import Consistency
from aerogan.prediction.api import _device, load_model, model_scale
from aerogan.prediction.assembler import SceneAssembler
from aerogan.prediction.domain_shift import check_scene
from aerogan.prediction.overlap import seamless_overlap
from aerogan.prediction.plan import OutputSpec, TileGrid, column_spans
from aerogan.prediction.sinks import BLOCK_ROWS, GeoTiffSink
from aerogan.super_resolution import SuperResolution
from datamodules.band_catalog import (
    S2_BANDS,
    BandGroup,
    BandRef,
    MultiResolutionScene,
    normalize_band_name,
    open_catalog,
)

__all__ = ["ModelConsistency", "ProductReport", "add_projection_argument", "main", "print_report", "super_resolve_product"]

#: Default tile side in output (finest-grid) pixels.
DEFAULT_TILE = 512
#: ``precision`` values of product prediction: the network's autocast dtype (blending, consistency and writing stay
#: float32).
PRECISIONS: dict[str, torch.dtype | None] = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
#: Default block-column width in output pixels: memory follows it, not the scene's width.
DEFAULT_BLOCK = 2048
_RES_TOL = 1e-6


# ---------------------------------------------------------------------------------------------- report
@dataclass
class ModelConsistency:
    """One model's share of a product and how consistent its output is with its own input.

    ``rmse``: per target band, the RMSE (data units) between the SR band degraded back to the input grid by
    the model's nominal degradation (its checkpoint's Gaussian ``sigma``, then the ``scale x scale`` block
    mean; block mean alone when the checkpoint states none) and the input band; ``sam``: their mean spectral
    angle in degrees (NaN when no valid pixel). ``tile`` and ``overlap`` are in the model's input pixels (its
    target grid). ``projection``: whether the consistency projection ran; ``domain_shift``: the domain-shift
    guard's messages for this model (bands of the scene outside its training distribution).
    """

    target_bands: list[str]
    guide_bands: list[list[str]]
    scale: int
    tile: int
    overlap: int
    rmse: dict[str, float]
    sam: float
    sigma: float = 0.0
    projection: bool = False
    domain_shift: list[str] = field(default_factory=list)


@dataclass
class ProductReport:
    """What :func:`super_resolve_product` wrote: the file, its bands in order, per model consistency and
    domain-shift messages (trouble visible without any truth), time."""

    out_path: Path
    band_names: list[str]
    models: list[ModelConsistency] = field(default_factory=list)
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- models
@dataclass
class _Task:
    """One model on the product: its band groups (indices into the product scene), tiling and consistency."""

    model: SuperResolution
    label: str
    targets: list[str]
    guide_names: list[list[str]]
    scale: int
    groups: list[int] = field(default_factory=list)  # scene group indices: target, then guides finest first
    factors: list[int] = field(default_factory=list)  # pixels of each group per target pixel
    tile: int = 0  # tile side, overlap and block-column halo in target (input) pixels
    overlap: int = 0
    halo: int = 0
    domain_shift: list[str] = field(default_factory=list)
    projection: bool = False
    sigma: float = 0.0  # the checkpoint's degradation blur, for the consistency check
    context: int = 0  # output rows/columns of blur context the consistency needs, whole blocks of the scale
    consistency: Consistency | None = None
    autocast: torch.dtype | None = None  # the network's mixed precision (None: float32)
    channels_last: bool = False

    def prepare(self) -> None:
        """The consistency metric of the model's output with its input, over the whole product."""
        spec = self.model.metadata.get("degradation") or {}
        self.sigma = float(spec.get("sigma", 0.0)) if int(spec.get("scale", self.scale)) == self.scale else 0.0
        # per process: products are independent (an archive's ranks make different ones); a product split over
        # ranks merges its parts' states explicitly (aerogan.prediction.shards)
        self.consistency = Consistency(len(self.targets), self.scale, self.sigma, sync_on_compute=False)
        s = self.scale
        self.context = -(-self.consistency.operator.radius // s) * s
        self.projection = bool(self.model.consistency_projection)  # as set for this product
        # the halo: the dropped tile margin (>= the receptive radius when the overlap is seamless) and the blur context
        self.halo = max(self.overlap // 2, self.context // s)

    def summary(self) -> ModelConsistency:
        result = self.consistency.compute()
        rmse = result["rmse"].tolist()
        return ModelConsistency(
            target_bands=list(self.targets), guide_bands=[list(g) for g in self.guide_names], scale=self.scale,
            tile=self.tile, overlap=self.overlap,
            rmse={b: float(v) for b, v in zip(self.targets, rmse, strict=True)}, sam=float(result["sam"]),
            sigma=self.sigma, projection=self.projection, domain_shift=list(self.domain_shift),
        )


class _PackedGuides(nn.Module):
    """A guided generator seen as a single-input net on the target grid (to measure its receptive radius).

    Guide ``k``, ``f_k`` times finer than the target grid, travels as ``C_k f_k^2`` channels of the target
    grid (pixel unshuffled), so an input pixel's influence covers the target pixel and the guide pixels
    inside it.
    """

    def __init__(self, generator: nn.Module, target_channels: int, guide_channels: Sequence[int], factors: Sequence[int]) -> None:
        super().__init__()
        self.generator = generator
        self.splits = [target_channels] + [c * f * f for c, f in zip(guide_channels, factors, strict=True)]
        self.factors = list(factors)

    @property
    def channels(self) -> int:
        return sum(self.splits)

    def forward(self, x: Tensor) -> Tensor:
        target, *packed = torch.split(x, self.splits, dim=1)
        guides = tuple(F.pixel_shuffle(p, f) if f > 1 else p for p, f in zip(packed, self.factors, strict=True))
        return self.generator(target, guides)


def _metadata_bands(model: SuperResolution, label: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Target band names, guide band names (finest first) and guide ratios of a guided model, checked."""
    meta = model.metadata or {}
    if not model.guide_norms or not meta.get("guide_band_names"):
        raise ValueError(
            f"{label} is not a guided model (its generator takes no guide groups or its metadata has no guide_band_names); "
            "super_resolve_product needs multi-resolution models (e.g. DSen2 trained on datamodules.MultiResolutionDataModule)"
        )
    missing = [k for k in ("target_band_names", "guide_band_names", "guide_ratios") if not meta.get(k)]
    if missing:
        raise ValueError(f"{label}: the model's metadata lacks {missing} (was it trained with aerogan fit on multi-resolution data?)")
    targets = [normalize_band_name(b) for b in meta["target_band_names"]]
    guides = [[normalize_band_name(b) for b in g] for g in meta["guide_band_names"]]
    ratios = [int(r) for r in meta["guide_ratios"]]
    norms = list(model.guide_norms)
    if len(targets) != model.input_norm.mean.numel():
        raise ValueError(f"{label}: metadata names {len(targets)} target bands {targets}, the model takes {model.input_norm.mean.numel()}")
    if len(guides) != len(norms) or len(ratios) != len(norms):
        raise ValueError(f"{label}: metadata names {len(guides)} guide groups ({guides}, ratios {ratios}), the generator takes {len(norms)}")
    for k, (g, norm) in enumerate(zip(guides, norms, strict=True)):
        if not norm.initialized or norm.mean.numel() != len(g):
            raise ValueError(f"{label}: guide group {k} {g} has no matching band statistics (guide_norms[{k}] holds {norm.mean.numel()})")
    return targets, guides, ratios


# ---------------------------------------------------------------------------------------------- groups
def _sources_label(sources: Sequence[str | os.PathLike] | str | os.PathLike) -> str:
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    return ", ".join(str(s) for s in items)


def _catalog(sources: Sequence[str | os.PathLike] | str | os.PathLike, nodata: float | None, needed: list[str]) -> dict[str, BandRef]:
    """Every band of ``sources``; a STAC Item is asked for the needed and the Sentinel-2 bands only (its other
    assets, such as metadata files or thumbnails, are not bands)."""
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    stac = len(items) == 1 and Path(items[0]).suffix.lower() == ".json"
    bands = needed + [b for b in S2_BANDS if b not in needed] if stac else None
    return open_catalog(items, nodata, bands)


def _same_resolution(a: float, b: float) -> bool:
    return abs(a - b) <= _RES_TOL * max(a, b)


def _output_order(names: Sequence[str]) -> list[str]:
    """Sentinel-2 band order, then unknown names in input order."""
    rank = {b: i for i, b in enumerate(S2_BANDS)}
    return [n for _, n in sorted(((rank.get(n, len(rank) + i), n) for i, n in enumerate(names)))]


def _build(
    models: list[SuperResolution], catalog: dict[str, BandRef], where: str
) -> tuple[MultiResolutionScene, BandGroup, list[_Task]]:
    """The product scene (finest group first, then each model's groups) and the checked model tasks."""
    fine_res = min(ref.file.resolution[0] for ref in catalog.values())
    fine = BandGroup([r for r in catalog.values() if _same_resolution(r.file.resolution[0], fine_res)], "finest bands")
    groups: list[BandGroup] = [fine]
    tasks: list[_Task] = []
    produced = {n: "the finest group" for n in fine.names}
    for i, model in enumerate(models):
        label = f"model {i + 1}"
        targets, guide_names, ratios = _metadata_bands(model, label)
        scale = model_scale(model)
        label = f"model {i + 1} ({targets} x{scale})"
        for role, names in [("target", targets)] + [(f"guide group {k}", g) for k, g in enumerate(guide_names)]:
            missing = [b for b in names if b not in catalog]
            if missing:
                raise ValueError(
                    f"{label} needs band(s) {missing} ({role}), which the sources do not hold ({where}); available: {sorted(catalog)}"
                )
        target = BandGroup([catalog[b] for b in targets], f"{label} target bands")
        guides = [BandGroup([catalog[b] for b in g], f"{label} guide group {k}") for k, g in enumerate(guide_names)]
        ratio = target.resolution / guides[0].resolution
        if abs(ratio - scale) > _RES_TOL * scale:
            raise ValueError(
                f"{label}: the target bands {targets} are at {target.resolution:g} m and the finest guide {guide_names[0]} at "
                f"{guides[0].resolution:g} m in the sources ({where}), a ratio of {ratio:g}; the model was trained for a ratio of "
                f"{scale} (target {scale} times coarser than its finest guide): give bands at resolutions in that ratio"
            )
        for k in range(1, len(guides)):
            want = ratios[k] / ratios[0]
            got = guides[k].resolution / guides[0].resolution
            if abs(got - want) > _RES_TOL * want:
                raise ValueError(
                    f"{label}: guide group {k} {guide_names[k]} is at {guides[k].resolution:g} m, {got:g} times the finest guide "
                    f"{guide_names[0]} at {guides[0].resolution:g} m ({where}); the model was trained for a ratio of {want:g}"
                )
        if not _same_resolution(guides[0].resolution, fine_res):
            raise ValueError(
                f"{label}: its output grid (the finest guide {guide_names[0]} at {guides[0].resolution:g} m) is not the finest grid "
                f"of the sources ({fine.names} at {fine_res:g} m; {where}); the product is written on the finest grid"
            )
        for b in targets:
            if b in produced:
                raise ValueError(f"{label}: band {b} would be written twice (also by {produced[b]}); each band may come from one source only")
            produced[b] = label
        task = _Task(model, label, targets, guide_names, scale, groups=list(range(len(groups), len(groups) + 1 + len(guides))))
        groups.extend([target, *guides])
        tasks.append(task)
    scene = MultiResolutionScene(groups)
    for task in tasks:
        q_t = scene.factors[task.groups[0]]
        task.factors = [scene.factors[g] // q_t for g in task.groups]
    return scene, fine, tasks


def _read(scene: MultiResolutionScene, group: int, factor: int, row0: int, col0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Group ``group`` over a window of a grid ``factor`` times coarser than it, from the common extent's corner."""
    r, c = scene.origins[group]
    return scene.groups[group].read(r + row0 * factor, c + col0 * factor, height * factor, width * factor)


# ---------------------------------------------------------------------------------------------- running
def _tiles(block: np.ndarray, offsets: Sequence[int], width: int, factor: int, device: torch.device) -> Tensor:
    """Tiles of ``width`` target px at column ``offsets`` of a window read ``factor`` times finer, stacked."""
    return torch.from_numpy(np.stack([block[..., o * factor : (o + width) * factor] for o in offsets])).to(device)


class _Rows:
    """Finished output rows of one model (float32, with validity), held until every band of them is ready."""

    def __init__(self) -> None:
        self.row0 = 0
        self.data: np.ndarray | None = None
        self.valid: np.ndarray | None = None

    @property
    def end(self) -> int:
        return self.row0 + (0 if self.data is None else self.data.shape[1])

    def put(self, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        if row0 != self.end:
            raise RuntimeError(f"rows arrived out of order: {row0} after {self.end}")
        if self.data is None:
            self.data, self.valid = data.copy(), valid.copy()  # views of the assembler's strip buffers
        else:
            self.data = np.concatenate([self.data, data], 1)
            self.valid = np.concatenate([self.valid, valid], 0)

    def take(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[a, b)`` (``a`` is the first held row); they are dropped from the buffer."""
        lo, hi = a - self.row0, b - self.row0
        if lo != 0 or hi > self.data.shape[1]:
            raise RuntimeError(f"rows {a}..{b} are not held (held {self.row0}..{self.end})")
        data, valid = self.data[:, :hi], self.valid[:hi]
        self.data, self.valid, self.row0 = self.data[:, hi:], self.valid[hi:], b
        return data, valid


class _Runner:
    """One model over one block column of the output: read windows, fill nodata, predict, blend, queue rows.

    The model's tiles cover its input window (the block column plus a halo of at least its receptive
    radius and its consistency blur context, clipped to the scene), so the block column's pixels equal the
    whole-scene prediction; tiles go to the network ``batch_size`` at a time in row-major order (a batch may
    span strips), and the blended rows of the whole window queue in :attr:`rows`.
    """

    def __init__(self, task: _Task, scene: MultiResolutionScene, batch_size: int, device: torch.device,
                 window: tuple[int, int], scored: tuple[int, int]) -> None:
        self.task = task
        self.scene = scene
        self.batch_size = batch_size
        self.device = device
        self.model = task.model
        self.col0, col1 = window  # input (target-grid) columns this runner predicts
        self.score_cols = scored  # input columns whose consistency this runner scores (the block column)
        self.rows = _Rows()
        height = scene.height * scene.factors[task.groups[0]]
        self.grid = TileGrid(height, col1 - self.col0, task.tile, task.overlap)
        self.next_tile = (0, 0)  # (strip, tile column) of the next tile to predict
        self.scored = 0  # output rows scored so far (a multiple of the scale)
        self.held: tuple[int, np.ndarray, np.ndarray] | None = None  # (row0, data, valid) kept as context
        self.assembler = SceneAssembler(self.grid, task.scale, set(range(self.grid.num_strips)), self._finished)

    @property
    def done(self) -> bool:
        return self.next_tile[0] >= self.grid.num_strips

    def _finished(self, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        """Blended rows ``row0..`` (output pixels): queue them and score their consistency with the input."""
        self.rows.put(row0, data, valid)
        if self.held is not None:
            h0, hd, hv = self.held
            row0, data, valid = h0, np.concatenate([hd, data], 1), np.concatenate([hv, valid], 0)
        self._score(row0, data, valid)

    def _score(self, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        """Degrade the rows that have their blur context (all, at the scene's bottom) and compare with the input.

        ``data`` holds output rows ``row0..`` of the runner's window; rows from ``self.scored`` on are not scored
        yet, the ``context`` rows above them only feed the blur; columns outside the block column are its halo
        and feed the blur too. The scene's own borders are reflected, as the metric does on whole images; the
        unscored rows and their context are held for the next call.
        """
        t = self.task
        s, m = t.scale, t.context
        height = self.grid.height * s
        end = row0 + data.shape[1]
        stop = end if end >= height else (end - m) // s * s
        if stop > self.scored:
            a = self.scored
            lo, hi = max(row0, a - m), min(end, stop + m)
            c0, c1 = ((c - self.col0) * s for c in self.score_cols)  # the block column in window pixels
            left, right = max(0, c0 - m), min(data.shape[2], c1 + m)
            window = torch.from_numpy(np.ascontiguousarray(data[:, lo - row0 : hi - row0, left:right]))[None].double()
            pads = (m - (c0 - left), m - (right - c1), m - (a - lo), m - (hi - stop))  # missing only at the scene's borders
            if m:
                window = F.pad(window, pads, mode="reflect")
            back = gaussian_block_mean(window, s, t.sigma, t.consistency.operator.radius, margin=m)[0]
            n, width = (stop - a) // s, (c1 - c0) // s
            ok = valid[a - row0 : stop - row0, c0:c1].reshape(n, s, width, s).all((1, 3))
            if ok.any():
                lr, _ = _read(self.scene, t.groups[0], 1, a // s, self.score_cols[0], n, width)
                c = back.shape[0]
                t.consistency.update(back[:, torch.from_numpy(ok)].reshape(1, c, 1, -1),
                                     torch.from_numpy(lr[:, ok]).reshape(1, c, 1, -1), degraded=True)
            self.scored = stop
        keep = max(row0, self.scored - m)
        # copies: the rows are views of the assembler's strip buffers, which it reuses
        self.held = (keep, data[:, keep - row0 :].copy(), valid[keep - row0 :].copy()) if keep < end else None

    def _next_batch(self) -> list[tuple[int, list[int]]]:
        """The next ``batch_size`` tiles in row-major order, as (strip, tile columns) segments."""
        grid, (j, i) = self.grid, self.next_tile
        segments: list[tuple[int, list[int]]] = []
        left = self.batch_size
        while left and j < grid.num_strips:
            cols = list(range(i, min(len(grid.col_starts), i + left)))
            segments.append((j, cols))
            left -= len(cols)
            i = cols[-1] + 1
            if i == len(grid.col_starts):
                j, i = j + 1, 0
        self.next_tile = (j, i)
        return segments

    def run_batch(self) -> None:
        """Predict and blend the next batch of tiles (finished rows go to :attr:`rows`)."""
        t, grid = self.task, self.grid
        th, tw = grid.tile_h, grid.tile_w
        segments = self._next_batch()
        xs: list[Tensor] = []
        guides: list[list[Tensor]] = [[] for _ in t.factors[1:]]
        valids: list[np.ndarray] = []
        for j, idx in segments:
            r, cols = grid.row_starts[j], [grid.col_starts[i] for i in idx]
            c0 = cols[0]
            span = cols[-1] + tw - c0
            reads = [_read(self.scene, g, f, r, self.col0 + c0, th, span) for g, f in zip(t.groups, t.factors, strict=True)]
            invalid = reads[0][1].copy()
            for (_, inv), f in zip(reads[1:], t.factors[1:], strict=True):
                invalid |= inv.reshape(th, f, span, f).any((1, 3))  # a nodata guide pixel spoils its target pixel
            offsets = [c - c0 for c in cols]
            x = _tiles(reads[0][0], offsets, tw, 1, self.device)
            xs.append(self.model.fill_invalid(x, ~_tiles(reads[0][1], offsets, tw, 1, self.device)))  # nodata never reaches the net
            for k, ((data, inv), f, norm) in enumerate(zip(reads[1:], t.factors[1:], self.model.guide_norms, strict=True)):
                g = _tiles(data, offsets, tw, f, self.device)
                guides[k].append(torch.where(_tiles(inv, offsets, tw, f, self.device)[:, None], norm.mean.to(g).view(1, -1, 1, 1), g))
            valids.append(np.stack([~invalid[:, o : o + tw] for o in offsets]))
        x = torch.cat(xs) if len(xs) > 1 else xs[0]
        g_in = [torch.cat(g) if len(g) > 1 else g[0] for g in guides]
        if t.channels_last:
            x, g_in = x.contiguous(memory_format=torch.channels_last), [g.contiguous(memory_format=torch.channels_last) for g in g_in]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=t.autocast, enabled=t.autocast is not None):
            pred = self.model.super_resolve(x, g_in).float().cpu().numpy()
        k = 0
        for (j, idx), valid in zip(segments, valids, strict=True):
            self.assembler.add(j, idx[0], pred[k : k + len(idx)], valid)
            k += len(idx)


#: Seamless overlaps measured per generator (its receptive field does not change with its weights): an archive run
#: measures once, not per product.
_MEASURED_OVERLAP: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], int]] = weakref.WeakKeyDictionary()


def _tiling(task: _Task, tile: int, overlap: int | None) -> None:
    """The model's tile and overlap on its target grid, from ``tile`` and ``overlap`` output pixels (overlap:
    measured by default)."""
    s = task.scale
    tile_in = tile // s
    if tile_in < 1:
        raise ValueError(f"tile={tile} output px is smaller than the scale {s} of {task.label}; use a tile of at least {s} px")
    if overlap is None:
        gen = task.model.inference_generator
        key = (len(task.targets), tuple(len(g) for g in task.guide_names), tuple(task.factors[1:]), s, tile_in)
        measured = _MEASURED_OVERLAP.setdefault(gen, {})
        if key not in measured:  # a forward and backward pass: measured once per generator and tiling in a process
            packed = _PackedGuides(gen, len(task.targets), [len(g) for g in task.guide_names], task.factors[1:])
            measured[key] = seamless_overlap(packed, packed.channels, s, tile_in)
        overlap_in = measured[key]
    else:
        if overlap < 0:
            raise ValueError(f"overlap={overlap} must be >= 0 (output px)")
        overlap_in = math.ceil(overlap / s)
        if overlap_in > tile_in // 2:
            raise ValueError(
                f"overlap={overlap} output px ({overlap_in} px of the {task.label} input grid) is more than half the tile "
                f"({tile} output px = {tile_in} input px); use a larger tile or a smaller overlap"
            )
    task.tile, task.overlap = tile_in, overlap_in


def _column_unit(tasks: Sequence[_Task]) -> int:
    """Width of the staged output's tiles: a multiple of 16 (GeoTIFF) and of every scale, near ``BLOCK_ROWS``; block
    columns (:func:`~aerogan.prediction.plan.column_spans`) are made of whole tiles, so each compressed tile is
    written once."""
    unit = math.lcm(16, *(t.scale for t in tasks))
    return unit * max(1, round(BLOCK_ROWS / unit))


def _run_block_column(
    scene: MultiResolutionScene, fine: BandGroup, tasks: Sequence[_Task], devices: Sequence[torch.device], batch_size: int,
    columns: tuple[int, int], height: int, fine_origin: tuple[int, int], fine_pos: list[int], task_pos: list[list[int]],
    channels: int, sink: GeoTiffSink, progress: Callable[[int], None] | None = None,
) -> None:
    """Every band of output columns ``[c0, c1)``, top to bottom: the models advance in step (the one with the fewest
    finished rows next) and whole rows of every band go to ``sink`` as soon as all models have them."""
    c0, c1 = columns
    runners = []
    for task, dev in zip(tasks, devices, strict=True):
        s = task.scale
        total = scene.width * scene.factors[task.groups[0]]
        window = (max(0, c0 // s - task.halo), min(total, c1 // s + task.halo))
        runners.append(_Runner(task, scene, batch_size, dev, window, (c0 // s, c1 // s)))
    fine_r, fine_c = fine_origin
    written = 0
    while written < height:
        if not all(r.done for r in runners):
            min((r for r in runners if not r.done), key=lambda r: r.rows.end).run_batch()
        done = min(r.rows.end for r in runners)
        if done <= written and all(r.done for r in runners):
            raise RuntimeError(f"internal error: {written} of {height} output rows were written (columns {c0}..{c1})")
        while written < done:  # whole rows of every band: copy the fine bands beside the models' rows
            b = min(done, written + BLOCK_ROWS)
            out = np.empty((channels, b - written, c1 - c0), dtype=np.float32)
            data, inv = fine.read(fine_r + written, fine_c + c0, b - written, c1 - c0)
            out[fine_pos] = data
            valid = ~inv
            for runner, pos in zip(runners, task_pos, strict=True):
                d, v = runner.rows.take(written, b)
                lo = c0 - runner.col0 * runner.task.scale
                out[pos] = d[:, :, lo : lo + c1 - c0]
                valid &= v[:, lo : lo + c1 - c0]
            sink.write(0, written, out, valid, col0=c0)
            if progress is not None:
                progress(out.shape[1] * out.shape[2])
            written = b


def _output_dtype(dtype: str | np.dtype | None, files: Sequence[Any]) -> np.dtype:
    """``dtype``, or the inputs' common dtype (integer input stays integer)."""
    if dtype is not None:
        try:
            out = np.dtype(dtype)
        except TypeError as err:
            raise ValueError(f"dtype={dtype!r} is not a NumPy dtype (e.g. 'float32', 'uint16', or None for the input's)") from err
        if not (np.issubdtype(out, np.integer) or np.issubdtype(out, np.floating)) or out.itemsize > 8:
            raise ValueError(f"dtype={dtype!r}: the output must be an integer or floating dtype GeoTIFF can hold")
        return out
    common = np.result_type(*{np.dtype(f.dtype) for f in files})
    if np.issubdtype(common, np.floating):
        return np.dtype("float32") if common.itemsize <= 4 else np.dtype("float64")
    return common


def _output_nodata(nodata: float | None, fine: BandGroup, dtype: np.dtype) -> float | None:
    """The output nodata value: ``nodata``, else the finest group's; integer outputs need a representable one."""
    value = nodata if nodata is not None else fine.refs[0].file.nodata
    if value is None or not np.issubdtype(dtype, np.integer):
        return value
    if math.isnan(value):
        return None  # the sink then takes the dtype's minimum
    info = np.iinfo(dtype)
    if value != int(value) or not info.min <= value <= info.max:
        raise ValueError(f"nodata {value:g} cannot be stored as {dtype.name}; pass nodata=... or dtype='float32'")
    return value


def _overview_factors(height: int, width: int, block: int) -> list[int]:
    """2, 4, 8, then more while the overview is larger than one block."""
    out, f = [], 2
    while f <= min(height, width) and (f <= 8 or max(height, width) / f > block):
        out.append(f)
        f *= 2
    return out


def _to_cog(src: Path, dst: Path, block: int) -> None:
    """Internal average overviews in ``src``, then a copy to ``dst`` with GDAL's COG driver (tiled, deflate)."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    with rasterio.open(src, "r+") as ds:
        factors = _overview_factors(ds.height, ds.width, block)
        if factors:
            ds.build_overviews(factors, Resampling.average)
    rasterio.shutil.copy(
        src, dst, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=block, BIGTIFF="IF_SAFER",
        OVERVIEWS="FORCE_USE_EXISTING" if factors else "NONE",
    )


# ---------------------------------------------------------------------------------------------- API
def super_resolve_product(
    model: SuperResolution | str | os.PathLike | Sequence[SuperResolution | str | os.PathLike],
    sources: Sequence[str | os.PathLike] | str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    nodata: float | None = None,
    dtype: str | np.dtype | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    projection: bool | None = None,
    guard: bool = True,
    block_width: int = DEFAULT_BLOCK,
    progress: Callable[[int, int], None] | None = None,
    precision: str = "32-true",
    channels_last: bool = False,
) -> ProductReport:
    """Super-resolve every coarse band of a multi-resolution product to its finest grid, in one GeoTIFF (COG).

    Args:
        model: one guided :class:`SuperResolution` (or checkpoint path) or a list of them (T2 and S6); each
            model's metadata names its target and guide bands (finest first), guide ratios and scale.
        sources: group rasters (one file per resolution, bands named by their descriptions), a Sentinel-2
            ``.SAFE`` folder or ``.zip``, or a STAC Item JSON (as :func:`~datamodules.band_catalog.open_catalog`).
        out_path: the GeoTIFF to write (atomically: nothing appears on error).
        nodata: nodata value of every input file (default: each file's own, else 0, Sentinel-2's fill value);
            also the output's nodata (default: the finest group's).
        dtype: output dtype; default the inputs' (integer input gives integer output, rounded and clipped),
            e.g. ``"float32"`` to keep the network's values.
        tile: tile side in output pixels (default 512); each model takes ``tile // scale`` input pixels.
        overlap: tile overlap in output pixels (default: each model's measured seamless overlap).
        batch_size: tiles per forward pass (a batch may span strips, so small scenes batch as large ones).
        device: where the models run (default: where their parameters are).
        projection: end every model with its consistency projection (``True``), without it (``False``), or as
            it was trained (``None``): any checkpoint can be made consistent with its input at inference.
        guard: compare the scene's bands with each model's training inputs (the summary in its checkpoint) and
            warn once per model, naming band, statistic and both values, when they fall outside
            (:mod:`aerogan.prediction.domain_shift`); the messages are also in the report.
        block_width: the output is made in block columns about this wide (output px, on the staged file's
            tiles, a multiple of every scale), each with a halo covering the models' receptive radius, so
            memory follows the block, not the scene's width; a narrower scene is one block column.
        progress: called as ``progress(done, total)`` in output pixels as rows are written (progress bars).
        precision: the network's precision: ``"32-true"``, ``"bf16-mixed"`` (GPUs, recent CPUs) or ``"16-mixed"``
            (autocast; the consistency projection, blending and consistency check stay float32).
        channels_last: run the network in channels-last memory format (faster convolutions on GPUs).

    Returns:
        a :class:`ProductReport`: the file, its band names in order, per model the consistency of its output
        with its input and the domain-shift messages, and the seconds taken.
    """
    t0 = time.perf_counter()
    models = [load_model(m) for m in (list(model) if isinstance(model, list | tuple) else [model])]
    job = ProductJob(models, sources, nodata=nodata, dtype=dtype, tile=tile, overlap=overlap, batch_size=batch_size,
                     device=device, projection=projection, guard=guard, block_width=block_width, precision=precision,
                     channels_last=channels_last)
    try:
        job.write(out_path, lambda sink: job.write_columns(sink, range(len(job.columns)), progress))
    finally:
        job.restore()
    return job.report(Path(out_path), time.perf_counter() - t0)


def models_tag(models: Sequence[SuperResolution], projection: bool | None = None) -> str:
    """What a product's ``aerogan_models`` tag says: each model's bands and scale and a digest of its weights,
    statistics and projection setting (``projection``: the override, None = each model's own), so an archive
    run keeps an output only when the same models made it."""
    import hashlib

    parts = []
    for m in models:
        h = hashlib.sha256()
        for name, value in sorted(m.inference_generator.state_dict().items()):
            h.update(name.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        for norm in (m.input_norm, m.target_norm, *m.guide_norms):
            h.update(norm.mean.detach().cpu().numpy().tobytes() + norm.std.detach().cpu().numpy().tobytes())
        h.update(str(bool(m.consistency_projection if projection is None else projection)).encode())
        meta = m.metadata or {}
        parts.append(f"{list(meta.get('target_band_names') or [])} x{model_scale(m)} {h.hexdigest()[:16]}")
    return "; ".join(parts)


class ProductJob:
    """One product being made: the models checked against its bands, the output's grid, bands and encoding, the
    block columns; :meth:`write_columns` makes any subset of them into a sink (:meth:`stage`: a staged file),
    :meth:`write` stages, tags and writes the COG. :func:`super_resolve_product` makes all columns in one process; the sharded archive
    runner (:mod:`aerogan.prediction.shards`) splits one product's columns over several ranks."""

    def __init__(self, models: list[SuperResolution], sources: Sequence[str | os.PathLike] | str | os.PathLike, *,
                 nodata: float | None, dtype: str | np.dtype | None, tile: int | None, overlap: int | None, batch_size: int,
                 device: str | torch.device | None, projection: bool | None, guard: bool, block_width: int,
                 precision: str = "32-true", channels_last: bool = False) -> None:
        from rasterio.transform import Affine

        if not models:
            raise ValueError("super_resolve_product needs at least one model")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
        tile = DEFAULT_TILE if tile is None else tile
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise ValueError(f"tile={tile!r} must be an integer >= 1 (output px)")
        if isinstance(block_width, bool) or not isinstance(block_width, int) or block_width < 1:
            raise ValueError(f"block_width={block_width!r} must be an integer >= 1 (output px)")
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: expected one of {list(PRECISIONS)}")

        self.models = models
        self.batch_size = batch_size
        self.where = where = _sources_label(sources)
        needed = [normalize_band_name(b) for m in models for b in m.metadata.get("target_band_names") or []]
        needed += [normalize_band_name(b) for m in models for g in m.metadata.get("guide_band_names") or [] for b in g]
        catalog = _catalog(sources, nodata, list(dict.fromkeys(needed)))
        if not catalog:
            raise ValueError(f"{where}: no bands found")
        self.scene, self.fine, self.tasks = scene, fine, tasks = _build(models, catalog, where)
        if guard:
            for task in tasks:
                summary = task.model.metadata.get("input_summary")
                if summary:
                    task.domain_shift = check_scene(summary, scene, task.groups, where, task.label)

        # output: the finest grid over the common extent, every band in Sentinel-2 order
        q = scene.factors[0]
        self.height, self.width = scene.height * q, scene.width * q
        self.fine_origin = scene.origins[0]
        self.names = names = _output_order(fine.names + [b for t in tasks for b in t.targets])
        self.out_dtype = _output_dtype(dtype, [f for g in scene.groups for f in g.files])
        self.out_nodata = _output_nodata(nodata, fine, self.out_dtype)
        self.crs = fine.grid.crs
        self.transform = fine.grid.transform @ Affine.translation(self.fine_origin[1], self.fine_origin[0])
        self.fine_pos = [names.index(n) for n in fine.names]
        self.task_pos = [[names.index(n) for n in t.targets] for t in tasks]
        self.block = 512 if max(self.height, self.width) >= 2048 else 256

        self._training = [m.training for m in models]
        self._projecting = [m.consistency_projection for m in models]
        self.devices: list[torch.device] = []
        try:
            for task in tasks:
                if projection is not None:
                    task.model.consistency_projection = bool(projection)
                self.devices.append(_device(task.model, device))
                task.model.to(self.devices[-1]).eval()
                _tiling(task, tile, overlap)
                task.prepare()
                task.autocast, task.channels_last = PRECISIONS[precision], channels_last
                if channels_last:
                    task.model.to(memory_format=torch.channels_last)
        except BaseException:
            self.restore()
            raise
        self.unit = _column_unit(tasks)
        self.columns = column_spans(self.width, -(-self.width // block_width), self.unit)

    def restore(self) -> None:
        """The models' training mode and projection as they were before this product."""
        for m, was, proj in zip(self.models, self._training, self._projecting, strict=True):
            m.train(was)
            m.consistency_projection = proj
        if any(t.channels_last for t in self.tasks):
            for m in self.models:
                m.to(memory_format=torch.contiguous_format)

    def gdal_env(self) -> Any:
        """``rasterio.Env`` with GDAL's block cache capped at one strip of every group read over a block column,
        plus a few output block rows (GDAL's default, 5 % of RAM, would pile up a whole product)."""
        import rasterio

        span = max(c1 - c0 for c0, c1 in self.columns)
        need = sum(t.tile * f * (span // t.scale + 2 * t.halo) * f * len(self.scene.groups[g].refs) * 4
                   for t in self.tasks for g, f in zip(t.groups, t.factors, strict=True))
        need += BLOCK_ROWS * span * len(self.names) * self.out_dtype.itemsize
        return rasterio.Env(GDAL_CACHEMAX=max(need, 2**20))

    def sink(self, path: Path) -> GeoTiffSink:
        """A GeoTIFF of the whole output (tiled, every band) at ``path``, for :meth:`write_columns`."""
        spec = OutputSpec(
            path=path, format="GTiff", height=self.height, width=self.width, input_dtype=self.out_dtype.name,
            input_nodata=self.out_nodata, crs=self.crs, transform=self.transform, source_name=self.where,
        )
        return GeoTiffSink(spec, 1, len(self.names), self.names, "input", block_width=self.unit)

    def write_columns(self, sink: GeoTiffSink, indices: Sequence[int], progress: Callable[[int, int], None] | None = None) -> None:
        """Make block columns ``indices`` (of :attr:`columns`) into ``sink``; their consistency adds to the tasks'."""
        total = self.height * sum(self.columns[i][1] - self.columns[i][0] for i in indices)
        done = [0]

        def advance(pixels: int) -> None:
            done[0] += pixels
            progress(done[0], total)

        for i in indices:
            _run_block_column(self.scene, self.fine, self.tasks, self.devices, self.batch_size, self.columns[i], self.height,
                              self.fine_origin, self.fine_pos, self.task_pos, len(self.names), sink,
                              None if progress is None else advance)

    def stage(self, path: Path, fill: Callable[[GeoTiffSink], None]) -> Path:
        """A staged GeoTIFF of the whole output at ``path``, filled by ``fill(sink)``; nothing is left on error."""
        sink = self.sink(path)
        try:
            fill(sink)
            return sink.commit()
        except BaseException:
            sink.abort()
            raise

    def write(self, out_path: str | os.PathLike, fill: Callable[[GeoTiffSink], None]) -> None:
        """The product COG at ``out_path`` (atomically), from a staged file filled by ``fill(sink)``."""
        with atomic_output(out_path) as tmp, self.gdal_env():
            self.finish(self.stage(tmp.parent / f"strips_{tmp.name}", fill), tmp)

    def finish(self, staged: Path, out: Path) -> None:
        """Tag the staged GeoTIFF and write it as the COG ``out``."""
        import rasterio

        with rasterio.open(staged, "r+") as ds:
            ds.update_tags(aerogan_scale=",".join(str(t.scale) for t in self.tasks), aerogan_models=models_tag(self.models))
        _to_cog(staged, out, self.block)

    def report(self, out_path: Path, seconds: float) -> ProductReport:
        return ProductReport(out_path, list(self.names), [t.summary() for t in self.tasks], seconds)


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> ProductReport | list[Any]:
    """``aerogan product --ckpt a.ckpt [--ckpt b.ckpt] --out out.tif SOURCES...`` (one product) or ``--out-dir OUT
    PRODUCTS...`` (an archive: :mod:`aerogan.prediction.archive`, on several devices: :mod:`aerogan.prediction.shards`).
    Also ``python -m aerogan.prediction.product``."""
    p = argparse.ArgumentParser(prog="aerogan product", description=super_resolve_product.__doc__.splitlines()[0])
    p.add_argument("--ckpt", action="append", required=True, help="a guided model's checkpoint (repeat for T2 and S6)")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="the output GeoTIFF (COG) of one product, whose group rasters / .SAFE / STAC Item follow")
    dest.add_argument("--out-dir", help="an archive: one COG per product in this folder (PRODUCTS: .SAFE folders or .zips, "
                                        "STAC Items or ItemCollections, folders of group rasters); complete ones are skipped")
    p.add_argument("sources", nargs="+", help="with --out: group rasters, a .SAFE folder or .zip, or a STAC Item JSON; "
                                              "with --out-dir: the products")
    p.add_argument("--nodata", type=float, default=None, help="nodata value of every input (default: the files', else 0)")
    p.add_argument("--dtype", default=None, help="output dtype (default: the input's; e.g. float32)")
    p.add_argument("--tile", type=int, default=None, help=f"tile side in output px (default {DEFAULT_TILE})")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap in output px (default: measured, seamless)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument("--block-width", type=int, default=DEFAULT_BLOCK,
                   help=f"block-column width in output px: memory follows it, not the scene's width (default {DEFAULT_BLOCK})")
    p.add_argument("--device", default=None, help="torch device of a one-process run (default: cpu)")
    p.add_argument("--precision", default="32-true", choices=list(PRECISIONS), help="the network's precision (default 32-true)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (faster on GPUs)")
    add_projection_argument(p)
    archive = p.add_argument_group("archives (--out-dir)")
    archive.add_argument("--force", action="store_true", help="make every product again, complete or not")
    archive.add_argument("--no-progress", action="store_true", help="no progress bars")
    archive.add_argument("--accelerator", default="auto", help="Lightning accelerator of a multi-process run (cpu, gpu, auto)")
    archive.add_argument("--devices", default=None, help="processes per node (Lightning Fabric, DDP); under torchrun or "
                                                         "SLURM: as they started (default)")
    archive.add_argument("--num-nodes", type=int, default=1, help="nodes of a multi-process run")
    archive.add_argument("--shard", default=None, metavar="I/N",
                         help="run the I-th of N independent jobs (a SLURM array): products I, I+N, ...; table products_IofN")
    args = p.parse_args(argv)
    kw = {"nodata": args.nodata, "dtype": args.dtype, "tile": args.tile, "overlap": args.overlap, "batch_size": args.batch_size,
          "projection": args.projection, "block_width": args.block_width, "precision": args.precision,
          "channels_last": args.channels_last}
    if args.out is not None:
        misplaced = [f for f, v in (("--devices", args.devices), ("--num-nodes", args.num_nodes != 1), ("--shard", args.shard),
                                    ("--force", args.force)) if v]
        if misplaced:
            p.error(f"{', '.join(misplaced)} apply to archives: use --out-dir OUT with the products")
        report = super_resolve_product(args.ckpt, args.sources, args.out, device=args.device, **kw)
        print_report(report)
        return report
    return _archive(args, kw)


def product_record(product: Any, report: ProductReport) -> Any:
    """The archive table's row of a written product."""
    from aerogan.prediction.archive import ArchiveRecord

    label = {id(m): f"{m.target_bands} x{m.scale}" for m in report.models}
    return ArchiveRecord(
        product.name, "written", str(report.out_path), product.origin, bands=list(report.band_names), seconds=report.seconds,
        consistency_rmse={label[id(m)]: dict(m.rmse) for m in report.models}, sam={label[id(m)]: m.sam for m in report.models},
        warnings=[line for m in report.models for line in m.domain_shift],
    )


def _archive(args: argparse.Namespace, kw: dict[str, Any]) -> list[Any]:
    from aerogan.prediction.shards import Ranks, launch, parse_shard, run_archive, split_product

    shard = parse_shard(args.shard)
    devices = None if args.devices is None else (args.devices if args.devices == "auto" else int(args.devices))
    ranks = Ranks() if shard is not None else launch(args.accelerator, devices, args.num_nodes)
    device = ranks.device if ranks.device is not None else args.device
    models = [load_model(c) for c in args.ckpt]

    def make(product: Any, out: Path, progress: Callable[[int, int], None]) -> Any:
        return product_record(product, super_resolve_product(models, product.sources, out, device=device, progress=progress, **kw))

    def job(product: Any) -> ProductJob:
        return ProductJob(models, product.sources, device=device, guard=True, **kw)

    def record_of(product: Any, out: Path, job: ProductJob, seconds: float) -> Any:
        return product_record(product, job.report(out, seconds))

    records = run_archive(args.sources, args.out_dir, make, tool="aerogan product", models_tag=models_tag(models, args.projection),
                          ranks=ranks, split=split_product(job, record_of), shard=shard, force=args.force,
                          progress=not args.no_progress)
    if ranks.rank == 0:
        print_archive(records, args.out_dir, "aerogan product")
    return records


def print_archive(records: Sequence[Any], out_dir: str | os.PathLike, tool: str) -> None:
    """One line per product of an archive run, then the counts; ``SystemExit`` naming the failed products."""
    for r in records:
        extra = r.error if r.status == "failed" else (f"{r.seconds:.1f} s" if r.status == "written" else "")
        print(f"{r.status:8s} {r.product} -> {r.output} {extra}")
    counts = {s: sum(r.status == s for r in records) for s in ("written", "skipped", "failed")}
    print(f"{out_dir}: {counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed (table: products.csv/json/md)")
    failed = [r.product for r in records if r.status == "failed"]
    if failed:
        raise SystemExit(f"{tool}: {len(failed)} of {len(records)} products failed: {failed} (see {out_dir}/products.md)")


def add_projection_argument(parser: argparse.ArgumentParser) -> None:
    """``--projection true|false`` (default: as each model was trained)."""
    parser.add_argument(
        "--projection", type=_optional_bool, default=None, metavar="true|false",
        help="end every model with its consistency projection (true), without it (false); default: as trained",
    )


def _optional_bool(text: str) -> bool | None:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    if value in ("null", "none", ""):
        return None
    raise argparse.ArgumentTypeError(f"--projection {text!r}: expected true, false or null")


def print_report(report: ProductReport) -> None:
    """The product, its bands and, per model, its consistency with its input and any domain-shift message."""
    print(f"wrote {report.out_path}: {len(report.band_names)} bands {report.band_names} in {report.seconds:.1f} s")
    for m in report.models:
        rmse = ", ".join(f"{b} {v:.4g}" for b, v in m.rmse.items())
        proj = " (projected)" if m.projection else ""
        print(f"  {m.target_bands} x{m.scale}{proj}: consistency RMSE {rmse}; SAM {m.sam:.4g} deg")
        for line in m.domain_shift:
            print(f"    domain shift: {line}")


if __name__ == "__main__":
    from aerogan.allocator import reuse_freed_memory

    reuse_freed_memory()  # as the aerogan command runs (torchrun -m / srun python -m launch this module)
    main()
