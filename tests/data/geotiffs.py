"""Seeded generators of tiny GeoTIFFs and arrays for the scene datamodule and prediction tests.

Nothing is committed: tests call these into ``tmp_path``. Scenes are smooth multi-scale fields (so
super-resolution has something to learn) with a real CRS, affine transform, nodata, band descriptions.

    python tests/data/geotiffs.py OUT_DIR   # writes the files used by the tests, for a look in QGIS
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def smooth_scene(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(count, height, width) float32 reflectance-like values in about [0.02, 0.6]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((count, height, width), dtype=np.float32)
    for b in range(count):
        field = np.zeros((height, width))
        for _ in range(6):
            fy, fx = rng.uniform(0.02, 0.25, 2)
            ph = rng.uniform(0, 2 * np.pi, 2)
            field += rng.uniform(0.3, 1.0) * np.sin(fy * yy + ph[0]) * np.cos(fx * xx + ph[1])
        field = (field - field.min()) / max(np.ptp(field), 1e-9)
        out[b] = 0.05 + 0.5 * field + 0.01 * rng.standard_normal((height, width))
    return np.clip(out, 0.02, 0.6).astype(np.float32)


def write_geotiff(
    path: str | Path,
    data: np.ndarray | None = None,
    *,
    count: int = 3,
    height: int = 96,
    width: int = 112,
    dtype: str = "float32",
    nodata: float | None = None,
    crs: str | None = "EPSG:32633",
    res: float = 10.0,
    origin: tuple[float, float] = (500000.0, 5000000.0),
    transform: object | None = None,
    descriptions: Sequence[str] | None = None,
    border: int = 0,
    holes: Sequence[tuple[int, int, int, int]] = (),
    nan_pixels: Sequence[tuple[int, int]] = (),
    seed: int = 0,
) -> Path:
    """Write a GeoTIFF; ``border`` px of nodata around the edge, ``holes`` (r0, c0, r1, c1) of nodata,
    ``nan_pixels`` set to NaN in every band (float dtypes). Integer dtypes get values scaled to 1..250."""
    import rasterio
    from affine import Affine

    path = Path(path)
    if data is None:
        data = smooth_scene(count, height, width, seed)
    data = np.array(data, dtype=np.float64)
    count, height, width = data.shape
    if np.issubdtype(np.dtype(dtype), np.integer):
        data = np.clip(np.rint(data * 400 + 1), 1, 250)
    if nodata is not None:
        if border:
            data[:, :border] = nodata
            data[:, -border:] = nodata
            data[:, :, :border] = nodata
            data[:, :, -border:] = nodata
        for r0, c0, r1, c1 in holes:
            data[:, r0:r1, c0:c1] = nodata
    for r, c in nan_pixels:
        data[:, r, c] = np.nan
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype, "nodata": nodata,
        "crs": crs, "transform": transform if transform is not None else Affine(res, 0.0, origin[0], 0.0, -res, origin[1]),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype))
        for i, name in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, name)
    return path


def block_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """(C, H, W) -> (C, H/f, W/f) mean of f x f blocks."""
    c, h, w = data.shape
    return data.reshape(c, h // factor, factor, w // factor, factor).mean((2, 4)).astype(np.float32)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_geotiffs")
    out.mkdir(parents=True, exist_ok=True)
    hr = smooth_scene(4, 64, 80, seed=1)
    write_geotiff(out / "hr.tif", hr, nodata=-1.0, border=3, descriptions=["green", "red", "nir", "swir"])
    write_geotiff(out / "lr.tif", block_mean(hr, 2), res=20.0, descriptions=["green", "red", "nir", "swir"])
    write_geotiff(out / "byte.tif", dtype="uint8", nodata=0, border=4, crs="EPSG:32618", res=300.0)
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")
