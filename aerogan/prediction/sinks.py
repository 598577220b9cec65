"""Destinations of finished output rows: GeoTIFF and ``.npy`` files, memory, per-rank parts; output encoding.

Every file is written through :func:`aerogan.atomic.atomic_output`: rows go to a hidden temporary file
in the destination folder, renamed to the final name on :meth:`Sink.commit`; :meth:`Sink.abort`
removes it. Writing is window by window, so memory is bounded by what the caller hands over.

Output encoding (documented choice): ``float32`` (default) keeps the network's values; its nodata is
the input's nodata value, or NaN when the input has none. ``output_dtype="input"`` rounds and clips to
the input's dtype; integer outputs without an input nodata use the dtype's minimum as nodata. Valid
pixels that would equal the nodata value are nudged to the next representable value, so nodata
marks exactly the pixels whose input was nodata (nearest-upsampled by the scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from aerogan.atomic import atomic_output
from aerogan.prediction.plan import OutputSpec, PredictionPlan

#: Rows of a GeoTIFF output block (outputs are tiled 256 x 256 and written in whole block rows).
BLOCK_ROWS = 256


# ---------------------------------------------------------------------------------------------- encoding
def output_encoding(spec: OutputSpec, output_dtype: str) -> tuple[np.dtype, float | None]:
    """(dtype, nodata) of the output file for an input described by ``spec``."""
    dtype = np.dtype("float32") if output_dtype == "float32" else np.dtype(spec.input_dtype)
    if np.issubdtype(dtype, np.floating):
        if spec.format == "npy":
            return dtype, float("nan")
        return dtype, spec.input_nodata if spec.input_nodata is not None else float("nan")
    nodata = spec.input_nodata if spec.input_nodata is not None else float(np.iinfo(dtype).min)
    return dtype, nodata


def encode(data: np.ndarray, valid: np.ndarray, dtype: np.dtype, nodata: float | None) -> np.ndarray:
    """Convert float predictions (C, h, w) to ``dtype``; invalid pixels get ``nodata``, valid ones never do."""
    if np.issubdtype(dtype, np.floating):
        out = data.astype(dtype, copy=False)  # finished rows are handed over: reuse them when the dtype matches
        if not out.flags.writeable:
            out = out.copy()
        if nodata is not None and not np.isnan(nodata):
            nd = dtype.type(nodata)
            out[(out == nd) & valid[None]] = np.nextafter(nd, dtype.type(np.inf))
    else:
        info = np.iinfo(dtype)
        out = np.clip(np.rint(np.nan_to_num(data, nan=0.0)), info.min, info.max).astype(dtype)
        if nodata is not None:
            nd = dtype.type(nodata)
            bump = nd + 1 if nd < info.max else nd - 1
            out[(out == nd) & valid[None]] = bump
    if nodata is not None:
        out[:, ~valid] = nodata
    return out


def gdal_cache(plan: PredictionPlan) -> AbstractContextManager[Any]:
    """``rasterio.Env`` capping GDAL's block cache at what one strip of ``plan`` touches, for a whole run.

    GDAL keeps read and written blocks in a cache of about 5% of RAM by default, so a whole output
    (and input) would pile up in memory before being flushed; the cap (one input strip plus one
    output block row of the widest scene, at most float32) keeps memory bounded by the strips.
    """
    import rasterio

    need = 0
    for scene, grid in zip(plan.scenes, plan.grids, strict=True):
        bands = len(scene.bands)
        strip = grid.tile_h * grid.width * bands * 4
        block_row = BLOCK_ROWS * grid.width * plan.scale * bands * 4
        need = max(need, strip + block_row)
    return rasterio.Env(GDAL_CACHEMAX=max(need, 2**20))  # bytes (rasterio passes integers to GDAL as bytes)


class _AtomicFile:
    """A temporary file that becomes ``final`` on :meth:`publish`, or disappears on :meth:`discard` (before)."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.published = False
        self._cm = atomic_output(final)
        self.tmp = self._cm.__enter__()

    def publish(self) -> Path:
        self._cm.__exit__(None, None, None)
        self.published = True
        return self.final

    def discard(self) -> None:
        if self.published:
            return
        self.published = True  # the context is finished either way
        err = RuntimeError("prediction aborted")
        self._cm.__exit__(type(err), err, None)  # removes the temporary file; returns False, raises nothing


# ---------------------------------------------------------------------------------------------- sinks
class Sink:
    """Destination of finished rows. ``write(index, row0, data (C, h, w), valid (h, w), col0)`` in output pixels:
    rows ``row0..`` of columns ``col0..col0 + w`` (a block column; the whole width by default)."""

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray, col0: int = 0) -> None:
        raise NotImplementedError

    def commit(self) -> Path | None:
        """Publish the output (the final file appears complete); returns its path."""
        return None

    def abort(self) -> None:
        """Drop everything written so far (no file is left behind)."""


