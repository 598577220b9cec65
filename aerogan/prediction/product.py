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
  tiled output equals whole-scene output. Models advance strip by strip in step, so memory holds one
  strip per model and a few output block rows, whatever the product size.
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
from collections.abc import Sequence
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
from aerogan.prediction.plan import OutputSpec, TileGrid
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
    """One model on the product: its band groups (indices into the product scene) and tiling."""

    model: SuperResolution
    label: str
    targets: list[str]
    guide_names: list[list[str]]
    scale: int
    groups: list[int] = field(default_factory=list)  # scene group indices: target, then guides finest first
    factors: list[int] = field(default_factory=list)  # pixels of each group per target pixel
    grid: TileGrid | None = None
    domain_shift: list[str] = field(default_factory=list)


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
    """One model's tiles, strip by strip: read windows, fill nodata, predict, blend, queue finished rows."""

    def __init__(self, task: _Task, scene: MultiResolutionScene, batch_size: int, device: torch.device) -> None:
        self.task = task
        self.scene = scene
        self.batch_size = batch_size
        self.device = device
        self.model = task.model
        self.projection = bool(task.model.consistency_projection)  # as set for this product
        self.rows = _Rows()
        self.next_strip = 0
        grid = task.grid
        channels = len(task.targets)
        spec = task.model.metadata.get("degradation") or {}
        self.sigma = float(spec.get("sigma", 0.0)) if int(spec.get("scale", task.scale)) == task.scale else 0.0
        self.consistency = Consistency(channels, task.scale, self.sigma)
        s = task.scale
        self.context = -(-self.consistency.operator.radius // s) * s  # output rows of blur context, whole blocks
        self.scored = 0  # output rows scored so far (a multiple of the scale)
        self.held: tuple[int, np.ndarray, np.ndarray] | None = None  # (row0, data, valid) kept as context
        self.assembler = SceneAssembler(grid, task.scale, set(range(grid.num_strips)), self._finished)

    @property
    def done(self) -> bool:
        return self.next_strip >= self.task.grid.num_strips

    def _finished(self, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        """Blended rows ``row0..`` (output pixels): queue them and score their consistency with the input."""
        self.rows.put(row0, data, valid)
        if self.held is not None:
            h0, hd, hv = self.held
            row0, data, valid = h0, np.concatenate([hd, data], 1), np.concatenate([hv, valid], 0)
        self._score(row0, data, valid)

    def _score(self, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        """Degrade the rows that have their blur context (all, at the scene's bottom) and compare with the input.

        ``data`` holds output rows ``row0..``; rows from ``self.scored`` on are not scored yet, the ``context``
        rows above them only feed the blur. The scene's own borders are reflected, as the metric does on
        whole images; the unscored rows and their context are held for the next call.
        """
        s, t, m = self.task.scale, self.task, self.context
        height = t.grid.height * s
        end = row0 + data.shape[1]
        stop = end if end >= height else (end - m) // s * s
        if stop > self.scored:
            a = self.scored
            lo, hi = max(row0, a - m), min(end, stop + m)
            window = torch.from_numpy(np.ascontiguousarray(data[:, lo - row0 : hi - row0]))[None].double()
            top, bottom = m - (a - lo), m - (hi - stop)  # rows missing at the scene's top/bottom border
            if m:
                window = F.pad(window, (m, m, top, bottom), mode="reflect")
            back = gaussian_block_mean(window, s, self.sigma, self.consistency.operator.radius, margin=m)[0]
            n, width = (stop - a) // s, data.shape[2] // s
            ok = valid[a - row0 : stop - row0].reshape(n, s, width, s).all((1, 3))
            if ok.any():
                lr, _ = _read(self.scene, t.groups[0], 1, a // s, 0, n, width)
                c = back.shape[0]
                self.consistency.update(back[:, torch.from_numpy(ok)].reshape(1, c, 1, -1),
                                        torch.from_numpy(lr[:, ok]).reshape(1, c, 1, -1), degraded=True)
            self.scored = stop
        keep = max(row0, self.scored - m)
        # copies: the rows are views of the assembler's strip buffers, which it reuses
        self.held = (keep, data[:, keep - row0 :].copy(), valid[keep - row0 :].copy()) if keep < end else None

    def run_strip(self) -> None:
        """Predict and blend the next strip (its finished rows go to :attr:`rows`)."""
        t, grid, j = self.task, self.task.grid, self.next_strip
        th, tw, r = grid.tile_h, grid.tile_w, grid.row_starts[j]
        for i0 in range(0, len(grid.col_starts), self.batch_size):
            cols = grid.col_starts[i0 : i0 + self.batch_size]
            c0 = cols[0]
            span = cols[-1] + tw - c0
            reads = [_read(self.scene, g, f, r, c0, th, span) for g, f in zip(t.groups, t.factors, strict=True)]
            invalid = reads[0][1].copy()
            for (_, inv), f in zip(reads[1:], t.factors[1:], strict=True):
                invalid |= inv.reshape(th, f, span, f).any((1, 3))  # a nodata guide pixel spoils its target pixel
            offsets = [c - c0 for c in cols]
            x = _tiles(reads[0][0], offsets, tw, 1, self.device)
            x = self.model.fill_invalid(x, ~_tiles(reads[0][1], offsets, tw, 1, self.device))  # nodata never reaches the net
            guides = []
            for (data, inv), f, norm in zip(reads[1:], t.factors[1:], self.model.guide_norms, strict=True):
                g = _tiles(data, offsets, tw, f, self.device)
                guides.append(torch.where(_tiles(inv, offsets, tw, f, self.device)[:, None], norm.mean.to(g).view(1, -1, 1, 1), g))
            with torch.inference_mode():
                pred = self.model.super_resolve(x, guides).float().cpu().numpy()
            valid = np.stack([~invalid[:, c - c0 : c - c0 + tw] for c in cols])
            self.assembler.add(j, i0, pred, valid)
        self.next_strip += 1

    def summary(self) -> ModelConsistency:
        result = self.consistency.compute()
        rmse = result["rmse"].tolist()
        return ModelConsistency(
            target_bands=list(self.task.targets), guide_bands=[list(g) for g in self.task.guide_names], scale=self.task.scale,
            tile=self.task.grid.tile, overlap=self.task.grid.overlap,
            rmse={b: float(v) for b, v in zip(self.task.targets, rmse, strict=True)}, sam=float(result["sam"]),
            sigma=self.sigma, projection=self.projection, domain_shift=list(self.task.domain_shift),
        )


def _tiling(task: _Task, scene: MultiResolutionScene, tile: int, overlap: int | None) -> TileGrid:
    """The model's tiles on its target grid: ``tile`` and ``overlap`` output pixels (overlap: measured by default)."""
    s = task.scale
    tile_in = tile // s
    if tile_in < 1:
        raise ValueError(f"tile={tile} output px is smaller than the scale {s} of {task.label}; use a tile of at least {s} px")
    height, width = scene.height * scene.factors[task.groups[0]], scene.width * scene.factors[task.groups[0]]
    if overlap is None:
        gen = task.model.inference_generator
        packed = _PackedGuides(gen, len(task.targets), [len(g) for g in task.guide_names], task.factors[1:])
        overlap_in = seamless_overlap(packed, packed.channels, s, tile_in)
    else:
        if overlap < 0:
            raise ValueError(f"overlap={overlap} must be >= 0 (output px)")
        overlap_in = math.ceil(overlap / s)
        if overlap_in > tile_in // 2:
            raise ValueError(
                f"overlap={overlap} output px ({overlap_in} px of the {task.label} input grid) is more than half the tile "
                f"({tile} output px = {tile_in} input px); use a larger tile or a smaller overlap"
            )
    return TileGrid(height, width, tile_in, overlap_in)


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
        batch_size: tiles per forward pass.
        device: where the models run (default: where their parameters are).
        projection: end every model with its consistency projection (``True``), without it (``False``), or as
            it was trained (``None``): any checkpoint can be made consistent with its input at inference.
        guard: compare the scene's bands with each model's training inputs (the summary in its checkpoint) and
            warn once per model, naming band, statistic and both values, when they fall outside
            (:mod:`aerogan.prediction.domain_shift`); the messages are also in the report.

    Returns:
        a :class:`ProductReport`: the file, its band names in order, per model the consistency of its output
        with its input and the domain-shift messages, and the seconds taken.
    """
    import rasterio
    from rasterio.transform import Affine

    t0 = time.perf_counter()
    models = [load_model(m) for m in (list(model) if isinstance(model, list | tuple) else [model])]
    if not models:
        raise ValueError("super_resolve_product needs at least one model")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
    tile = DEFAULT_TILE if tile is None else tile
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile={tile!r} must be an integer >= 1 (output px)")
    where = _sources_label(sources)
    needed = [normalize_band_name(b) for m in models for b in m.metadata.get("target_band_names") or []]
    needed += [normalize_band_name(b) for m in models for g in m.metadata.get("guide_band_names") or [] for b in g]
    catalog = _catalog(sources, nodata, list(dict.fromkeys(needed)))
    if not catalog:
        raise ValueError(f"{where}: no bands found")
    scene, fine, tasks = _build(models, catalog, where)
    if guard:
        for task in tasks:
            summary = task.model.metadata.get("input_summary")
            if summary:
                task.domain_shift = check_scene(summary, scene, task.groups, where, task.label)

    # output: the finest grid over the common extent, every band in Sentinel-2 order
    q = scene.factors[0]
    height, width = scene.height * q, scene.width * q
    fine_r, fine_c = scene.origins[0]
    names = _output_order(fine.names + [b for t in tasks for b in t.targets])
    out_dtype = _output_dtype(dtype, [f for g in scene.groups for f in g.files])
    out_nodata = _output_nodata(nodata, fine, out_dtype)
    grid_file = fine.grid
    transform = grid_file.transform @ Affine.translation(fine_c, fine_r)
    fine_pos = [names.index(n) for n in fine.names]
    task_pos = [[names.index(n) for n in t.targets] for t in tasks]
    block = 512 if max(height, width) >= 2048 else 256

    runners: list[_Runner] = []
    training = [m.training for m in models]
    projecting = [m.consistency_projection for m in models]
    try:
        for task in tasks:
            if projection is not None:
                task.model.consistency_projection = bool(projection)
            dev = _device(task.model, device)
            task.model.to(dev).eval()
            task.grid = _tiling(task, scene, tile, overlap)
            runners.append(_Runner(task, scene, batch_size, dev))
        # GDAL's block cache: one strip of every group read, plus a few output block rows
        need = sum(t.grid.tile_h * f * t.grid.width * f * len(scene.groups[g].refs) * 4
                   for t in tasks for g, f in zip(t.groups, t.factors, strict=True))
        need += 2 * BLOCK_ROWS * width * len(names) * 4
        with atomic_output(out_path) as tmp, rasterio.Env(GDAL_CACHEMAX=max(need, 2**20)):
            spec = OutputSpec(
                path=tmp.parent / f"strips_{tmp.name}", format="GTiff", height=height, width=width, input_dtype=out_dtype.name,
                input_nodata=out_nodata, crs=grid_file.crs, transform=transform, source_name=where,
            )
            sink = GeoTiffSink(spec, 1, len(names), names, "input")
            try:
                written = 0

                def flush() -> int:
                    done = min(r.rows.end for r in runners)
                    a = written
                    while a < done:  # whole rows of every band: copy the fine bands beside the models' rows
                        b = min(done, a + BLOCK_ROWS)
                        out = np.empty((len(names), b - a, width), dtype=np.float32)
                        data, inv = fine.read(fine_r + a, fine_c, b - a, width)
                        out[fine_pos] = data
                        valid = ~inv
                        for runner, pos in zip(runners, task_pos, strict=True):
                            d, v = runner.rows.take(a, b)
                            out[pos] = d
                            valid &= v
                        sink.write(0, a, out, valid)
                        a = b
                    return a

                while not all(r.done for r in runners):
                    min((r for r in runners if not r.done), key=lambda r: r.rows.end).run_strip()
                    written = flush()
                if written != height:
                    raise RuntimeError(f"internal error: {written} of {height} output rows were written")
                staged = sink.commit()
            except BaseException:
                sink.abort()
                raise
            with rasterio.open(staged, "r+") as ds:
                ds.update_tags(aerogan_scale=",".join(str(t.scale) for t in tasks),
                               aerogan_models="; ".join(f"{t.targets} x{t.scale}" for t in tasks))
            _to_cog(staged, tmp, block)
    finally:
        for m, was, proj in zip(models, training, projecting, strict=True):
            m.train(was)
            m.consistency_projection = proj
    return ProductReport(Path(out_path), names, [r.summary() for r in runners], time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> ProductReport:
    """``aerogan product --ckpt a.ckpt [--ckpt b.ckpt] --out out.tif SOURCES...`` (or ``python -m aerogan.prediction.product``)."""
    p = argparse.ArgumentParser(prog="aerogan product", description=super_resolve_product.__doc__.splitlines()[0])
    p.add_argument("--ckpt", action="append", required=True, help="a guided model's checkpoint (repeat for T2 and S6)")
    p.add_argument("--out", required=True, help="the output GeoTIFF (COG)")
    p.add_argument("sources", nargs="+", help="group rasters, a .SAFE folder or .zip, or a STAC Item JSON")
    p.add_argument("--nodata", type=float, default=None, help="nodata value of every input (default: the files', else 0)")
    p.add_argument("--dtype", default=None, help="output dtype (default: the input's; e.g. float32)")
    p.add_argument("--tile", type=int, default=None, help=f"tile side in output px (default {DEFAULT_TILE})")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap in output px (default: measured, seamless)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    add_projection_argument(p)
    args = p.parse_args(argv)
    report = super_resolve_product(
        args.ckpt, args.sources, args.out, nodata=args.nodata, dtype=args.dtype, tile=args.tile, overlap=args.overlap,
        batch_size=args.batch_size, device=args.device, projection=args.projection,
    )
    print_report(report)
    return report


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
    main()
