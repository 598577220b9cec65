"""Transfer test: does a model work on ground, and radiometry, it never saw?

The only real multi-resolution scene here is one Sentinel-2 crop, whose left part trains the models, so the
proxy for "another scene" is its held-out right quarter after a per-band radiometric change, evaluated at
Wald's reduced resolution, where a truth exists:

1. Region (:func:`write_region`): every group raster cut to the same ground columns (a fraction of the common
   extent, snapped to the coarsest group's pixels, so the grids stay aligned), each band optionally changed
   to ``value * gain + offset`` with a per-band ``(gain, offset)`` from :func:`draw_shift` (another date,
   calibration or atmosphere: what per-band normalisation statistics learned on the left part do not know).
2. Wald level (:func:`write_wald_level`): every group degraded by ``ratio`` with DSen2's operator (Gaussian
   blur of sigma ``1 / ratio`` pixel, then a ``ratio x ratio`` block mean, :func:`datamodules.wald.degrade_group`):
   at ``ratio`` 2 the 20 m guide and the 40 m bands give 20 m bands, whose truth is the region's real 20 m bands.
3. Product: :func:`~aerogan.prediction.product.super_resolve_product` on the Wald-level groups (the models'
   metadata picks their bands), float32.
4. Score (:func:`score_product`): per super-resolved band, RMSE against the truth on the product's grid; the
   same for bicubic upsampling of the input band (the baseline to beat); the gain over bicubic; and
   consistency: the product degraded back by the models' nominal operator against its own input.

:func:`evaluate` runs it all; ``python -m aerogan.transfer --ckpt T2.ckpt --work DIR SOURCES...`` prints one
markdown table row and writes ``DIR/transfer.json``.

Choices (documented): outputs are float32 GeoTIFFs with NaN as nodata; an input pixel that is nodata (as
:class:`~datamodules.band_catalog.BandGroup` reads it: the file's nodata, default 0, or non-finite)
stays NaN, and a Wald-level pixel is NaN when any pixel under its blur footprint is. The Wald level starts
every group at the common extent's corner and drops the last rows/columns that do not fill a ``ratio x
ratio`` block. Scores skip nodata and NaN pixels; bicubic pixels whose 4 x 4 support touches an invalid input
pixel and degraded pixels whose footprint touches an invalid product pixel are skipped too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aerogan.atomic import atomic_output
from aerogan.degradation import blur_radius, gaussian_block_mean
from aerogan.prediction.product import add_projection_argument, super_resolve_product
from aerogan.super_resolution import SuperResolution
from datamodules.band_catalog import (
    S2_BANDS,
    S2_NODATA,
    BandGroup,
    MultiResolutionScene,
    catalog_from_rasters,
    normalize_band_name,
)
from datamodules.wald import degrade_group

__all__ = ["TABLE_HEADER", "draw_shift", "evaluate", "format_row", "main", "score_product", "write_region", "write_wald_level"]

#: Header of the table whose rows :func:`format_row` (and the command line) prints.
TABLE_HEADER = "| run | RMSE | bicubic RMSE | below bicubic | consistency |\n|---|---|---|---|---|"

_TOL = 1e-3  # grid offsets, in pixels


# ---------------------------------------------------------------------------------------------- shift
def draw_shift(
    bands: Sequence[str], seed: int = 0, gain: tuple[float, float] = (0.6, 1.5), offset: float = 300.0
) -> dict[str, tuple[float, float]]:
    """Per band ``(gain, offset)``: gain uniform in ``gain``, offset uniform in ``[-offset, offset]`` (data units).

    Each band's draw depends on ``seed`` and the band's name only (not on the other bands listed), so a band
    gets the same change whichever bands a run uses; bands differ from each other.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"draw_shift: seed must be an integer >= 0, got {seed!r}")
    lo, hi = (float(g) for g in gain)
    if not 0 < lo <= hi:
        raise ValueError(f"draw_shift: gain must be a range (low, high) with 0 < low <= high, got {gain!r}")
    if not offset >= 0:
        raise ValueError(f"draw_shift: offset must be >= 0 (offsets are drawn in [-offset, offset]), got {offset!r}")
    names = [normalize_band_name(b) for b in bands]
    if len(set(names)) != len(names):
        raise ValueError(f"draw_shift: band names repeat: {list(bands)}")
    out = {}
    for name in names:
        rng = np.random.default_rng([seed, *name.encode()])
        out[name] = (float(rng.uniform(lo, hi)), float(rng.uniform(-offset, offset)))
    return out