class GeoTiffSink(Sink):
    """A GeoTIFF (deflate, tiled 256 x 256) written in whole block rows, so each compressed tile is written once.

    The output has the input's CRS and bounds with the pixel size divided by ``scale``, and the band
    names as band descriptions. Run it inside :func:`gdal_cache` to keep GDAL's cache bounded.
    """

    def __init__(self, spec: OutputSpec, scale: int, channels: int, band_names: Sequence[str] | None, output_dtype: str,
                 block_width: int = BLOCK_ROWS) -> None:
        import rasterio
        from rasterio.transform import Affine

        self.dtype, self.nodata = output_encoding(spec, output_dtype)
        height, width = spec.height * scale, spec.width * scale
        transform = spec.transform if spec.transform is not None else Affine.identity()
        profile = {
            "driver": "GTiff", "width": width, "height": height, "count": channels, "dtype": self.dtype.name,
            "crs": spec.crs, "transform": transform @ Affine.scale(1.0 / scale), "nodata": self.nodata,
            "compress": "deflate", "predictor": 3 if np.issubdtype(self.dtype, np.floating) else 2, "BIGTIFF": "IF_SAFER",
        }
        if width >= block_width and height >= BLOCK_ROWS:  # tiles BLOCK_ROWS high, ``block_width`` (a multiple of 16) wide
            profile.update(tiled=True, blockxsize=block_width, blockysize=BLOCK_ROWS)
        self._buf: np.ndarray | None = None
        self._buf_row0 = 0
        self._col0 = 0
        self.file = _AtomicFile(Path(spec.path))
        try:
            self.ds = rasterio.open(self.file.tmp, "w", **profile)
        except BaseException:
            self.file.discard()
            raise
        try:
            names = list(band_names) if band_names is not None and len(band_names) == channels else [f"B{i + 1}" for i in range(channels)]
            for i, name in enumerate(names, start=1):
                self.ds.set_band_description(i, str(name))
            self.ds.update_tags(aerogan_scale=str(scale), aerogan_source=str(spec.source_name))
        except BaseException:
            self.abort()
            raise

    def _put(self, row0: int, block: np.ndarray) -> None:
        from rasterio.windows import Window

        self.ds.write(block, window=Window(self._col0, row0, block.shape[2], block.shape[1]))

    def _flush(self) -> None:
        if self._buf is not None and self._buf.shape[1]:
            self._put(self._buf_row0, self._buf)
        self._buf = None

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray, col0: int = 0) -> None:
        """Rows ``row0..`` of output columns ``col0..`` (whole width by default). Keep ``col0`` and the width on
        the 256-px tile grid (a block column), and each column's rows in order, so each tile is written once."""
        out = encode(data, valid, self.dtype, self.nodata)
        if self._buf is not None and col0 == self._col0 and out.shape[2] == self._buf.shape[2] and row0 == self._buf_row0 + self._buf.shape[1]:
            self._buf = np.concatenate([self._buf, out], 1)
        else:
            self._flush()
            # ``out`` may be a view of the assembler's strip buffer, which the next strip reuses
            self._buf, self._buf_row0, self._col0 = (out if out.base is None else out.copy()), row0, col0
        end = self._buf_row0 + self._buf.shape[1]
        cut = end // BLOCK_ROWS * BLOCK_ROWS
        if cut > self._buf_row0:  # whole block rows are ready: write them, keep the rest
            k = cut - self._buf_row0
            self._put(self._buf_row0, self._buf[:, :k])
            self._buf, self._buf_row0 = self._buf[:, k:].copy(), cut

    def commit(self) -> Path:
        try:
            self._flush()
            self.ds.close()
        except BaseException:
            self.abort()
            raise
        return self.file.publish()

    def abort(self) -> None:
        self._buf = None
        try:
            if not self.ds.closed:
                self.ds.close()
        except Exception:  # noqa: BLE001 - best effort: the file is removed anyway
            pass
        self.file.discard()


