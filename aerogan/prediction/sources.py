"""Readers of scene pixels: GeoTIFF (rasterio, windowed) and NumPy arrays (memory-mapped), nodata masks.

A *source* is one scene: ``count`` bands of ``height x width`` pixels that can be read window by
window as float32 ``(C, h, w)``. Readers never load a whole scene unless asked to (``in_memory``),
and reopen their file lazily in each process (DataLoader workers, DDP ranks), so they pickle cheaply.
Training (the scene datamodules) and prediction read scenes through the same sources.

Validity (GDAL semantics): a pixel is nodata when *all* read bands equal the nodata value, or when
the file's internal mask says so; NaN and infinite values are always invalid, whatever the nodata.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

Layout = Literal["channels_last", "channels_first"]


def invalid_mask(data: np.ndarray, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(invalid, nonfinite)`` boolean (h, w) masks of a (C, h, w) block.

    ``invalid``: nodata in every band, or a NaN/inf in any band; ``nonfinite``: pixels invalid only
    because of NaN/inf (counted for the warning about scattered NaN).
    """
    nonfinite = ~np.isfinite(data).all(0)
    if nodata is None:
        return nonfinite, nonfinite
    if np.isnan(nodata):  # NaN is the declared nodata: nothing to warn about
        return nonfinite, np.zeros_like(nonfinite)
    nd = (data == np.float32(nodata)).all(0)
    return nd | nonfinite, nonfinite & ~nd


