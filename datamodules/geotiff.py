"""GeoTIFF scenes: one or many files, synthetic LR or a co-registered LR sensor, whole-scene prediction.

Single sensor (default): HR patches are read from the files and the LR input is synthesised on the
fly (blur + block mean, :mod:`datamodules.degradation`); ``scale=1`` with different input and target
bands is band synthesis. Paired sensors (``lr_paths``): the input is read from a second raster of
coarser resolution over the same ground, window matched by geographic bounds (same CRS required),
resampled to exactly ``patch_size / scale`` pixels. Reads are windowed and lazy (files reopen in each
worker); small files are kept in memory.

Prediction (``aerogan predict``): every file of ``predict_paths`` (default: ``paths``) is
super-resolved whole and written to ``<output_dir>/<stem>_x<scale>.tif`` with the same CRS and
bounds, the pixel size divided by ``scale`` and the model's target band names as band descriptions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from aerogan.prediction.plan import OutputSpec, PredictScene
from aerogan.prediction.sources import RasterSource
from datamodules.scenes import SceneDataModule
from datamodules.sources import band_sums, combine_sums
from datamodules.windows import Box, CellGrid

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")

Resampling = Literal["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average"]


def expand_paths(paths: str | Sequence[str], label: str) -> list[Path]:
    """Files from a list of files and/or folders (a folder contributes its rasters, sorted by name)."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in RASTER_SUFFIXES and f.is_file())
            if not found:
                raise FileNotFoundError(f"{p}: data.{label} names a folder without raster files ({', '.join(RASTER_SUFFIXES)})")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise ValueError(f"data.{label} is empty")
    return out


class PairedReader:
    """Reads the LR window matching an HR patch by geographic bounds (picklable, lazy)."""

    def __init__(self, hr: Sequence[RasterSource], lr: Sequence[RasterSource], bands: Sequence[int], scale: int, resampling: str) -> None:
        self.hr_transforms = [src.transform for src in hr]
        self.lr = list(lr)
        self.bands = list(bands)
        self.scale = scale
        self.resampling = resampling

    def bounds(self, s: int, row: int, col: int, size: int) -> tuple[float, float, float, float]:
        t = self.hr_transforms[s]
        x0, y0 = t @ (col, row)
        x1, y1 = t @ (col + size, row + size)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def read(self, s: int, row: int, col: int, size: int) -> np.ndarray:
        n = size // self.scale
        return self.lr[s].read_bounds(self.bounds(s, row, col, size), (n, n), self.bands, self.resampling)


def _north_up(src: RasterSource) -> bool:
    t = src.transform
    return t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0