# ---------------------------------------------------------------------------------------------- rasters
def _open(sources: Sequence[str | os.PathLike]) -> tuple[list[Path], list[BandGroup], MultiResolutionScene]:
    """Group rasters (one group per file, bands named by their descriptions) checked for alignment."""
    paths = [Path(s).expanduser() for s in ([sources] if isinstance(sources, str | os.PathLike) else sources)]
    if not paths:
        raise ValueError("no group rasters given")
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"group rasters must have distinct file names (the outputs keep them): {names}")
    catalog = catalog_from_rasters(paths)
    groups = []
    for p in paths:
        refs = [r for r in catalog.values() if r.file.path == p]
        groups.append(BandGroup(refs, str(p)))
    return paths, groups, MultiResolutionScene(groups)


def _write(path: Path, data: np.ndarray, transform: Any, crs: Any, names: Sequence[str], tags: Mapping[str, str]) -> Path:
    """A float32 GeoTIFF with NaN nodata and band descriptions, written atomically."""
    import rasterio

    with atomic_output(path) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype="float32",
        nodata=float("nan"), crs=crs, transform=transform,
    ) as dst:
        dst.write(data.astype(np.float32, copy=False))
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**tags)
    return path


def _spoiled(invalid: np.ndarray, ratio: int, radius: int) -> np.ndarray:
    """(H/ratio, W/ratio) mask of blocks whose blur footprint (``radius`` px around the block) holds an invalid pixel."""
    m = torch.from_numpy(np.ascontiguousarray(invalid, dtype=np.float32))[None, None]
    if radius > 0:
        m = F.max_pool2d(m, 2 * radius + 1, stride=1, padding=radius)
    if ratio > 1:
        m = F.max_pool2d(m, ratio)
    return m[0, 0].numpy() > 0


def write_region(
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    col_fraction: tuple[float, float] = (0.75, 1.0),
    shift: Mapping[str, tuple[float, float]] | None = None,
) -> list[Path]:
    """Cut every group raster to the same ground columns, optionally with a per-band radiometric change.

    The columns are ``col_fraction`` of the common extent of the groups, snapped to the coarsest group's
    pixels (so the outputs stay aligned); every row of the common extent is kept. With ``shift`` (band ->
    ``(gain, offset)``, e.g. from :func:`draw_shift`; bands it does not name are unchanged), each value
    becomes ``value * gain + offset``. Writes ``out_dir/<source file name>`` per source: float32, NaN where
    the source is nodata, the source's band descriptions and CRS, its transform moved to the window.
    Returns the paths, in the order of ``sources``.
    """
    from rasterio.transform import Affine

    paths, groups, scene = _open(sources)
    lo, hi = (float(f) for f in col_fraction)
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"write_region: col_fraction must be (low, high) with 0 <= low < high <= 1, got {col_fraction!r}")
    c0, c1 = round(lo * scene.width), round(hi * scene.width)
    if c1 <= c0:
        raise ValueError(
            f"write_region: col_fraction {col_fraction} of {scene.width} coarse px ({scene.resolution:g} m) is less than one pixel"
        )
    table = {normalize_band_name(b): (float(g), float(o)) for b, (g, o) in (shift or {}).items()}
    known = {normalize_band_name(n) for g in groups for n in g.names}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"write_region: shift names band(s) {unknown} that no source holds ({sorted(known)})")
    out_dir = Path(out_dir)
    desc = f"columns {c0}..{c1} of {scene.width} coarse px ({scene.resolution:g} m), rows 0..{scene.height}"
    out = []
    for path, group, q, (r, c) in zip(paths, groups, scene.factors, scene.origins, strict=True):
        col = c + c0 * q
        data, invalid = group.read(r, col, scene.height * q, (c1 - c0) * q)
        values = data.astype(np.float64)
        used = {}
        for i, name in enumerate(group.names):
            g, o = table.get(normalize_band_name(name), (1.0, 0.0))
            values[i] = values[i] * g + o
            used[normalize_band_name(name)] = [g, o]
        values = values.astype(np.float32)
        values[:, invalid] = np.nan
        tags = {"aerogan_region": f"{desc} of {path.name}", "aerogan_shift": json.dumps(used if shift else None)}
        out.append(_write(out_dir / path.name, values, group.grid.transform @ Affine.translation(col, r), group.grid.crs, group.names, tags))
    return out


