"""Standalone Sentinel-2 product from exported guided models: numpy, rasterio and onnxruntime, nothing else.

``aerogan export`` writes guided models (DSen2-style T2: 20 m bands with the 10 m guide; S6: 60 m bands
with the 10 m and 20 m guides) to ONNX with their normalisation and band names inside, and copies this
file beside them. It makes the product :func:`aerogan.prediction.super_resolve_product` makes (with
``projection=False``: the consistency projection is not in the exported graph), without the package,
PyTorch or GDAL command-line tools::

    python export_runtime.py --model t2.onnx --model s6.onnx --out product_10m.tif S2_10m.tif S2_20m.tif S2_60m.tif

What it reads and writes, as the package does:

* Sources: raster files (GeoTIFF, COG), any number per resolution; every band needs a description
  naming it (``B05``; ``B5`` and ``b05`` are read as ``B05``). Values are read as float32 in the files'
  units (no offset is applied: give Sentinel-2 baseline >= 04.00 digital numbers already corrected).
* Grid: the groups must share a CRS, have integer resolution ratios and origins on the coarsest grid's
  pixel corners; the output is the finest grid over the common extent of every group used.
* Bands: the finest bands copied unchanged plus every model's bands, in Sentinel-2 band order (unknown
  names after, in input order), with the band names as descriptions.
* Nodata: a pixel is nodata in a group when every band holds the file's nodata value (``--nodata``,
  else the file's own, else 0) or any band is not finite. Such pixels are set to NaN before the network,
  which replaces them by the band means (in the graph); an output pixel is nodata, in every band, where
  the finest group, a model's target pixel, or any guide pixel inside that target pixel is nodata.
* dtype: ``--dtype`` (default: the inputs' dtype; integers are rounded and clipped); valid pixels that
  would equal the nodata value are moved to the next value, so nodata marks exactly the invalid pixels.

Inference is tiled on the coarsest grid (``--tile`` output pixels, default 512; ``--tile 0``: the whole
scene in one pass). Each tile reads a margin of ``receptive_radius + 2`` target pixels (from the model's
metadata), clipped to the scene, so tiles give the whole-scene result up to float rounding. Memory holds
one tile of every group (with margins) and the network's activations on it. The output is a tiled,
deflate-compressed GeoTIFF written atomically (``gdal_translate -of COG`` makes a COG of it).

As a library (any object with ``metadata`` and ``run(target, guides)`` is a model, so TorchScript or
another runtime can be plugged in): ``write_product([load_onnx("t2.onnx"), load_onnx("s6.onnx")], paths, out)``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Sentinel-2 bands in product order (the output's band order).
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Default tile side, output pixels.
DEFAULT_TILE = 512
#: Target pixels read beyond the receptive radius at every inner tile edge.
EXTRA_MARGIN = 2
_RES_TOL = 1e-6
_ORIGIN_TOL = 1e-3


def normalize_band_name(name: str) -> str:
    """Canonical band name: ``b8a`` -> ``B8A``, ``B5`` -> ``B05``."""
    n = str(name).strip().upper()
    m = re.fullmatch(r"B(\d)", n)
    return f"B0{m.group(1)}" if m else n


# ---------------------------------------------------------------------------------------------- models
@dataclass
class ExportedModel:
    """An exported guided model: its metadata (as ``aerogan export`` writes it) and a function
    ``run(target (1, C_t, h, w), guides [(1, C_k, h f_k, w f_k)]) -> (1, C_t, h s, w s)``, float32 numpy."""

    metadata: dict[str, Any]
    run: Callable[[np.ndarray, list[np.ndarray]], np.ndarray]
    label: str = "model"
    targets: list[str] = field(init=False)
    guides: list[list[str]] = field(init=False)
    ratios: list[int] = field(init=False)
    scale: int = field(init=False)
    radius: int = field(init=False)

    def __post_init__(self) -> None:
        meta = self.metadata
        if not meta.get("guided") and not meta.get("guide_band_names"):
            raise ValueError(
                f"{self.label}: not a guided export (its metadata has no guide groups); this script runs guided models "
                "such as DSen2 T2 and S6 exported by aerogan export"
            )
        missing = [k for k in ("scale", "target_band_names", "guide_band_names", "guide_ratios") if not meta.get(k)]
        if missing:
            raise ValueError(f"{self.label}: the metadata lacks {missing} (export it again with aerogan export)")
        self.targets = [normalize_band_name(b) for b in meta["target_band_names"]]
        self.guides = [[normalize_band_name(b) for b in g] for g in meta["guide_band_names"]]
        self.ratios = [int(r) for r in meta["guide_ratios"]]
        self.scale = int(meta["scale"])
        if len(self.ratios) != len(self.guides) or not self.guides:
            raise ValueError(f"{self.label}: metadata names guide groups {self.guides} with ratios {self.ratios}: one ratio per group")
        for k, r in enumerate(self.ratios):
            if r < 1 or self.scale % r:
                raise ValueError(f"{self.label}: guide_ratios[{k}]={r} (guide group {self.guides[k]}) does not divide the scale {self.scale}")
        self.radius = int(meta.get("receptive_radius", -1))

    @property
    def factors(self) -> list[int]:
        """Guide pixels per target pixel (per side), finest guide first."""
        return [self.scale // r for r in self.ratios]

    def describe(self) -> str:
        return f"{self.label} ({self.targets} x{self.scale})"


def _decode(props: dict[str, str], path: str | os.PathLike) -> dict[str, Any]:
    meta = {}
    for key, value in props.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    if "target_band_names" not in meta:
        raise ValueError(f"{path}: no aerogan metadata (target_band_names) in the ONNX file; export the model with aerogan export")
    return meta


def load_onnx(path: str | os.PathLike, providers: Sequence[str] | None = None, threads: int | None = None) -> ExportedModel:
    """An :class:`ExportedModel` running the ONNX file ``path`` with onnxruntime."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValueError(f"{path}: not a readable ONNX model: {err}") from err
    meta = _decode(session.get_modelmeta().custom_metadata_map, path)
    inputs = [i.name for i in session.get_inputs()]
    output = session.get_outputs()[0].name

    def run(target: np.ndarray, guides: list[np.ndarray]) -> np.ndarray:
        feed = {inputs[0]: np.ascontiguousarray(target, dtype=np.float32)}
        feed.update({n: np.ascontiguousarray(g, dtype=np.float32) for n, g in zip(inputs[1:], guides, strict=True)})
        return session.run([output], feed)[0]

    model = ExportedModel(meta, run, str(path))
    names = meta.get("input_names") or ["target"] + [f"guide{k}" for k in range(len(model.guides))]
    if inputs != list(names) or len(inputs) != 1 + len(model.guides):
        raise ValueError(f"{path}: the graph takes inputs {inputs}, its metadata names {names} for a target and "
                         f"{len(model.guides)} guide group(s)")
    for i, bands in zip(session.get_inputs(), [model.targets, *model.guides], strict=True):
        if isinstance(i.shape[1], int) and i.shape[1] != len(bands):
            raise ValueError(f"{path}: input {i.name} takes {i.shape[1]} bands, its metadata names {len(bands)}: {bands}")
    return model