class _NpyFile:
    """A ``.npy`` file written by seeks and plain writes (no memory map: memory stays bounded).

    ``shape`` is ([N,] H, W, C) for ``channels_last`` or ([N,] C, H, W) for ``channels_first``.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, layout: str, stacked: bool) -> None:
        self.path, self.shape, self.dtype, self.layout, self.stacked = path, shape, np.dtype(dtype), layout, stacked
        self.fh = open(path, "wb+")  # noqa: SIM115 - closed in close()
        try:
            np.lib.format.write_array_header_1_0(self.fh, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                          "fortran_order": False, "shape": shape})
            self.base = self.fh.tell()
            self.fh.truncate(self.base + int(np.prod(shape)) * self.dtype.itemsize)
        except BaseException:
            self.fh.close()
            raise
        scene = shape[1:] if stacked else shape
        if layout == "channels_last":
            self.h, self.w, self.c = scene
        else:
            self.c, self.h, self.w = scene

    def write_rows(self, index: int, row0: int, out: np.ndarray, col0: int = 0) -> None:
        """Rows ``row0..`` of scene ``index`` from ``out`` (C, h, w), at columns ``col0..col0 + w``."""
        item = self.dtype.itemsize
        out = out.astype(self.dtype, copy=False)
        if col0 or out.shape[2] != self.w:  # a block column: row segments
            for r in range(out.shape[1]):
                if self.layout == "channels_last":
                    self.fh.seek(self.base + (((index * self.h + row0 + r) * self.w + col0) * self.c) * item)
                    self.fh.write(np.ascontiguousarray(out[:, r].T).tobytes())
                else:
                    for c in range(out.shape[0]):
                        self.fh.seek(self.base + ((((index * self.c + c) * self.h + row0 + r) * self.w) + col0) * item)
                        self.fh.write(np.ascontiguousarray(out[c, r]).tobytes())
        elif self.layout == "channels_last":
            self.fh.seek(self.base + ((index * self.h + row0) * self.w * self.c) * item)
            self.fh.write(np.ascontiguousarray(out.transpose(1, 2, 0)).tobytes())
        else:
            for c in range(out.shape[0]):
                self.fh.seek(self.base + (((index * self.c + c) * self.h + row0) * self.w) * item)
                self.fh.write(np.ascontiguousarray(out[c]).tobytes())

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()


class NpySink(Sink):
    """A ``.npy`` in the input's layout (scenes stacked as in the input)."""

    def __init__(self, spec: OutputSpec, scale: int, channels: int, output_dtype: str) -> None:
        self.dtype, self.nodata = output_encoding(spec, output_dtype)
        h, w = spec.height * scale, spec.width * scale
        scene_shape = (h, w, channels) if spec.layout == "channels_last" else (channels, h, w)
        shape = (spec.num_scenes, *scene_shape) if spec.stacked else scene_shape
        self.target = _AtomicFile(Path(spec.path))
        try:
            self.file = _NpyFile(self.target.tmp, shape, self.dtype, spec.layout, spec.stacked)
        except BaseException:
            self.target.discard()
            raise

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray, col0: int = 0) -> None:
        self.file.write_rows(index, row0, encode(data, valid, self.dtype, self.nodata), col0)

    def commit(self) -> Path:
        self.file.close()
        return self.target.publish()

    def abort(self) -> None:
        self.file.close()
        self.target.discard()


class MemorySink(Sink):
    """Rows collected into one in-memory float32 array (C, H, W), NaN where the input was invalid."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        self.array = np.full((channels, height, width), np.nan, dtype=np.float32)

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray, col0: int = 0) -> None:
        out = data.astype(np.float32, copy=True)
        out[:, ~valid] = np.nan
        self.array[:, row0 : row0 + out.shape[1], col0 : col0 + out.shape[2]] = out


class PartSink(Sink):
    """One rank's finished rows ``[row0, row1)`` of one scene, float32 (C, rows, W) with NaN for invalid pixels.

    The part appears under its name (:func:`part_path`) only once complete, so rank zero never reads a
    partial part.
    """

    def __init__(self, path: Path, channels: int, row0: int, row1: int, width: int) -> None:
        self.row0 = row0
        self.target = _AtomicFile(path)
        try:
            self.file = _NpyFile(self.target.tmp, (channels, row1 - row0, width), np.dtype("float32"), "channels_first", False)
        except BaseException:
            self.target.discard()
            raise

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray, col0: int = 0) -> None:
        out = data.astype(np.float32, copy=True)  # a part holds its own columns: ``col0`` is where they go later
        out[:, ~valid] = np.nan
        self.file.write_rows(0, row0 - self.row0, out)

    def commit(self) -> Path:
        self.file.close()
        return self.target.publish()

    def abort(self) -> None:
        self.file.close()
        if self.target.published:  # a part is an intermediate file: an aborted rank leaves none
            self.target.final.unlink(missing_ok=True)
        self.target.discard()


def output_sink(spec: OutputSpec, scale: int, channels: int, band_names: Sequence[str] | None, output_dtype: str) -> Sink:
    """The sink of one output file: a :class:`GeoTiffSink` or an :class:`NpySink` by ``spec.format``."""
    if spec.format == "GTiff":
        return GeoTiffSink(spec, scale, channels, band_names, output_dtype)
    return NpySink(spec, scale, channels, output_dtype)


def part_path(spec: OutputSpec, scene: int, rank: int, world: int) -> Path:
    """Deterministic name of a rank's part file, so rank zero can find every rank's parts."""
    return Path(spec.path).with_name(f".{Path(spec.path).name}.scene{scene}.rank{rank}of{world}.part.npy")