def write_wald_level(sources: Sequence[str | os.PathLike], out_dir: str | os.PathLike, ratio: int = 2) -> list[Path]:
    """Every group raster degraded by ``ratio`` with DSen2's Wald operator (Wald's reduced resolution).

    Each group, from the common extent's corner and cut to whole ``ratio x ratio`` blocks, is blurred with a
    Gaussian of sigma ``1 / ratio`` of its pixels and block-averaged (:func:`datamodules.wald.degrade_group`,
    what the training pairs are made with), so the groups stay aligned one level down. Writes
    ``out_dir/<source file name>`` per source: float32, pixel size ``ratio`` times the source's, same band
    descriptions and CRS; a pixel whose blur footprint touches a nodata pixel is NaN. Returns the paths.
    """
    from rasterio.transform import Affine

    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
        raise ValueError(f"write_wald_level: ratio must be an integer >= 1, got {ratio!r}")
    paths, groups, scene = _open(sources)
    radius = blur_radius(1.0 / ratio) if ratio > 1 else 0
    out_dir = Path(out_dir)
    out = []
    for path, group, q, (r, c) in zip(paths, groups, scene.factors, scene.origins, strict=True):
        h, w = scene.height * q // ratio * ratio, scene.width * q // ratio * ratio
        if h == 0 or w == 0:
            raise ValueError(f"write_wald_level: {path} covers {scene.height * q}x{scene.width * q} px, less than one {ratio}x{ratio} block")
        data, invalid = group.read(r, c, h, w)
        x = torch.from_numpy(np.where(invalid[None], 0.0, data).astype(np.float64))[None]
        y = degrade_group(x, ratio)[0].numpy().astype(np.float32)
        y[:, _spoiled(invalid, ratio, radius)] = np.nan
        transform = group.grid.transform @ Affine.translation(c, r) @ Affine.scale(ratio)
        tags = {"aerogan_wald": f"{path.name} degraded by {ratio} (Gaussian sigma 1/{ratio} px, {ratio}x{ratio} block mean)"}
        out.append(_write(out_dir / path.name, y, transform, group.grid.crs, group.names, tags))
    return out


