"""Writing whole-scene predictions: tile blending, strip-wise output, atomic files, several ranks.

The datamodule (:class:`datamodules.scenes.SceneDataModule`) cuts each scene into overlapping tiles
grouped by strips (rows of tiles) and hands every rank a contiguous run of strips (plus the one or two
strips before its run that overlap it, computed but not written). :class:`ScenePredictionWriter`
receives the predicted tiles batch by batch, blends them into a strip buffer (weights from
:func:`datamodules.windows.blend_weights`: ``sum(w * tile) / sum(w)``), and writes each strip's
finished rows as soon as no later strip can reach them. Memory: one strip (tile rows x scene width),
whatever the scene height.

Files appear atomically: everything is written to a hidden temporary file in the destination folder,
then ``os.replace``-d to the final name; on any error the temporary files are removed. With several
ranks, each rank writes its finished rows to a temporary ``.npy`` part; after a barrier on every rank,
rank zero copies the parts into the output (file operations only, no collectives), then a final
barrier.

Output encoding (documented choice): ``float32`` (default) keeps the network's values; its nodata is
the input's nodata value, or NaN when the input has none. ``output_dtype="input"`` rounds and clips to
the input's dtype; integer outputs without an input nodata use the dtype's minimum as nodata. Valid
pixels that would equal the nodata value are nudged to the next representable value, so nodata
marks exactly the pixels whose input was nodata (nearest-upsampled by the scale).
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from datamodules.scenes import OutputSpec, PredictionPlan
from datamodules.windows import TileGrid


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


def _tmp_name(final: Path, tag: str = "") -> Path:
    return final.with_name(f".{final.name}.{tag or uuid.uuid4().hex[:8]}.tmp")


# ---------------------------------------------------------------------------------------------- sinks
class Sink:
    """Destination of finished rows. ``write(index, row0, data (C, h, W), valid (h, W))`` in output pixels."""

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        raise NotImplementedError

    def commit(self) -> Path | None:
        return None

    def abort(self) -> None:
        pass


class _GdalCache:
    """Caps GDAL's block cache while outputs are open (refcounted; the previous value is restored).

    GDAL keeps written blocks in a write-back cache of about 5% of RAM by default, so a whole output
    would pile up in memory before being flushed at close; a cap keeps memory bounded by the strips.
    """

    count = 0
    saved: object = None

    @classmethod
    def acquire(cls, megabytes: int) -> None:
        from rasterio.env import get_gdal_config, set_gdal_config

        if cls.count == 0:
            saved = get_gdal_config("GDAL_CACHEMAX")
            try:  # GDAL reads values below 100000 as megabytes, larger ones as bytes
                current = int(saved) * (2**20 if int(saved) < 100_000 else 1)
            except (TypeError, ValueError):
                current = None
            if current is None or current > megabytes * 2**20:
                cls.saved = saved
                set_gdal_config("GDAL_CACHEMAX", int(megabytes))
        cls.count += 1

    @classmethod
    def release(cls) -> None:
        from rasterio.env import set_gdal_config

        cls.count = max(cls.count - 1, 0)
        if cls.count == 0 and cls.saved is not None:
            set_gdal_config("GDAL_CACHEMAX", cls.saved)
            cls.saved = None


class GeoTiffSink(Sink):
    """A GeoTIFF written window by window into a hidden temporary file, renamed on commit.

    Rows are written in whole block rows (256 output rows, tiled, deflate), so each compressed tile is
    written once; GDAL's cache is capped meanwhile (see :class:`_GdalCache`).
    """

    def __init__(self, spec: OutputSpec, scale: int, channels: int, band_names: Sequence[str] | None, output_dtype: str) -> None:
        import rasterio
        from rasterio.transform import Affine

        self.final = Path(spec.path)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _tmp_name(self.final)
        self.dtype, self.nodata = output_encoding(spec, output_dtype)
        height, width = spec.height * scale, spec.width * scale
        transform = spec.transform if spec.transform is not None else Affine.identity()
        profile = {
            "driver": "GTiff", "width": width, "height": height, "count": channels, "dtype": self.dtype.name,
            "crs": spec.crs, "transform": transform @ Affine.scale(1.0 / scale), "nodata": self.nodata,
            "compress": "deflate", "predictor": 3 if np.issubdtype(self.dtype, np.floating) else 2, "BIGTIFF": "IF_SAFER",
        }
        if width >= 256 and height >= 256:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
        self.block_rows = 256
        self._buf: np.ndarray | None = None
        self._buf_row0 = 0
        block_row_mb = self.block_rows * width * channels * self.dtype.itemsize / 2**20
        _GdalCache.acquire(max(64, int(3 * block_row_mb) + 16))
        self._cache_held = True
        try:
            self.ds = rasterio.open(self.tmp, "w", **profile)
        except BaseException:
            self._release()
            raise
        try:
            names = list(band_names) if band_names is not None and len(band_names) == channels else [f"B{i + 1}" for i in range(channels)]
            for i, name in enumerate(names, start=1):
                self.ds.set_band_description(i, str(name))
            self.ds.update_tags(aerogan_scale=str(scale), aerogan_source=str(spec.source_name))
        except BaseException:
            self.abort()
            raise

    def _release(self) -> None:
        if self._cache_held:
            self._cache_held = False
            _GdalCache.release()

    def _put(self, row0: int, block: np.ndarray) -> None:
        from rasterio.windows import Window

        self.ds.write(block, window=Window(0, row0, block.shape[2], block.shape[1]))

    def _flush(self) -> None:
        if self._buf is not None and self._buf.shape[1]:
            self._put(self._buf_row0, self._buf)
        self._buf = None

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        out = encode(data, valid, self.dtype, self.nodata)
        if self._buf is not None and row0 == self._buf_row0 + self._buf.shape[1]:
            self._buf = np.concatenate([self._buf, out], 1)
        else:
            self._flush()
            # ``out`` may be a view of the assembler's strip buffer, which the next strip reuses
            self._buf, self._buf_row0 = (out if out.base is None else out.copy()), row0
        end = self._buf_row0 + self._buf.shape[1]
        cut = end // self.block_rows * self.block_rows
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
        self._release()
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        self._buf = None
        try:
            if not self.ds.closed:
                self.ds.close()
        except Exception:  # noqa: BLE001 - best effort: the file is removed anyway
            pass
        self._release()
        self.tmp.unlink(missing_ok=True)


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

    def write_rows(self, index: int, row0: int, out: np.ndarray) -> None:
        """Rows ``row0..`` of scene ``index`` from ``out`` (C, h, W)."""
        item = self.dtype.itemsize
        out = out.astype(self.dtype, copy=False)
        if self.layout == "channels_last":
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
    """A ``.npy`` in the input's layout (scenes stacked as in the input), renamed on commit."""

    def __init__(self, spec: OutputSpec, scale: int, channels: int, output_dtype: str) -> None:
        self.final = Path(spec.path)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _tmp_name(self.final)
        self.dtype, self.nodata = output_encoding(spec, output_dtype)
        h, w = spec.height * scale, spec.width * scale
        scene_shape = (h, w, channels) if spec.layout == "channels_last" else (channels, h, w)
        shape = (spec.num_scenes, *scene_shape) if spec.stacked else scene_shape
        try:
            self.file = _NpyFile(self.tmp, shape, self.dtype, spec.layout, spec.stacked)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        self.file.write_rows(index, row0, encode(data, valid, self.dtype, self.nodata))

    def commit(self) -> Path:
        self.file.close()
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class MemorySink(Sink):
    """Rows collected into one in-memory float32 array (C, H, W), NaN where the input was invalid."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        self.array = np.full((channels, height, width), np.nan, dtype=np.float32)

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        out = data.astype(np.float32, copy=True)
        out[:, ~valid] = np.nan
        self.array[:, row0 : row0 + out.shape[1]] = out


class PartSink(Sink):
    """One rank's finished rows ``[row0, row1)`` of one scene, float32 (C, rows, W) with NaN for invalid pixels."""

    def __init__(self, path: Path, channels: int, row0: int, row1: int, width: int) -> None:
        self.path = path
        self.row0 = row0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = _NpyFile(path, (channels, row1 - row0, width), np.dtype("float32"), "channels_first", False)

    def write(self, index: int, row0: int, data: np.ndarray, valid: np.ndarray) -> None:
        out = data.astype(np.float32, copy=True)
        out[:, ~valid] = np.nan
        self.file.write_rows(0, row0 - self.row0, out)

    def commit(self) -> Path:
        self.file.close()
        return self.path

    def abort(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def part_path(spec: OutputSpec, scene: int, rank: int, world: int) -> Path:
    """Deterministic name of a rank's part file, so rank zero can find every rank's parts."""
    return spec.path.with_name(f".{spec.path.name}.scene{scene}.rank{rank}of{world}.part.npy")


# ---------------------------------------------------------------------------------------------- blending
class SceneAssembler:
    """Blends one scene's tiles strip by strip and hands finished rows to ``write(row0, data, valid)``.

    Strips must arrive in order (tiles within a strip in any order); only strips in ``owned`` are
    written. Buffers: the current strip's weighted sum, weight sum and validity (output pixels).
    """

    def __init__(self, grid: TileGrid, scale: int, owned: set[int], write: Callable[[int, np.ndarray, np.ndarray], None]) -> None:
        self.grid = grid
        self.scale = scale
        self.owned = owned
        self.write = write
        self.strip: int | None = None
        self.received = 0
        self.origin = 0
        self.acc: np.ndarray | None = None
        self.wsum: np.ndarray | None = None
        self.valid: np.ndarray | None = None
        self._col_w = [grid.col_weights(i, scale) for i in range(len(grid.col_starts))]

    def _start(self, strip: int, channels: int) -> None:
        g, s = self.grid, self.scale
        if self.strip is not None and strip != self.strip + 1:
            raise RuntimeError(f"strips arrived out of order: {strip} after {self.strip}")
        origin = g.row_starts[strip] * s
        rows, width = g.tile_h * s, g.width * s
        if self.acc is None or self.acc.shape[0] != channels:
            self.acc = np.zeros((channels, rows, width), dtype=np.float32)
            self.wsum = np.zeros((rows, width), dtype=np.float32)
            self.valid = np.zeros((rows, width), dtype=bool)
        else:  # reuse the strip buffers: move up the partial sums of rows the last strip did not finish
            shift = origin - self.origin
            keep = rows - shift if shift < rows else 0
            for buf in (self.acc[:], self.wsum[None], self.valid[None]):
                if keep > 0:
                    buf[:, :keep] = buf[:, shift:].copy() if shift < keep else buf[:, shift:]
                buf[:, max(keep, 0):] = 0
        self.origin = origin
        self.strip = strip
        self.received = 0

    def add(self, strip: int, first: int, pred: np.ndarray, valid: np.ndarray) -> bool:
        """Add tiles ``first, first+1, ...`` of ``strip``: ``pred`` (B, C, th*s, tw*s), ``valid`` (B, th, tw).

        Returns True when the strip is complete (and its finished rows were written).
        """
        g, s = self.grid, self.scale
        th, tw = g.tile_h * s, g.tile_w * s
        if pred.shape[-2:] != (th, tw):
            raise ValueError(
                f"the model returned tiles of {tuple(pred.shape[-2:])} px for inputs of {g.tile_h}x{g.tile_w}; expected "
                f"{th}x{tw} (data.scale={s}): does the checkpoint's scale match the data's?"
            )
        if strip != self.strip:
            self._start(strip, pred.shape[1])
        wr = g.row_weights(strip, s)
        for k in range(pred.shape[0]):
            i = first + k
            c = g.col_starts[i] * s
            w2 = wr[:, None] * self._col_w[i][None, :]
            self.acc[:, :, c : c + tw] += pred[k] * w2
            self.wsum[:, c : c + tw] += w2
            v = valid[k].repeat(s, 0).repeat(s, 1) if s > 1 else valid[k]
            self.valid[:, c : c + tw] = v
        self.received += pred.shape[0]
        if self.received < len(g.col_starts):
            return False
        self._finish()
        return True

    def _finish(self) -> None:
        a, b = self.grid.strip_rows_done(self.strip)
        if self.strip in self.owned:
            s = self.scale
            lo, hi = a * s - self.origin, b * s - self.origin
            wsum = self.wsum[lo:hi]
            covered = wsum > 0
            data = self.acc[:, lo:hi]
            data /= np.where(covered, wsum, 1.0)  # in place: these rows are final, no strip-sized copy
            self.write(a * s, data, self.valid[lo:hi] & covered)


# ---------------------------------------------------------------------------------------------- a run
class PredictionRun:
    """One rank's share of a prediction plan: assemblers, sinks, commit or abort.

    ``world == 1``: rows go straight into the final outputs (temporary files until :meth:`commit`).
    ``world > 1``: rows go into per-rank part files; rank zero then calls :meth:`assemble`.
    """

    def __init__(self, plan: PredictionPlan, world: int = 1, rank: int = 0, band_names: Sequence[str] | None = None,
                 memory: bool = False) -> None:
        self.plan = plan
        self.world, self.rank = world, rank
        self.band_names = list(band_names) if band_names is not None else None
        self.memory = memory
        strips = plan.strips_for(world, rank)
        self.owned: dict[int, set[int]] = {}
        self.owned_rows: dict[int, tuple[int, int]] = {}
        for s, j, own in strips:
            if own:
                self.owned.setdefault(s, set()).add(j)
                a, b = plan.grids[s].strip_rows_done(j)
                lo, hi = self.owned_rows.get(s, (a, b))
                self.owned_rows[s] = (min(lo, a), max(hi, b))
        self.sinks: dict[Any, Sink] = {}
        self.assembler: SceneAssembler | None = None
        self.scene: int | None = None
        self.nonfinite: dict[int, int] = {}
        self.committed: list[Path] = []
        self.channels: int | None = None

    def _sink(self, scene: int, channels: int) -> Sink:
        plan, s = self.plan, self.plan.scale
        sc = plan.scenes[scene]
        spec = plan.outputs[sc.output]
        if self.world > 1:
            key: Any = ("part", scene)
            if key not in self.sinks:
                a, b = self.owned_rows[scene]
                self.sinks[key] = PartSink(part_path(spec, scene, self.rank, self.world), channels, a * s, b * s, spec.width * s)
            return self.sinks[key]
        key = sc.output
        if key not in self.sinks:
            if self.memory:
                self.sinks[key] = MemorySink(channels, spec.height * s, spec.width * s)
            elif spec.format == "GTiff":
                self.sinks[key] = GeoTiffSink(spec, s, channels, self.band_names, plan.output_dtype)
            else:
                self.sinks[key] = NpySink(spec, s, channels, plan.output_dtype)
        return self.sinks[key]

    def add(self, scene: int, strip: int, first: int, pred: np.ndarray, valid: np.ndarray, nonfinite: int = 0) -> None:
        if scene != self.scene:
            if self.world == 1 and not self.memory and self.scene is not None:
                done = self.plan.scenes[self.scene].output
                if done != self.plan.scenes[scene].output and done in self.sinks:  # output complete: publish it
                    self.committed.append(self.sinks.pop(done).commit())
            self.scene = scene
            self.channels = pred.shape[1]
            index = self.plan.scenes[scene].index
            owned = self.owned.get(scene, set())
            sink = self._sink(scene, pred.shape[1]) if owned else None

            def write(row0: int, data: np.ndarray, valid_rows: np.ndarray, sink: Sink | None = sink, index: int = index) -> None:
                sink.write(index, row0, data, valid_rows)

            self.assembler = SceneAssembler(self.plan.grids[scene], self.plan.scale, owned, write)
        if strip in self.owned.get(scene, ()):
            self.nonfinite[scene] = self.nonfinite.get(scene, 0) + int(nonfinite)
        self.assembler.add(strip, first, pred, valid)

    def warn_nonfinite(self) -> None:
        for scene, n in self.nonfinite.items():
            if n:
                warnings.warn(
                    f"{self.plan.scenes[scene].source.name}: {n} input pixel(s) hold NaN or infinite values; "
                    f"they were treated as nodata (written as nodata in the output)",
                    stacklevel=2,
                )

    def commit(self) -> list[Path]:
        """Finish this rank: close parts, or (one rank) move the outputs to their final names."""
        self.warn_nonfinite()
        out = list(self.committed)
        for sink in self.sinks.values():
            path = sink.commit()
            if path is not None:
                out.append(path)
        self.sinks = {}
        return out

    def abort(self) -> None:
        for sink in self.sinks.values():
            sink.abort()
        self.sinks = {}

    def result(self) -> np.ndarray:
        """The in-memory output of a one-scene ``memory=True`` run."""
        (sink,) = self.sinks.values()
        return sink.array


def assemble_parts(plan: PredictionPlan, world: int, band_names: Sequence[str] | None, rows_per_copy: int = 256) -> list[Path]:
    """Rank zero: copy every rank's part files into the outputs, then remove the parts (file I/O only)."""
    s = plan.scale
    ranges: dict[int, list[tuple[int, int, int]]] = {}
    for r in range(world):
        run = PredictionRun(plan, world, r)
        for scene, (a, b) in run.owned_rows.items():
            ranges.setdefault(scene, []).append((r, a * s, b * s))
    sinks: dict[int, Sink] = {}
    parts: list[Path] = [part_path(plan.outputs[sc.output], i, r, world) for i, sc in enumerate(plan.scenes) for r in range(world)]
    done: list[Path] = []
    try:
        for i, sc in enumerate(plan.scenes):
            spec = plan.outputs[sc.output]
            if i and plan.scenes[i - 1].output != sc.output and plan.scenes[i - 1].output in sinks:
                done.append(sinks.pop(plan.scenes[i - 1].output).commit())
            for r, a, b in sorted(ranges.get(i, []), key=lambda t: t[1]):
                part = np.load(part_path(spec, i, r, world), mmap_mode="r")
                if sc.output not in sinks:
                    ch = part.shape[0]
                    sinks[sc.output] = (
                        GeoTiffSink(spec, s, ch, band_names, plan.output_dtype) if spec.format == "GTiff"
                        else NpySink(spec, s, ch, plan.output_dtype)
                    )
                for k in range(0, b - a, rows_per_copy):
                    block = np.asarray(part[:, k : k + rows_per_copy])
                    sinks[sc.output].write(sc.index, a + k, block, ~np.isnan(block).any(0))
                del part
        for sink in sinks.values():
            done.append(sink.commit())
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise
    finally:
        for p in parts:
            p.unlink(missing_ok=True)
    return done


# ---------------------------------------------------------------------------------------------- callback
class ScenePredictionWriter(BasePredictionWriter):
    """Writes the super-resolved scenes of a :class:`~datamodules.scenes.SceneDataModule`'s prediction plan.

    Added automatically by the scene datamodules at ``predict`` when no instance is configured. It turns
    off the prediction loop's in-memory collection of outputs (``return_predictions``), so memory stays
    bounded by a strip. Works with any number of ranks (see the module docstring).
    """

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self.run: PredictionRun | None = None
        self.written: list[Path] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "predict":
            trainer.predict_loop.return_predictions = False

    def _plan(self, trainer: L.Trainer) -> PredictionPlan:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "prediction_plan"):
            raise RuntimeError("ScenePredictionWriter needs a scene datamodule (GeoTiffDataModule, ArrayDataModule)")
        return dm.prediction_plan()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        plan = self._plan(trainer)
        meta = getattr(pl_module, "metadata", {}) or {}
        if meta.get("scale") is not None and int(meta["scale"]) != plan.scale:
            raise ValueError(f"the model was trained for scale {meta['scale']}, but data.scale={plan.scale}")
        self.run = PredictionRun(plan, trainer.world_size, trainer.global_rank, meta.get("target_band_names"))
        self.written = []

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any, batch_indices: Sequence[int] | None,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        pred = prediction.detach().float().cpu().numpy() if isinstance(prediction, torch.Tensor) else np.asarray(prediction)
        valid = batch["valid"].cpu().numpy()
        self.run.add(int(batch["scene"]), int(batch["strip"]), int(batch["first"]), pred, valid, int(batch["nonfinite"]))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        world = trainer.world_size
        if world == 1:
            self.written = run.commit()
            self._report()
            return
        failure: BaseException | None = None
        try:
            run.commit()
        except BaseException as err:  # noqa: BLE001 - re-raised after the barrier so no rank hangs
            run.abort()
            failure = err
        trainer.strategy.barrier("aerogan-predict-parts")
        if trainer.is_global_zero and failure is None:
            try:
                self.written = assemble_parts(run.plan, world, run.band_names)
            except BaseException as err:  # noqa: BLE001
                failure = err
        trainer.strategy.barrier("aerogan-predict-written")
        if failure is not None:
            raise failure
        self._report()

    def _report(self) -> None:
        for path in self.written:
            rank_zero_info(f"aerogan predict: wrote {path}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.run is not None:
            self.run.abort()
            self.run = None