# ---------------------------------------------------------------------------------------------- rasters
class Raster:
    """One raster file: its grid, dtype, nodata and band names (descriptions)."""

    def __init__(self, path: str | os.PathLike, nodata: float | None) -> None:
        import rasterio
        from rasterio.errors import RasterioIOError

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such raster file (give one raster per band group)")
        try:
            with rasterio.open(self.path) as ds:
                self.height, self.width, self.count = ds.height, ds.width, ds.count
                self.crs, self.transform, self.dtype = ds.crs, ds.transform, np.dtype(ds.dtypes[0])
                self.descriptions = list(ds.descriptions)
                own = ds.nodata
        except RasterioIOError as err:
            raise ValueError(f"{self.path}: not a readable raster: {err}") from err
        unnamed = [i + 1 for i, d in enumerate(self.descriptions) if not d]
        if unnamed:
            raise ValueError(
                f"{self.path}: band(s) {unnamed} have no description; bands are chosen by name, so every band needs one "
                "(e.g. rasterio's set_band_description(1, 'B05') or gdal_edit.py)"
            )
        self.nodata = float(nodata) if nodata is not None else float(own) if own is not None else 0.0
        t = self.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise ValueError(f"{self.path}: the grid is rotated or not north-up ({tuple(t)[:6]}); warp it first (gdalwarp)")
        if abs(t.a + t.e) > _RES_TOL * t.a:
            raise ValueError(f"{self.path}: pixels are {t.a:g} x {-t.e:g}, not square; band groups need square pixels")
        self._ds: Any = None

    @property
    def resolution(self) -> float:
        return float(self.transform.a)

    def read(self, bands: Sequence[int], row0: int, col0: int, height: int, width: int) -> np.ndarray:
        import rasterio
        from rasterio.windows import Window

        if self._ds is None:
            self._ds = rasterio.open(self.path)
        return self._ds.read([b + 1 for b in bands], window=Window(col0, row0, width, height), out_dtype="float32")

    def close(self) -> None:
        if self._ds is not None:
            self._ds.close()
            self._ds = None