# ---------------------------------------------------------------------------------------------- scoring
@dataclass
class _Raster:
    """What scoring needs of one raster file."""

    path: Path
    transform: Any
    crs: Any
    height: int
    width: int
    nodata: float
    names: list[str]

    @classmethod
    def open(cls, path: str | os.PathLike) -> _Raster:
        import rasterio

        with rasterio.open(path) as ds:
            if not all(ds.descriptions):
                raise ValueError(f"{path}: every band needs a description (its band name)")
            t = ds.transform
            if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0 or abs(abs(t.e) - t.a) > 1e-6 * t.a:
                raise ValueError(f"{path}: the grid is not north-up with square pixels ({tuple(t)[:6]})")
            nodata = ds.nodata if ds.nodata is not None else S2_NODATA
            return cls(Path(path), t, ds.crs, ds.height, ds.width, float(nodata), [normalize_band_name(d) for d in ds.descriptions])

    @property
    def res(self) -> float:
        return self.transform.a

    def read(self, band: str, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, invalid)`` of ``band`` over a window: float64, and where it is nodata or not finite."""
        import rasterio
        from rasterio.windows import Window

        if row < 0 or col < 0 or row + height > self.height or col + width > self.width:
            raise ValueError(
                f"{self.path}: rows {row}..{row + height}, cols {col}..{col + width} lie outside its {self.height}x{self.width} px"
            )
        with rasterio.open(self.path) as ds:
            x = ds.read(self.names.index(band) + 1, window=Window(col, row, width, height)).astype(np.float64)
        invalid = ~np.isfinite(x)
        if not math.isnan(self.nodata):
            invalid |= x == self.nodata
        return x, invalid


def _index(paths: Sequence[str | os.PathLike], what: str) -> dict[str, _Raster]:
    """Band name -> the raster holding it."""
    out: dict[str, _Raster] = {}
    for p in [paths] if isinstance(paths, str | os.PathLike) else paths:
        raster = _Raster.open(p)
        for name in raster.names:
            if name in out:
                raise ValueError(f"{what}: band {name} appears twice ({out[name].path} and {raster.path})")
            out[name] = raster
    return out


def _same_res(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(a, b)


def _corner(product: _Raster, other: _Raster, band: str) -> tuple[int, int]:
    """(row, col) of the product's corner in ``other``'s pixels; raises unless it is a pixel corner."""
    if (product.crs is None) != (other.crs is None) or (product.crs is not None and product.crs != other.crs):
        raise ValueError(f"band {band}: {other.path} and the product {product.path} have different CRS")
    dx, dy = (product.transform.c - other.transform.c) / other.res, (other.transform.f - product.transform.f) / other.res
    if abs(dx - round(dx)) > _TOL or abs(dy - round(dy)) > _TOL:
        raise ValueError(f"band {band}: the product's corner is not on a pixel corner of {other.path} (offset {dx:g}, {dy:g} px)")
    return round(dy), round(dx)


def _rmse(d: np.ndarray, valid: np.ndarray) -> float:
    return float(np.sqrt(np.mean(d[valid] ** 2))) if valid.any() else float("nan")


def score_product(
    product: str | os.PathLike,
    truth: Sequence[str | os.PathLike],
    inputs: Sequence[str | os.PathLike],
    bands: Sequence[str] | None = None,
    ratio: int = 2,
) -> dict[str, Any]:
    """Score a super-resolved product against the truth, against bicubic, and against its own input.

    Bands are matched by description. Scored by default: every product band whose truth (in ``truth``) lies
    on the product's grid and whose input (in ``inputs``) does not (the super-resolved bands, not the copied
    finest ones). Each scored band's input must be ``ratio`` times coarser than the product and aligned with it.

    Per band, over pixels valid in the product, the truth and the bicubic baseline: ``rmse`` against the
    truth; ``rmse_bicubic``, the same for the input band upsampled by ``ratio`` (torch bicubic,
    ``align_corners=False``); ``gain_vs_bicubic = 1 - rmse / rmse_bicubic``; and ``consistency``, the RMSE
    between the product degraded by the models' nominal operator (Gaussian sigma ``1 / ratio`` product pixel,
    then a ``ratio x ratio`` block mean, :func:`~aerogan.degradation.gaussian_block_mean`) and the input.

    Returns:
        ``bands``, ``ratio``, the means over bands ``rmse``, ``rmse_bicubic``, ``consistency`` and
        ``gain_vs_bicubic`` (from the mean RMSEs), and ``per_band``: band -> the four values and ``pixels``.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 2:
        raise ValueError(f"score_product: ratio must be an integer >= 2, got {ratio!r}")
    prod = _Raster.open(product)
    truths, ins = _index(truth, "truth"), _index(inputs, "inputs")
    if bands is None:
        chosen = [b for b in prod.names if b in truths and _same_res(truths[b].res, prod.res)
                  and not (b in ins and _same_res(ins[b].res, prod.res))]
        if not chosen:
            raise ValueError(
                f"score_product: no band of the product {prod.path} ({prod.names}, {prod.res:g} m) has its truth on the product's "
                f"grid in {sorted(truths)} apart from the copied input bands"
            )
    else:
        chosen = [normalize_band_name(b) for b in bands]
    if prod.height % ratio or prod.width % ratio:
        raise ValueError(f"score_product: the product's {prod.height}x{prod.width} px are not multiples of ratio={ratio}")
    h, w = prod.height, prod.width
    radius = blur_radius(1.0 / ratio)
    per_band: dict[str, dict[str, float | int]] = {}
    for band in chosen:
        for where, table in (("the product", {b: prod for b in prod.names}), ("the truth", truths), ("the inputs", ins)):
            if band not in table:
                raise ValueError(f"score_product: band {band} is not in {where} ({sorted(table)})")
        t, lr_file = truths[band], ins[band]
        if not _same_res(t.res, prod.res):
            raise ValueError(f"score_product: the truth of {band} ({t.path}) is at {t.res:g} m, the product at {prod.res:g} m")
        if not _same_res(lr_file.res, ratio * prod.res):
            raise ValueError(
                f"score_product: the input of {band} ({lr_file.path}) is at {lr_file.res:g} m, not ratio={ratio} times the "
                f"product's {prod.res:g} m"
            )
        p, p_inv = prod.read(band, 0, 0, h, w)
        tr, tr_inv = t.read(band, *_corner(prod, t, band), h, w)
        lr, lr_inv = lr_file.read(band, *_corner(prod, lr_file, band), h // ratio, w // ratio)
        lr0 = torch.from_numpy(np.where(lr_inv, 0.0, lr))[None, None]
        bicubic = F.interpolate(lr0, size=(h, w), mode="bicubic", align_corners=False)[0, 0].numpy()
        bic_inv = np.kron(_spoiled(lr_inv, 1, 2), np.ones((ratio, ratio), dtype=bool))  # 4 x 4 support
        valid = ~(p_inv | tr_inv | bic_inv)
        rmse, rmse_bic = _rmse(p - tr, valid), _rmse(bicubic - tr, valid)
        back = gaussian_block_mean(torch.from_numpy(np.where(p_inv, 0.0, p))[None, None], ratio, 1.0 / ratio)[0, 0].numpy()
        back_valid = ~(_spoiled(p_inv, ratio, radius) | lr_inv)
        per_band[band] = {
            "rmse": rmse, "rmse_bicubic": rmse_bic, "gain_vs_bicubic": 1.0 - rmse / rmse_bic if rmse_bic > 0 else float("nan"),
            "consistency": _rmse(back - lr, back_valid), "pixels": int(valid.sum()),
        }
    mean = {k: float(np.mean([v[k] for v in per_band.values()])) for k in ("rmse", "rmse_bicubic", "consistency")}
    gain = 1.0 - mean["rmse"] / mean["rmse_bicubic"] if mean["rmse_bicubic"] > 0 else float("nan")
    return {"bands": chosen, "ratio": ratio, **mean, "gain_vs_bicubic": gain, "per_band": per_band}


# ---------------------------------------------------------------------------------------------- protocol
def _label(ckpt: Any) -> str:
    return str(ckpt) if isinstance(ckpt, str | os.PathLike) else f"<{type(ckpt).__name__}>"


def evaluate(
    ckpts: Sequence[str | os.PathLike | SuperResolution],
    sources: Sequence[str | os.PathLike],
    work_dir: str | os.PathLike,
    *,
    seed: int = 0,
    shift: bool = True,
    projection: bool | None = None,
    ratio: int = 2,
    col_fraction: tuple[float, float] = (0.75, 1.0),
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """The whole transfer test on group rasters ``sources``; files go to ``work_dir``.

    Region ``col_fraction`` (the held-out right quarter), shifted per band by :func:`draw_shift` (``seed``)
    when ``shift``, into ``work_dir/region``; its Wald level by ``ratio`` into ``work_dir/wald``; the models'
    product on it (``work_dir/product.tif``, float32; ``projection`` is passed to
    :func:`~aerogan.prediction.product.super_resolve_product` only when not None); scored by
    :func:`score_product` against the region's native bands.

    Returns:
        :func:`score_product`'s dict plus what was run: ``ckpts``, ``sources``, ``seed``, ``shift`` (band ->
        ``[gain, offset]``, or None), ``projection``, ``col_fraction``, ``region``, ``wald``, ``product``,
        ``product_bands``, ``product_report`` (the product's own block-mean consistency per model) and ``seconds``.
    """
    t0 = time.perf_counter()
    work = Path(work_dir)
    models = list(ckpts)
    if not models:
        raise ValueError("evaluate: give at least one model checkpoint")
    names = list(catalog_from_rasters([Path(s) for s in sources]))
    bands = [b for b in S2_BANDS if b in names] + [b for b in names if b not in S2_BANDS]
    table = draw_shift(bands, seed) if shift else None
    region = write_region(sources, work / "region", col_fraction, table)
    wald = write_wald_level(region, work / "wald", ratio)
    kwargs: dict[str, Any] = {} if projection is None else {"projection": projection}
    report = super_resolve_product(models, wald, work / "product.tif", dtype="float32", device=device, **kwargs)
    score = score_product(report.out_path, region, wald, ratio=ratio)
    return {
        **score,
        "ckpts": [_label(c) for c in models], "sources": [str(s) for s in sources], "seed": seed,
        "shift": {b: list(v) for b, v in table.items()} if table else None, "projection": projection,
        "col_fraction": list(col_fraction), "region": [str(p) for p in region], "wald": [str(p) for p in wald],
        "product": str(report.out_path), "product_bands": list(report.band_names),
        "product_report": [asdict(m) for m in report.models], "seconds": time.perf_counter() - t0,
    }


def format_row(result: Mapping[str, Any]) -> str:
    """One markdown row of :data:`TABLE_HEADER` for an :func:`evaluate` result."""
    ckpts = " + ".join(Path(c).name if not c.startswith("<") else c for c in result.get("ckpts", []))
    shift = f"shift seed {result.get('seed')}" if result.get("shift") else "no shift"
    proj = result.get("projection")
    label = f"{ckpts}, {shift}, projection {'default' if proj is None else str(proj).lower()}, x{result['ratio']} Wald"
    return (f"| {label} | {result['rmse']:.2f} | {result['rmse_bicubic']:.2f} | {100 * result['gain_vs_bicubic']:.1f} % "
            f"| {result['consistency']:.3f} |")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m aerogan.transfer --ckpt T2.ckpt [--ckpt S6.ckpt] --work DIR [--no-shift] [--projection true|false] SOURCES...``"""
    p = argparse.ArgumentParser(prog="python -m aerogan.transfer", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--ckpt", action="append", required=True, help="a guided model's checkpoint (repeat for T2 and S6)")
    p.add_argument("--work", required=True, help="folder for the region, Wald level, product and transfer.json")
    p.add_argument("--no-shift", action="store_true", help="keep the region's radiometry (no per-band gain/offset)")
    add_projection_argument(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the per-band shift")
    p.add_argument("--ratio", type=int, default=2, help="Wald ratio (2: T2 bands scored at 20 m)")
    p.add_argument("--device", default=None, help="torch device of the models (default: cpu)")
    p.add_argument("sources", nargs="+", help="group rasters (one per resolution, bands named by description)")
    args = p.parse_args(argv)
    result = evaluate(args.ckpt, args.sources, args.work, seed=args.seed, shift=not args.no_shift, projection=args.projection,
                      ratio=args.ratio, device=args.device)
    with atomic_output(Path(args.work) / "transfer.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(format_row(result))
    return result


if __name__ == "__main__":
    main()