class GeoTiffDataModule(SceneDataModule):
    """Super-resolution / band synthesis on GeoTIFF scenes.

    Args:
        paths: HR GeoTIFF files and/or folders of them (all with the same bands).
        lr_paths: for paired sensors, the co-registered LR rasters, one per file of ``paths`` in the same
            order (same CRS; LR pixel about ``scale`` times the HR pixel; any other ratio is resampled on read).
        predict_paths: scenes to super-resolve with ``aerogan predict`` (default: ``paths``; in paired
            mode, LR-sensor scenes). Any CRS and nodata; they need the input bands.
        nodata: nodata value overriding the files' own (default: each file's).
        lr_resampling: resampling of LR windows that do not fall on whole LR pixels (paired mode).
        in_memory: keep whole files in memory (default: files under 256 MB as float32).
        **kwargs: forwarded to :class:`~datamodules.scenes.SceneDataModule` (splits, sampling, statistics,
            prediction tiles and outputs; ``input_bands`` / ``target_bands`` as indices or band descriptions,
            in paired mode input bands index the LR files and target bands the HR files) and on to
            :class:`~datamodules.super_resolution.SuperResolutionDataModule` (``scale``, ``patch_size``,
            ``batch_size``, degradation, ...).
    """

    def __init__(
        self,
        paths: list[str] | str | None = None,
        lr_paths: list[str] | str | None = None,
        predict_paths: list[str] | str | None = None,
        nodata: float | None = None,
        lr_resampling: Resampling = "bilinear",
        in_memory: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if paths is None and predict_paths is None:
            raise ValueError("GeoTiffDataModule needs data.paths (training scenes) or data.predict_paths (scenes to super-resolve)")
        self.nodata = nodata
        self.lr_resampling = lr_resampling
        self.in_memory = in_memory
        self.predict_paths = expand_paths(predict_paths, "predict_paths") if predict_paths is not None else None
        self.training_data = paths is not None
        hr_paths = expand_paths(paths if paths is not None else predict_paths, "paths" if paths is not None else "predict_paths")
        # scenes only to predict are never cached whole (memory must not grow with the scene)
        self.sources = [RasterSource(p, nodata=nodata, in_memory=in_memory if self.training_data else bool(in_memory)) for p in hr_paths]
        first = self.sources[0]
        for src in self.sources[1:]:
            if src.count != first.count:
                raise ValueError(f"{src.name}: {src.count} band(s), but {first.name} has {first.count}; all data.paths need the same bands")
        self.lr_sources: list[RasterSource] | None = None
        if lr_paths is not None and self.training_data:
            self._init_paired(expand_paths(lr_paths, "lr_paths"))
        self._resolve_bands()
        self.check_bands()
        if self.training_data:
            self._init_splits()
            if self.pair is not None:
                self.pair = PairedReader(self.sources, self.lr_sources, self.input_bands, self.scale, self.lr_resampling)
        else:
            self.split_boxes = [{} for _ in self.sources]

    # ------------------------------------------------------------------ paired sensors
    def _init_paired(self, lr_paths: list[Path]) -> None:
        if len(lr_paths) != len(self.sources):
            raise ValueError(f"data.lr_paths has {len(lr_paths)} file(s) but data.paths has {len(self.sources)}; they pair up in order")
        self.lr_sources = [RasterSource(p, nodata=self.nodata, in_memory=self.in_memory) for p in lr_paths]
        for hr, lr in zip(self.sources, self.lr_sources, strict=True):
            if lr.count != self.lr_sources[0].count:
                raise ValueError(f"{lr.name}: {lr.count} band(s), but {self.lr_sources[0].name} has {self.lr_sources[0].count}")
            if hr.crs is None or lr.crs is None:
                raise ValueError(f"{lr.name if lr.crs is None else hr.name}: the raster has no CRS; paired rasters must be georeferenced")
            if hr.crs != lr.crs:
                raise ValueError(
                    f"{lr.name}: CRS {lr.crs.to_string()} differs from the CRS {hr.crs.to_string()} of its HR pair {hr.name}; "
                    f"reproject one of them first (e.g. gdalwarp -t_srs {hr.crs.to_string()} ...)"
                )
            for src in (hr, lr):
                if not _north_up(src):
                    raise ValueError(f"{src.name}: paired mode needs north-up rasters (no rotation); warp it first with gdalwarp")
            hb, lb = hr.bounds, lr.bounds
            ix0, iy0 = max(hb.left, lb.left), max(hb.bottom, lb.bottom)
            ix1, iy1 = min(hb.right, lb.right), min(hb.top, lb.top)
            if ix0 >= ix1 or iy0 >= iy1:
                raise ValueError(f"{lr.name}: its extent {tuple(lb)} does not overlap the extent {tuple(hb)} of its HR pair {hr.name}")
            ratio = lr.res[0] / hr.res[0]
            if abs(ratio - self.scale) > 0.01 * self.scale:
                warnings.warn(
                    f"{lr.name}: LR pixel {lr.res[0]:g} is {ratio:.3f}x the HR pixel {hr.res[0]:g} of {hr.name}, not "
                    f"data.scale={self.scale}; LR windows are resampled ({self.lr_resampling}) to exactly 1/{self.scale} of each patch",
                    stacklevel=2,
                )
        self.pair = True  # replaced by a PairedReader once bands are resolved

    def _input_descriptions(self) -> tuple[list[str | None], str]:
        if self.lr_sources is not None:
            return self.lr_sources[0].descriptions, self.lr_sources[0].name
        return super()._input_descriptions()

    def _band_file(self, name: str) -> str:
        if name == "input_bands" and self.lr_sources is not None:
            return self.lr_sources[0].name
        return super()._band_file(name)

    @property
    def input_bands(self) -> list[int]:
        if self.lr_sources is None:
            return SceneDataModule.input_bands.fget(self)
        n = self.lr_sources[0].count
        bands = self._input_bands if self._input_bands is not None else list(range(n))
        bad = [b for b in bands if not 0 <= b < n]
        if bad or not bands:
            raise ValueError(
                f"{self.lr_sources[0].name}: data.input_bands={list(bands)} asks for band(s) {bad or '(none)'}, but the LR "
                f"file has {n} band(s) (0-based indices 0..{n - 1})"
            )
        return bands

    @property
    def target_bands(self) -> list[int]:
        if self.lr_sources is None or self._target_bands is not None:
            return SceneDataModule.target_bands.fget(self)
        bands = list(range(self._num_bands_available()))  # paired default: every HR band
        self._check_bands(bands, "target_bands")
        return bands

    def input_band_names(self) -> list[str]:
        if self.lr_sources is None:
            return super().input_band_names()
        desc = self.lr_sources[0].descriptions
        return [desc[b] or f"B{b + 1}" for b in self.input_bands]

    @property
    def target_in_input(self) -> list[int] | None:
        """Paired mode: match target to input bands by description, else by index (same band order)."""
        if self.lr_sources is None:
            return SceneDataModule.target_in_input.fget(self)
        lr_desc, hr_desc = self.lr_sources[0].descriptions, self.sources[0].descriptions
        inputs = self.input_bands
        if all(lr_desc) and all(hr_desc):
            names = [lr_desc[b] for b in inputs]
            wanted = [hr_desc[b] for b in self.target_bands]
            return [names.index(n) for n in wanted] if all(n in names for n in wanted) else None
        return [inputs.index(b) for b in self.target_bands] if all(b in inputs for b in self.target_bands) else None

    def _pair_mark(self, index: int, grid: CellGrid) -> None:
        if self.lr_sources is None:
            return
        hr, lr = self.sources[index], self.lr_sources[index]
        inv_hr = ~hr.transform
        # HR pixels covered by the LR raster (one HR pixel inset for resampling)
        c_a, r_a = inv_hr @ (lr.bounds.left, lr.bounds.top)
        c_b, r_b = inv_hr @ (lr.bounds.right, lr.bounds.bottom)
        grid.keep_only(Box(math.ceil(min(r_a, r_b)) + 1, math.ceil(min(c_a, c_b)) + 1, math.floor(max(r_a, r_b)) - 1, math.floor(max(c_a, c_b)) - 1))
        # invalid LR pixels (dilated by one LR pixel for the resampling kernel) -> HR cells
        for r, data in lr.strips(self.input_bands):
            inv, _ = lr.invalid(data, r, 0)
            if not inv.any():
                continue
            rows, cols = np.nonzero(inv)
            rows = rows + r
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    self._mark_lr_pixels(grid, hr, lr, rows + dr, cols + dc)
        if not grid.any_valid:
            raise ValueError(f"{lr.name}: no valid LR pixel overlaps the valid pixels of its HR pair {hr.name}")

    @staticmethod
    def _mark_lr_pixels(grid: CellGrid, hr: RasterSource, lr: RasterSource, rows: np.ndarray, cols: np.ndarray) -> None:
        t, inv_hr = lr.transform, ~hr.transform
        x0, y0 = t.c + cols * t.a, t.f + rows * t.e
        x1, y1 = x0 + t.a, y0 + t.e
        c0, r0 = inv_hr @ (x0, y0)
        c1, r1 = inv_hr @ (x1, y1)
        g = grid.cell
        rr0 = np.clip(np.floor(np.minimum(r0, r1)).astype(np.int64), 0, grid.height - 1) // g
        rr1 = np.clip(np.ceil(np.maximum(r0, r1)).astype(np.int64) - 1, 0, grid.height - 1) // g
        cc0 = np.clip(np.floor(np.minimum(c0, c1)).astype(np.int64), 0, grid.width - 1) // g
        cc1 = np.clip(np.ceil(np.maximum(c0, c1)).astype(np.int64) - 1, 0, grid.width - 1) // g
        span_r, span_c = int((rr1 - rr0).max(initial=0)), int((cc1 - cc0).max(initial=0))
        for dr in range(span_r + 1):
            for dc in range(span_c + 1):
                ok = (rr0 + dr <= rr1) & (cc0 + dc <= cc1)
                grid.invalid[(rr0 + dr)[ok], (cc0 + dc)[ok]] = True
        grid._sat = None

    def statistics(self) -> dict[str, Tensor]:
        """Paired mode: input statistics from the LR files, target statistics from the HR files."""
        if self.lr_sources is None or self._statistics is not None or (self.band_statistics and "input_mean" in self.band_statistics):
            return super().statistics()
        if self.band_statistics is not None:
            raise ValueError("paired mode needs data.band_statistics as input_mean/input_std/target_mean/target_std")
        lr_entries = [band_sums(self.lr_sources[i], self.stats_cache_dir) for i in self._train_scene_indices()]
        hr_entries = [self.scene_sums(i) for i in self._train_scene_indices()]
        in_mean, in_std, _ = combine_sums(lr_entries, self.input_bands)
        t_mean, t_std, _ = combine_sums(hr_entries, self.target_bands)

        def t(v: np.ndarray, positive: bool = False) -> Tensor:
            x = torch.from_numpy(np.asarray(v)).float()
            return torch.where(x > 0, x, torch.ones_like(x)) if positive else x

        self._statistics = {"input_mean": t(in_mean), "input_std": t(in_std, True), "target_mean": t(t_mean), "target_std": t(t_std, True)}
        return self._statistics

    # ------------------------------------------------------------------ statistics without training data
    def default_data_range(self) -> float:
        if not self.training_data:  # predict-only: no pass over the scenes just for a metric's peak value
            dtype = np.dtype(self.sources[0].dtype)
            return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
        return super().default_data_range()

    def _train_scene_indices(self) -> list[int]:
        # predict-only module: statistics of the scenes themselves (the checkpoint's replace them anyway)
        return super()._train_scene_indices() if self.training_data else list(range(len(self.sources)))

    # ------------------------------------------------------------------ prediction
    def _predict_plan_inputs(self) -> tuple[list[PredictScene], list[OutputSpec]]:
        if self.predict_paths is not None:
            sources = [RasterSource(p, nodata=self.nodata, in_memory=False) for p in self.predict_paths]
        elif self.lr_sources is not None:
            sources = [RasterSource(s.path, nodata=self.nodata, in_memory=False) for s in self.lr_sources]
        else:
            sources = [RasterSource(s.path, nodata=self.nodata, in_memory=False) for s in self.sources]
        names_given = self._band_args[0] is not None and any(isinstance(b, str) for b in self._band_args[0])
        ref_desc, _ = self._input_descriptions()
        scenes, outputs = [], []
        out_dir = Path(self.output_dir)
        for src in sources:
            bands = list(self.input_bands)
            if names_given and src.has_descriptions:
                wanted = [ref_desc[b] or "" for b in bands]
                bands = self.resolve_band_names(wanted, src.descriptions, "input_bands", src.name)
            bad = [b for b in bands if not 0 <= b < src.count]
            if bad:
                raise ValueError(
                    f"{src.name}: the model needs input band(s) {bands} (0-based), but the file has {src.count} band(s)"
                )
            name = f"{src.path.stem}_x{self.scale}.tif"
            outputs.append(OutputSpec(
                path=out_dir / name, format="GTiff", height=src.height, width=src.width, input_dtype=src.dtype,
                input_nodata=src.nodata, crs=src.crs, transform=src.transform, source_name=src.name,
            ))
            scenes.append(PredictScene(src, bands, len(outputs) - 1))
        stems = [o.path for o in outputs]
        if len(set(stems)) != len(stems):
            raise ValueError(f"data.predict_paths: several files share a name, their outputs would collide: {[str(s) for s in stems]}")
        return scenes, outputs