# ---------------------------------------------------------------------------------------------- sources
class SceneSource:
    """One scene readable by windows. Subclasses set the attributes and implement :meth:`_read`."""

    path: Path | None
    name: str
    count: int
    height: int
    width: int
    dtype: str
    nodata: float | None
    descriptions: list[str | None]

    def _read(self, row0: int, col0: int, height: int, width: int, bands: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def _extra_invalid(self, row0: int, col0: int, height: int, width: int) -> np.ndarray | None:
        """Invalid pixels from an internal mask, if the source has one."""
        return None

    def read(self, row0: int, col0: int, height: int, width: int, bands: Sequence[int] | None = None) -> np.ndarray:
        """Float32 ``(len(bands), height, width)`` block; ``bands`` are 0-based (default: all)."""
        bands = list(range(self.count)) if bands is None else list(bands)
        if row0 < 0 or col0 < 0 or row0 + height > self.height or col0 + width > self.width:
            raise ValueError(
                f"{self.name}: window rows {row0}..{row0 + height}, cols {col0}..{col0 + width} lies outside "
                f"the scene ({self.height}x{self.width})"
            )
        return self._read(row0, col0, height, width, bands)

    def invalid(self, data: np.ndarray, row0: int, col0: int) -> tuple[np.ndarray, np.ndarray]:
        """``(invalid, nonfinite)`` masks of a block read at ``(row0, col0)``."""
        inv, nonfinite = invalid_mask(data, self.nodata)
        extra = self._extra_invalid(row0, col0, data.shape[1], data.shape[2])
        if extra is not None:
            inv = inv | extra
        return inv, nonfinite

    def strips(self, bands: Sequence[int] | None = None, rows: int | None = None, multiple: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """Full-width blocks ``(row0, data)`` from top to bottom, about 4 MB each, ``rows`` a multiple of ``multiple``."""
        nb = self.count if bands is None else len(bands)
        if rows is None:
            rows = max(1, (1 << 20) // max(1, self.width * nb))
        rows = max(multiple, rows // multiple * multiple)
        for r in range(0, self.height, rows):
            h = min(rows, self.height - r)
            yield r, self.read(r, 0, h, self.width, bands)

    def stats_key(self) -> str:
        """What the statistics depend on besides the file itself."""
        return f"nodata={self.nodata!r}"

    @property
    def has_descriptions(self) -> bool:
        return all(d for d in self.descriptions)


class RasterSource(SceneSource):
    """A GeoTIFF (any GDAL raster) read with rasterio windows.

    Args:
        path: the raster file.
        nodata: nodata value overriding the file's (``None``: the file's own, if any).
        in_memory: read the whole raster once and serve windows from memory (``None``: when it takes
            less than ``max_memory_mb`` as float32).
    """

    def __init__(self, path: str | os.PathLike, nodata: float | None = None, in_memory: bool | None = None, max_memory_mb: float = 256.0) -> None:
        import rasterio
        from rasterio.enums import MaskFlags
        from rasterio.errors import RasterioIOError

        self.path = Path(path)
        self.name = str(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path}: is a folder, expected a raster file")
        try:
            with rasterio.open(self.path) as ds:
                self.count, self.height, self.width = ds.count, ds.height, ds.width
                self.dtype = ds.dtypes[0]
                self.crs = ds.crs
                self.transform = ds.transform
                self.bounds = ds.bounds
                self.res = ds.res
                self.descriptions = list(ds.descriptions)
                self.file_nodata = ds.nodata
                flags = ds.mask_flag_enums[0] if ds.count else []
                self._internal_mask = (
                    ds.nodata is None and MaskFlags.per_dataset in flags and MaskFlags.all_valid not in flags
                    and MaskFlags.alpha not in flags
                )
        except RasterioIOError as err:
            raise ValueError(f"{self.path}: not a readable raster (corrupt or not a GeoTIFF): {err}") from err
        if self.count < 1:
            raise ValueError(f"{self.path}: the raster has no bands")
        self.nodata = float(nodata) if nodata is not None else (float(self.file_nodata) if self.file_nodata is not None else None)
        size_mb = self.count * self.height * self.width * 4 / 2**20
        self.in_memory = size_mb <= max_memory_mb if in_memory is None else bool(in_memory)
        self._ds: Any = None
        self._pid: int | None = None
        self._cache: np.ndarray | None = None
        self._cache_mask: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ds"] = None
        state["_pid"] = None
        state["_cache"] = None
        state["_cache_mask"] = None
        return state

    def _dataset(self) -> Any:
        import rasterio
        from rasterio.errors import RasterioIOError

        if self._ds is None or self._pid != os.getpid():
            try:
                self._ds = rasterio.open(self.path)
            except RasterioIOError as err:
                raise ValueError(f"{self.path}: not a readable raster: {err}") from err
            self._pid = os.getpid()
        return self._ds

    def close(self) -> None:
        if self._ds is not None and self._pid == os.getpid():
            self._ds.close()
        self._ds = None

    def _read_window(self, row0: int, col0: int, height: int, width: int, bands: Sequence[int]) -> np.ndarray:
        from rasterio.errors import RasterioIOError
        from rasterio.windows import Window

        try:
            return self._dataset().read([b + 1 for b in bands], window=Window(col0, row0, width, height), out_dtype="float32")
        except RasterioIOError as err:
            raise ValueError(f"{self.path}: failed to read rows {row0}..{row0 + height}, cols {col0}..{col0 + width}: {err}") from err

    def _read(self, row0: int, col0: int, height: int, width: int, bands: Sequence[int]) -> np.ndarray:
        if self.in_memory:
            if self._cache is None:
                self._cache = self._read_window(0, 0, self.height, self.width, range(self.count))
            return self._cache[list(bands), row0 : row0 + height, col0 : col0 + width]
        return self._read_window(row0, col0, height, width, bands)

    def _extra_invalid(self, row0: int, col0: int, height: int, width: int) -> np.ndarray | None:
        if not self._internal_mask:
            return None
        from rasterio.windows import Window

        if self.in_memory:
            if self._cache_mask is None:
                self._cache_mask = self._dataset().dataset_mask() == 0
            return self._cache_mask[row0 : row0 + height, col0 : col0 + width]
        return self._dataset().dataset_mask(window=Window(col0, row0, width, height)) == 0

    def read_bounds(self, bounds: tuple[float, float, float, float], out_size: tuple[int, int], bands: Sequence[int], resampling: str = "bilinear") -> np.ndarray:
        """Read the area ``(left, bottom, right, top)`` resampled to ``out_size`` (rows, cols) pixels."""
        from rasterio.enums import Resampling
        from rasterio.errors import RasterioIOError
        from rasterio.windows import from_bounds

        window = from_bounds(*bounds, transform=self.transform)
        try:
            return self._dataset().read(
                [b + 1 for b in bands], window=window, out_shape=(len(bands), *out_size),
                resampling=Resampling[resampling], out_dtype="float32",
            )
        except RasterioIOError as err:
            raise ValueError(f"{self.path}: failed to read the window {window}: {err}") from err


class ArraySource(SceneSource):
    """One scene of a NumPy array (in memory or a memory-mapped ``.npy``).

    Args:
        array: the array, (H, W), or with bands (and scenes) as given by ``layout``.
        scene: index of the scene when the array is 4-D (N, ...).
        layout: where the band axis is (``channels_last``: (..., H, W, C); ``channels_first``: (..., C, H, W)).
        nodata: value marking missing pixels (NaN is always missing).
        bin_factor: average ``bin_factor x bin_factor`` blocks on read (bands delivered on a grid finer than
            their native resolution, e.g. Sentinel-2 20 m bands resampled to 10 m); a block with any
            invalid pixel is invalid.
        bin_origin: (row, col) where the first whole block starts.
        path: the file the array came from (statistics cache and messages).
        band_names: one name per band.
    """

    def __init__(
        self,
        array: np.ndarray,
        scene: int | None,
        layout: Layout,
        nodata: float | None = None,
        bin_factor: int = 1,
        bin_origin: Sequence[int] = (0, 0),
        path: str | os.PathLike | None = None,
        band_names: Sequence[str] | None = None,
    ) -> None:
        self.array = array
        self.scene = scene
        self.layout = layout
        self.path = Path(path) if path is not None else None
        self.name = (str(path) if path is not None else "array") + (f"[scene {scene}]" if scene is not None else "")
        if array.ndim == 2:
            raw_h, raw_w, self.count = array.shape[0], array.shape[1], 1
        else:
            shape = array.shape[1:] if scene is not None else array.shape
            raw_h, raw_w, self.count = (shape[0], shape[1], shape[2]) if layout == "channels_last" else (shape[1], shape[2], shape[0])
        self.bin_factor = int(bin_factor)
        self.bin_origin = (int(bin_origin[0]), int(bin_origin[1]))
        if self.bin_factor < 1:
            raise ValueError(f"data.bin_factor={bin_factor} must be >= 1")
        if len(bin_origin) != 2 or not (0 <= self.bin_origin[0] < raw_h and 0 <= self.bin_origin[1] < raw_w):
            raise ValueError(f"data.bin_origin={list(bin_origin)} must be (row, col) inside the {raw_h}x{raw_w} scene")
        self.height = (raw_h - self.bin_origin[0]) // self.bin_factor
        self.width = (raw_w - self.bin_origin[1]) // self.bin_factor
        self.dtype = str(array.dtype)
        self.nodata = float(nodata) if nodata is not None else None
        self.descriptions = list(band_names) if band_names is not None else [None] * self.count

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.array, np.memmap) and self.path is not None:
            state["array"] = None  # reopened lazily in the worker instead of being copied
        return state

    def _array(self) -> np.ndarray:
        if self.array is None:
            self.array = np.load(self.path, mmap_mode="r")
        return self.array

    def _raw(self, r0: int, c0: int, h: int, w: int, bands: Sequence[int]) -> np.ndarray:
        a = self._array()
        if a.ndim == 2:
            block = a[r0 : r0 + h, c0 : c0 + w][None]
            return np.asarray(block, dtype=np.float32)[[0 for _ in bands]]
        if self.scene is not None:
            a = a[self.scene]
        if self.layout == "channels_last":
            block = np.asarray(a[r0 : r0 + h, c0 : c0 + w])
            block = block[:, :, list(bands)].transpose(2, 0, 1)
        else:
            block = np.asarray(a[:, r0 : r0 + h, c0 : c0 + w])[list(bands)]
        return np.ascontiguousarray(block, dtype=np.float32)

    def _read(self, row0: int, col0: int, height: int, width: int, bands: Sequence[int]) -> np.ndarray:
        f = self.bin_factor
        r, c = self.bin_origin[0] + row0 * f, self.bin_origin[1] + col0 * f
        raw = self._raw(r, c, height * f, width * f, bands)
        if f == 1:
            return raw
        inv, _ = invalid_mask(raw, self.nodata)
        nb = raw.shape[0]
        out = raw.reshape(nb, height, f, width, f).mean((2, 4), dtype=np.float64).astype(np.float32)
        bad = inv.reshape(height, f, width, f).any((1, 3))
        if bad.any():  # any invalid raw pixel makes the block invalid
            out[:, bad] = np.float32(self.nodata) if self.nodata is not None else np.nan
        return out

    def stats_key(self) -> str:
        return f"scene={self.scene};layout={self.layout};bin={self.bin_factor}@{self.bin_origin};nodata={self.nodata!r}"


def resolve_band_names(bands: Sequence[int | str], descriptions: Sequence[str | None], label: str, name: str) -> list[int]:
    """Map band names (a file's band descriptions, exact or case-insensitive) to 0-based indices; ints pass through.

    ``label`` is the parameter named in errors (``input_bands``), ``name`` the file.
    """
    out: list[int] = []
    for b in bands:
        if isinstance(b, bool):
            raise ValueError(f"data.{label}: {b!r} is not a band index or name")
        if isinstance(b, int):
            out.append(b)
            continue
        if isinstance(b, str) and b.strip().lstrip("-").isdigit():
            out.append(int(b))
            continue
        matches = [i for i, d in enumerate(descriptions) if d == b] or [
            i for i, d in enumerate(descriptions) if d is not None and d.lower() == str(b).lower()
        ]
        if not matches:
            available = [d for d in descriptions if d]
            hint = f"available band descriptions: {available}" if available else "the file has no band descriptions; use 0-based band indices"
            raise ValueError(f"{name}: data.{label} names band {b!r}, which the file does not have ({hint})")
        out.append(matches[0])
    return out