def catalog(paths: Sequence[str | os.PathLike], nodata: float | None = None) -> dict[str, tuple[Raster, int]]:
    """Every band of ``paths`` by name: ``(raster, 0-based band index)``."""
    if not paths:
        raise ValueError("no sources: give the group rasters (one GeoTIFF per resolution, bands named by their descriptions)")
    out: dict[str, tuple[Raster, int]] = {}
    for p in paths:
        r = Raster(p, nodata)
        for i, d in enumerate(r.descriptions):
            name = normalize_band_name(d)
            if name in out:
                raise ValueError(f"band {name} appears twice ({out[name][0].path} and {r.path}); each band name must be unique")
            out[name] = (r, i)
    return out


class Group:
    """Named bands on one grid, read together with their nodata mask."""

    def __init__(self, bands: Sequence[str], cat: dict[str, tuple[Raster, int]], label: str) -> None:
        self.names = list(bands)
        self.label = label
        self.refs = [cat[b] for b in bands]
        first = self.refs[0][0]
        for b, (r, _) in zip(self.names, self.refs, strict=True):
            if (r.height, r.width, r.crs, tuple(r.transform)[:6]) != (first.height, first.width, first.crs, tuple(first.transform)[:6]):
                raise ValueError(
                    f"{label}: bands {self.names[0]} ({first.path}: {first.resolution:g} m, {first.height}x{first.width}) and {b} "
                    f"({r.path}: {r.resolution:g} m, {r.height}x{r.width}) lie on different grids; the bands of one group share one grid"
                )
        self.grid = first
        self.nodata = np.array([r.nodata for r, _ in self.refs], dtype=np.float32)
        self.rasters: list[tuple[Raster, list[int], list[int]]] = []  # (raster, band indices, positions)
        for pos, (r, i) in enumerate(self.refs):
            slot = next((s for s in self.rasters if s[0] is r), None)
            if slot is None:
                slot = (r, [], [])
                self.rasters.append(slot)
            slot[1].append(i)
            slot[2].append(pos)
        self.origin = (0, 0)  # (row, col) of the common extent's corner, own pixels (set by Scene)
        self.factor = 1  # own pixels per coarsest pixel (set by Scene)

    @property
    def resolution(self) -> float:
        return self.grid.resolution

    @property
    def files(self) -> list[str]:
        return sorted({str(r.path) for r, _, _ in self.rasters})

    def read(self, row0: int, col0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(data float32 (C, h, w), invalid (h, w))`` over a window of the common extent, in own pixels."""
        r, c = self.origin
        out = np.empty((len(self.names), height, width), dtype=np.float32)
        for raster, idx, pos in self.rasters:
            out[pos] = raster.read(idx, r + row0, c + col0, height, width)
        invalid = ~np.isfinite(out).all(0)
        if not np.isnan(self.nodata).any():
            invalid |= (out == self.nodata[:, None, None]).all(0)
        return out, invalid


class Scene:
    """Groups checked for alignment, with the common extent on the coarsest grid (``height`` x ``width``)."""

    def __init__(self, groups: Sequence[Group]) -> None:
        coarse = max(groups, key=lambda g: g.resolution)
        ref = coarse.grid
        for g in groups:
            f = g.grid
            if (f.crs is None) != (ref.crs is None) or (f.crs is not None and f.crs != ref.crs):
                a = f.crs.to_string() if f.crs is not None else "no CRS"
                b = ref.crs.to_string() if ref.crs is not None else "no CRS"
                raise ValueError(f"{f.path} (bands {g.names}): CRS {a} differs from {b} of {ref.path}; all groups must share one CRS")
            ratio = coarse.resolution / g.resolution
            if abs(ratio - round(ratio)) > _RES_TOL * ratio:
                raise ValueError(
                    f"{ref.path} ({coarse.resolution:g} m) is {ratio:.6g} times the pixel of {f.path} (bands {g.names}, "
                    f"{g.resolution:g} m); resolution ratios between groups must be integers"
                )
        res = coarse.resolution
        starts = []
        for g in groups:
            t, rt = g.grid.transform, ref.transform
            dx, dy = (t.c - rt.c) / res, (rt.f - t.f) / res
            if abs(dx - round(dx)) > _ORIGIN_TOL or abs(dy - round(dy)) > _ORIGIN_TOL:
                raise ValueError(
                    f"{g.grid.path} (bands {g.names}): grid origin ({t.c:g}, {t.f:g}) is offset by ({t.c - rt.c:g}, {t.f - rt.f:g}) "
                    f"from the origin of {ref.path}, not a whole number of its {res:g} m pixels; the grids are not aligned "
                    "(every origin must lie on a corner of the coarsest grid, e.g. gdalwarp -tap)"
                )
            g.factor = round(res / g.resolution)
            starts.append((round(dy), round(dx)))
        ends = [(s[0] + g.grid.height // g.factor, s[1] + g.grid.width // g.factor) for s, g in zip(starts, groups, strict=True)]
        r0, c0 = max(s[0] for s in starts), max(s[1] for s in starts)
        r1, c1 = min(e[0] for e in ends), min(e[1] for e in ends)
        if r1 <= r0 or c1 <= c0:
            raise ValueError(f"band groups {[g.names for g in groups]}: the grids do not overlap")
        for s, g in zip(starts, groups, strict=True):
            g.origin = ((r0 - s[0]) * g.factor, (c0 - s[1]) * g.factor)
        self.height, self.width = r1 - r0, c1 - c0


# ---------------------------------------------------------------------------------------------- product
@dataclass
class _Task:
    model: ExportedModel
    target: Group
    guides: list[Group]


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _RES_TOL * max(a, b)


def _build(models: Sequence[ExportedModel], cat: dict[str, tuple[Raster, int]], where: str) -> tuple[Group, list[_Task]]:
    fine_res = min(r.resolution for r, _ in cat.values())
    fine = Group([b for b, (r, _) in cat.items() if _same(r.resolution, fine_res)], cat, "the finest bands")
    tasks: list[_Task] = []
    produced = {b: "the finest group" for b in fine.names}
    for m in models:
        label = m.describe()
        for role, names in [("target", m.targets)] + [(f"guide group {k}", g) for k, g in enumerate(m.guides)]:
            missing = [b for b in names if b not in cat]
            if missing:
                raise ValueError(f"{label} needs band(s) {missing} ({role}), which the sources do not hold ({where}); available: {sorted(cat)}")
        target = Group(m.targets, cat, f"{label} target bands")
        guides = [Group(g, cat, f"{label} guide group {k}") for k, g in enumerate(m.guides)]
        ratio = target.resolution / guides[0].resolution
        if abs(ratio - m.scale) > _RES_TOL * m.scale:
            raise ValueError(
                f"{label}: the target bands {m.targets} are at {target.resolution:g} m ({', '.join(target.files)}) and the finest guide "
                f"{m.guides[0]} at {guides[0].resolution:g} m ({', '.join(guides[0].files)}), a ratio of {ratio:g}; the model was "
                f"trained for a ratio of {m.scale} (target {m.scale} times coarser than its finest guide)"
            )
        for k in range(1, len(guides)):
            want = m.ratios[k] / m.ratios[0]
            got = guides[k].resolution / guides[0].resolution
            if abs(got - want) > _RES_TOL * want:
                raise ValueError(
                    f"{label}: guide group {k} {m.guides[k]} is at {guides[k].resolution:g} m ({', '.join(guides[k].files)}), {got:g} "
                    f"times the finest guide {m.guides[0]} at {guides[0].resolution:g} m; the model was trained for a ratio of {want:g}"
                )
        if not _same(guides[0].resolution, fine_res):
            raise ValueError(
                f"{label}: its output grid (the finest guide {m.guides[0]} at {guides[0].resolution:g} m) is not the finest grid of "
                f"the sources ({fine.names} at {fine_res:g} m; {where}); the product is written on the finest grid"
            )
        for b in m.targets:
            if b in produced:
                raise ValueError(f"{label}: band {b} would be written twice (also by {produced[b]}); each band may come from one source only")
            produced[b] = label
        tasks.append(_Task(m, target, guides))
    return fine, tasks


def output_order(names: Sequence[str]) -> list[str]:
    """Sentinel-2 band order, then unknown names in input order."""
    rank = {b: i for i, b in enumerate(S2_BANDS)}
    return [n for _, n in sorted((rank.get(n, len(rank) + i), n) for i, n in enumerate(names))]


def _output_dtype(dtype: str | None, rasters: Sequence[Raster]) -> np.dtype:
    if dtype is not None:
        try:
            out = np.dtype(dtype)
        except TypeError as err:
            raise ValueError(f"dtype={dtype!r} is not a NumPy dtype (e.g. 'float32', 'uint16')") from err
        if not (np.issubdtype(out, np.integer) or np.issubdtype(out, np.floating)) or out.itemsize > 8:
            raise ValueError(f"dtype={dtype!r}: the output must be an integer or floating dtype GeoTIFF can hold")
        return out
    common = np.result_type(*{r.dtype for r in rasters})
    if np.issubdtype(common, np.floating):
        return np.dtype("float32") if common.itemsize <= 4 else np.dtype("float64")
    return common


def _output_nodata(nodata: float | None, fine: Group, dtype: np.dtype) -> float:
    value = nodata if nodata is not None else fine.grid.nodata
    if not np.issubdtype(dtype, np.integer):
        return value
    info = np.iinfo(dtype)
    if math.isnan(value):
        return float(info.min)
    if value != int(value) or not info.min <= value <= info.max:
        raise ValueError(f"nodata {value:g} cannot be stored as {dtype.name}; pass --nodata or --dtype float32")
    return value


def encode(data: np.ndarray, valid: np.ndarray, dtype: np.dtype, nodata: float) -> np.ndarray:
    """Float values (C, h, w) as ``dtype``; invalid pixels get ``nodata``, valid ones never do."""
    if np.issubdtype(dtype, np.floating):
        out = data.astype(dtype)
        if not np.isnan(nodata):
            nd = dtype.type(nodata)
            out[(out == nd) & valid[None]] = np.nextafter(nd, dtype.type(np.inf))
    else:
        info = np.iinfo(dtype)
        out = np.clip(np.rint(np.nan_to_num(data, nan=0.0)), info.min, info.max).astype(dtype)
        nd = dtype.type(nodata)
        out[(out == nd) & valid[None]] = nd + 1 if nd < info.max else nd - 1
    out[:, ~valid] = nodata
    return out


def _predict(task: _Task, r0: int, r1: int, c0: int, c1: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One model over coarse-pixel rows ``r0..r1`` and cols ``c0..c1``: (SR bands, valid) on the output grid.

    The target window grows by the model's margin (clipped to the scene, ``height`` x ``width`` coarse px) and
    the prediction is cropped back: whole-scene values, tile by tile.
    """
    m, q = task.model, task.target.factor
    margin = max(m.radius, 0) + EXTRA_MARGIN
    lo_r, hi_r, lo_c, hi_c = r0 * q, r1 * q, c0 * q, c1 * q
    a_r, b_r = max(0, lo_r - margin), min(height * q, hi_r + margin)
    a_c, b_c = max(0, lo_c - margin), min(width * q, hi_c + margin)
    h, w = b_r - a_r, b_c - a_c
    target, target_invalid = task.target.read(a_r, a_c, h, w)
    target[:, target_invalid] = np.nan  # nodata never reaches the network: the graph fills NaN with the band means
    invalid = target_invalid.copy()
    guides = []
    for g, f in zip(task.guides, m.factors, strict=True):
        data, inv = g.read(a_r * f, a_c * f, h * f, w * f)
        invalid |= inv.reshape(h, f, w, f).any((1, 3))  # a nodata guide pixel spoils its target pixel
        data[:, inv] = np.nan
        guides.append(data[None])
    pred = np.asarray(m.run(target[None], guides))[0]
    s = m.scale
    if pred.shape != (len(m.targets), h * s, w * s):
        raise ValueError(f"{m.describe()}: returned shape {pred.shape} for a {h}x{w} target window, expected {(len(m.targets), h * s, w * s)}")
    crop = (slice(None), slice((lo_r - a_r) * s, (hi_r - a_r) * s), slice((lo_c - a_c) * s, (hi_c - a_c) * s))
    valid = ~invalid[lo_r - a_r : hi_r - a_r, lo_c - a_c : hi_c - a_c]
    return pred[crop], valid.repeat(s, 0).repeat(s, 1)


def write_product(
    models: Sequence[ExportedModel],
    sources: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    nodata: float | None = None,
    dtype: str | None = None,
    tile: int | None = None,
) -> list[str]:
    """Write the product GeoTIFF of ``models`` (e.g. T2 and S6) over the group rasters ``sources``; return its band names.

    ``nodata``: nodata of every input file (default: each file's own, else 0) and of the output (default: the
    finest group's); ``dtype``: output dtype (default: the inputs'); ``tile``: tile side in output pixels
    (default 512, rounded down to whole coarsest pixels; 0: the whole scene). Written atomically.
    """
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    if not models:
        raise ValueError("no model: give at least one exported guided model (--model t2.onnx)")
    tile = DEFAULT_TILE if tile is None else int(tile)
    if tile < 0:
        raise ValueError(f"tile={tile} must be >= 0 (output px; 0: the whole scene)")
    paths = [Path(p) for p in sources]
    where = ", ".join(str(p) for p in paths)
    cat = catalog(paths, nodata)
    try:
        fine, tasks = _build(models, cat, where)
        groups = [fine] + [g for t in tasks for g in (t.target, *t.guides)]
        scene = Scene(groups)
        q = fine.factor
        height, width = scene.height * q, scene.width * q
        names = output_order(fine.names + [b for t in tasks for b in t.model.targets])
        fine_pos = [names.index(b) for b in fine.names]
        task_pos = [[names.index(b) for b in t.model.targets] for t in tasks]
        out_dtype = _output_dtype(dtype, [r for g in groups for r, _, _ in g.rasters])
        out_nodata = _output_nodata(nodata, fine, out_dtype)
        grid = fine.grid
        transform = grid.transform @ Affine.translation(fine.origin[1], fine.origin[0])
        step = scene.height + scene.width if tile == 0 else max(1, tile // q)  # coarse px per tile
        blind = [t.model.label for t in tasks if t.model.radius < 0]
        if blind and step < max(scene.height, scene.width):
            warnings.warn(f"{blind}: no receptive_radius in the metadata, so tiles cannot be made seamless; running the "
                          "whole scene in one pass", stacklevel=2)
            step = scene.height + scene.width
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.parent / f".{out_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.tif"  # renamed when complete
        profile = {
            "driver": "GTiff", "height": height, "width": width, "count": len(names), "dtype": out_dtype.name,
            "crs": grid.crs, "transform": transform, "nodata": out_nodata, "tiled": True, "blockxsize": 256,
            "blockysize": 256, "compress": "deflate", "predictor": 3 if np.issubdtype(out_dtype, np.floating) else 2,
            "BIGTIFF": "IF_SAFER",
        }
        try:
            with rasterio.open(tmp, "w", **profile) as dst:
                for i, b in enumerate(names, start=1):
                    dst.set_band_description(i, b)
                dst.update_tags(aerogan_scale=",".join(str(t.model.scale) for t in tasks),
                                aerogan_models="; ".join(f"{t.model.targets} x{t.model.scale}" for t in tasks),
                                aerogan_runtime="export_runtime.py (onnxruntime)")
                for r0 in range(0, scene.height, step):
                    r1 = min(scene.height, r0 + step)
                    for c0 in range(0, scene.width, step):
                        c1 = min(scene.width, c0 + step)
                        out = np.empty((len(names), (r1 - r0) * q, (c1 - c0) * q), dtype=np.float32)
                        data, invalid = fine.read(r0 * q, c0 * q, (r1 - r0) * q, (c1 - c0) * q)
                        out[fine_pos] = data
                        valid = ~invalid
                        for task, pos in zip(tasks, task_pos, strict=True):
                            pred, ok = _predict(task, r0, r1, c0, c1, scene.height, scene.width)
                            out[pos] = pred
                            valid &= ok
                        window = Window(c0 * q, r0 * q, (c1 - c0) * q, (r1 - r0) * q)
                        dst.write(encode(out, valid, out_dtype, out_nodata), window=window)
            os.replace(tmp, out_path)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        for r, _ in cat.values():
            r.close()
    return names


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> list[str]:
    """``python export_runtime.py --model t2.onnx [--model s6.onnx] --out product.tif SOURCES...``."""
    p = argparse.ArgumentParser(prog="export_runtime.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="an exported guided model (.onnx); repeat for T2 and S6")
    p.add_argument("--out", required=True, help="the output GeoTIFF")
    p.add_argument("sources", nargs="+", help="group rasters: one GeoTIFF per resolution, bands named by their descriptions")
    p.add_argument("--nodata", type=float, default=None, help="nodata value of every input (default: the files', else 0)")
    p.add_argument("--dtype", default=None, help="output dtype (default: the input's; e.g. float32)")
    p.add_argument("--tile", type=int, default=None, help=f"tile side in output px (default {DEFAULT_TILE}; 0: whole scene)")
    p.add_argument("--providers", nargs="+", default=None, help="onnxruntime execution providers (default: CPUExecutionProvider)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: onnxruntime's)")
    args = p.parse_args(argv)
    try:
        models = [load_onnx(m, args.providers, args.threads) for m in args.model]
        names = write_product(models, args.sources, args.out, nodata=args.nodata, dtype=args.dtype, tile=args.tile)
    except (ValueError, FileNotFoundError) as err:
        print(f"export_runtime: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {args.out}: {len(names)} bands {names}")
    return names


if __name__ == "__main__":
    main()
