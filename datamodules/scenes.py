"""Common machinery of the datamodules that read real scenes (GeoTIFF files, NumPy arrays).

Training: random HR patches inside the training block of every scene, never touching nodata (a
coarse validity grid is built once per scene by windowed reads); evaluation: a fixed grid of
non-overlapping patches inside the held-out blocks; LR synthesised on the fly by the base class, or
read from a co-registered LR sensor (paired mode, see :mod:`datamodules.geotiff`).

Prediction: the datamodule only says *what* to predict (:meth:`SceneDataModule.prediction_plan`: the
scenes, their input bands and output files) and serves the plan's tiles; tiling, blending and writing
live in :mod:`aerogan.prediction`, whose :class:`~aerogan.prediction.writer.ScenePredictionWriter` this
module adds to the trainer's callbacks when none is configured. Memory is bounded by a strip of tiles.

Exact resume: the training patches of an epoch depend only on (``seed``, epoch), the epoch coming
from Lightning's ``set_epoch`` (:class:`RandomPatchSampler`).
"""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from aerogan.prediction.overlap import seamless_overlap
from aerogan.prediction.plan import OutputDtype, OutputSpec, PredictionPlan, PredictScene, make_plan
from aerogan.prediction.sources import SceneSource, resolve_band_names
from aerogan.prediction.tiles import PredictTiles, tile_loader
from aerogan.prediction.writer import ScenePredictionWriter
from datamodules.sources import band_sums, combine_sums
from datamodules.super_resolution import SuperResolutionDataModule
from datamodules.windows import Box, CellGrid, SplitAxis, split_regions

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------- patches
class RandomPatchSampler(Sampler[int]):
    """``num_samples`` indices drawn with replacement from (``seed``, epoch), the same on every rank.

    Lightning calls :meth:`set_epoch` before every training epoch, also after a resume, so a resumed run
    draws the patches the uninterrupted run draws (iterating never advances the epoch). Under DDP
    Lightning wraps this sampler in a ``DistributedSamplerWrapper``, which forwards ``set_epoch`` to it
    and splits the one draw among the ranks.
    """

    def __init__(self, num_items: int, num_samples: int, seed: int) -> None:
        self.num_items = num_items
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randint(0, self.num_items, (self.num_samples,), generator=gen).tolist()


class PatchDataset(Dataset):
    """Patches at fixed positions: ``{"image": HR}`` (LR synthesised later) or an ``{"input", "target"}`` pair.

    Args:
        sources: the HR scenes.
        positions: (N, 3) int array of (scene, row, col) patch corners.
        patch_size: HR patch side.
        bands: the HR bands read for each patch.
        pair: reader of the matching LR window (paired sensors), or None.
    """

    def __init__(self, sources: Sequence[SceneSource], positions: np.ndarray, patch_size: int, bands: Sequence[int], pair: Any = None) -> None:
        self.sources = list(sources)
        self.positions = np.asarray(positions, dtype=np.int64).reshape(-1, 3)
        self.patch_size = patch_size
        self.bands = list(bands)
        self.pair = pair

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        s, r, c = (int(v) for v in self.positions[index])
        p = self.patch_size
        hr = torch.from_numpy(np.ascontiguousarray(self.sources[s].read(r, c, p, p, self.bands)))
        if self.pair is None:
            return {"image": hr}
        return {"input": torch.from_numpy(np.ascontiguousarray(self.pair.read(s, r, c, p))), "target": hr}


# ---------------------------------------------------------------------------------------------- datamodule
class SceneDataModule(SuperResolutionDataModule):
    """Patches from real scenes with spatial splits, cached statistics and tiled whole-scene prediction.

    Subclasses set ``self.sources`` (HR scenes), ``self.split_boxes`` (per scene: split -> list of Box) and
    implement :meth:`_predict_plan_inputs`; paired subclasses also set ``self.pair`` and override the
    ``_pair_*`` hooks.

    Args:
        input_bands / target_bands: 0-based band indices or band names (the files' band descriptions).
        val_fraction / test_fraction: share of each scene held out (whole blocks along ``split_axis``).
        split_axis: ``rows`` (horizontal blocks), ``cols`` (vertical blocks) or ``auto`` (across the longer side).
        split_order: blocks along the axis, e.g. ``[train, val, train, test, train]`` to keep the held-out
            blocks off the scene edges (default ``[train, val, test]``).
        split_gap: pixels between blocks (default: one patch).
        sample_stride: lattice step of patch corners, a multiple of ``scale`` (default: about a quarter patch).
        samples_per_epoch: random training patches per epoch.
        seed: seed of the patch draws.
        band_statistics: explicit normalisation statistics instead of computing them: ``{"mean": [...],
            "std": [...]}`` with one value per band of the files, or ``{"input_mean", "input_std",
            "target_mean", "target_std"}`` per selected band.
        stats_cache_dir: where statistics are cached when the data folder is read-only.
        tile / overlap: prediction tile and overlap in input (LR) pixels; the outer quarter of the overlap
            is discarded at inner tile edges, so ``overlap / 4`` should exceed the generator's receptive radius.
            ``overlap: null`` (the default) measures that radius on the model and takes the smallest
            seamless overlap.
        output_dir: folder of the predicted scenes.
        output_dtype: ``float32`` (default) or ``input`` (the input's dtype, rounded and clipped).
        predict_batch_size: tiles per prediction batch (default: ``batch_size``).
        predict_block_width: prediction runs in block columns about this wide (output px; each with a halo of
            half the overlap), so its memory follows the block, not the scene's width; null: whole-width strips.
        **kwargs: forwarded to :class:`~datamodules.super_resolution.SuperResolutionDataModule` (``scale``,
            ``patch_size``, ``batch_size``, ``num_workers``, ``augment``, ``blur_sigma``, ``sigma_jitter``,
            ``noise_std``, ``rgb_bands``, ``data_range``).
    """

    sources: list[SceneSource]
    split_boxes: list[dict[str, list[Box]]]
    pair: Any = None

    def __init__(
        self,
        input_bands: list[int | str] | None = None,
        target_bands: list[int | str] | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_axis: SplitAxis = "auto",
        split_order: list[str] | None = None,
        split_gap: int | None = None,
        sample_stride: int | None = None,
        samples_per_epoch: int = 1024,
        seed: int = 0,
        band_statistics: dict[str, list[float]] | None = None,
        stats_cache_dir: str | None = None,
        tile: int = 256,
        overlap: int | None = None,
        output_dir: str = "runs/predictions",
        output_dtype: OutputDtype = "float32",
        predict_batch_size: int | None = None,
        predict_block_width: int | None = 2048,
        **kwargs: Any,
    ) -> None:
        # band names are resolved against the files once they are open (see _resolve_bands)
        super().__init__(input_bands=None, target_bands=None, **kwargs)
        scale, patch_size = self.scale, self.patch_size
        self._band_args = (list(input_bands) if input_bands is not None else None, list(target_bands) if target_bands is not None else None)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_axis = split_axis
        self.split_order = list(split_order) if split_order is not None else ["train", "val", "test"]
        self.split_gap = patch_size if split_gap is None else int(split_gap)
        if sample_stride is None:
            sample_stride = max(scale, (patch_size // 4) // scale * scale)
        if sample_stride < 1 or sample_stride % scale:
            raise ValueError(f"data.sample_stride={sample_stride} must be a positive multiple of data.scale={scale}")
        self.sample_stride = int(sample_stride)
        if samples_per_epoch < 1:
            raise ValueError(f"data.samples_per_epoch={samples_per_epoch} must be >= 1")
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.band_statistics = band_statistics
        self.stats_cache_dir = stats_cache_dir
        if tile < 1 or (overlap is not None and not 0 <= overlap <= tile // 2):
            raise ValueError(f"data.tile={tile} must be >= 1 and data.overlap={overlap} in [0, tile/2] (or null: measured)")
        self.tile = tile
        self.overlap = overlap
        self.output_dir = output_dir
        if output_dtype not in ("float32", "input"):
            raise ValueError(f"data.output_dtype={output_dtype!r} must be 'float32' or 'input'")
        self.output_dtype: OutputDtype = output_dtype
        self.predict_batch_size = predict_batch_size or self.batch_size
        if predict_block_width is not None and predict_block_width < 1:
            raise ValueError(f"data.predict_block_width={predict_block_width} must be >= 1 (output px) or null")
        self.predict_block_width = predict_block_width
        self._grids: dict[int, CellGrid] = {}
        self._sums: dict[int, dict[str, Any]] = {}
        self._plan: PredictionPlan | None = None

    # ------------------------------------------------------------------ band names
    def _input_descriptions(self) -> tuple[list[str | None], str]:
        """Descriptions of the files the input bands index, and a file name for messages."""
        return self.sources[0].descriptions, self.sources[0].name

    def _target_descriptions(self) -> tuple[list[str | None], str]:
        return self.sources[0].descriptions, self.sources[0].name

    #: band names (file descriptions) to 0-based indices, see :func:`aerogan.prediction.sources.resolve_band_names`
    resolve_band_names = staticmethod(resolve_band_names)

    def _resolve_bands(self) -> None:
        inputs, targets = self._band_args
        if inputs is not None:
            desc, name = self._input_descriptions()
            self._input_bands = self.resolve_band_names(inputs, desc, "input_bands", name)
        if targets is not None:
            desc, name = self._target_descriptions()
            self._target_bands = self.resolve_band_names(targets, desc, "target_bands", name)

    def _check_bands(self, bands: Sequence[int], name: str) -> None:
        n = self._num_bands_available()
        bad = [b for b in bands if not 0 <= b < n]
        if bad or not bands:
            raise ValueError(
                f"{self._band_file(name)}: data.{name}={list(bands)} asks for band(s) {bad or '(none)'}, but the file has "
                f"{n} band(s) (0-based indices 0..{n - 1})"
            )

    def _band_file(self, name: str) -> str:
        return self.sources[0].name

    def _num_bands_available(self) -> int:
        return self.sources[0].count

    def band_names(self) -> list[str]:
        desc = self.sources[0].descriptions
        return [d if d else f"B{i + 1}" for i, d in enumerate(desc)]

    @property
    def hr_bands(self) -> list[int]:
        """HR bands read per patch: input and target bands (synthetic LR) or the target bands (paired)."""
        if self.pair is not None:
            return list(self.target_bands)
        return sorted(set(self.input_bands) | set(self.target_bands))

    def make_pair(self, image: Tensor, augment: bool = False, randomize: bool = False) -> dict[str, Tensor]:
        """Like the base class, but ``image`` holds only :attr:`hr_bands` (in that order)."""
        if augment:
            image = self.hr_augmentation(image)
        pos = {b: i for i, b in enumerate(self.hr_bands)}
        target = image[:, [pos[b] for b in self.target_bands]]
        lr = self.degradation(image[:, [pos[b] for b in self.input_bands]], randomize=randomize)
        return {"input": lr, "target": target}

    # ------------------------------------------------------------------ geometry checks
    def _init_splits(self, boxes: list[dict[str, list[Box]]] | None = None) -> None:
        """Check scene sizes against the patch and cut every scene into split blocks."""
        for src in self.sources:
            if self.patch_size > min(src.height, src.width):
                raise ValueError(
                    f"{src.name}: data.patch_size={self.patch_size} is larger than the scene ({src.height}x{src.width} px)"
                )
        if boxes is None:
            boxes = [
                split_regions(src.height, src.width, self.patch_size, self.val_fraction, self.test_fraction,
                              self.split_gap, self.split_axis, name=src.name, order=self.split_order)
                for src in self.sources
            ]
        self.split_boxes = boxes

    # ------------------------------------------------------------------ validity and positions
    def _pair_mark(self, index: int, grid: CellGrid) -> None:
        """Paired subclasses mark HR cells whose LR counterpart is missing or invalid."""

    def cell_grid(self, index: int) -> CellGrid:
        """Validity grid of scene ``index`` (built once by windowed reads of the HR bands)."""
        if index not in self._grids:
            src = self.sources[index]
            grid = CellGrid(src.height, src.width, self.sample_stride)
            nonfinite = 0
            any_valid = False
            for r, data in src.strips(self.hr_bands, multiple=self.sample_stride):
                inv, nf = src.invalid(data, r, 0)
                nonfinite += int(nf.sum())
                any_valid = any_valid or not bool(inv.all())
                grid.mark_pixels(r, inv)
            if not any_valid:
                nd = f"nodata={src.nodata:g}" if src.nodata is not None else "no nodata value set"
                raise ValueError(f"{src.name}: the scene holds no valid pixel in bands {self.hr_bands} (all nodata or NaN; {nd})")
            if nonfinite:
                warnings.warn(
                    f"{src.name}: {nonfinite} pixel(s) hold NaN or infinite values; they are treated as nodata "
                    f"(masked: no patch containing them is sampled, predictions there are written as nodata)",
                    stacklevel=2,
                )
            self._pair_mark(index, grid)
            self._grids[index] = grid
        return self._grids[index]

    def split_scenes(self, split: str) -> list[int]:
        return [i for i, boxes in enumerate(self.split_boxes) if split in boxes]

    def positions(self, split: str) -> np.ndarray:
        """(N, 3) valid patch corners (scene, row, col) of ``split``: a lattice (train) or a grid (val/test)."""
        out = []
        for i in self.split_scenes(split):
            grid = self.cell_grid(i)
            for box in self.split_boxes[i][split]:
                pos = grid.positions(box, self.patch_size) if split == "train" else grid.grid_positions(box, self.patch_size)
                if len(pos):
                    out.append(np.concatenate([np.full((len(pos), 1), i), pos], 1))
        if not out:
            names = ", ".join(self.sources[i].name for i in self.split_scenes(split)) or "(no scene)"
            raise ValueError(
                f"{names}: no {split} patch of {self.patch_size} px lies entirely on valid pixels inside the {split} "
                f"block(s) {[tuple(b) for i in self.split_scenes(split) for b in self.split_boxes[i][split]]} (row0, col0, row1, col1); "
                + (f"enlarge data.{split}_fraction" if split != "train" else "lower data.val_fraction/test_fraction")
                + ", change data.split_axis or data.split_order, or lower data.patch_size"
            )
        return np.concatenate(out).astype(np.int64)

    # ------------------------------------------------------------------ datasets and loaders
    def _make_dataset(self, split: str) -> Dataset:
        if split == "predict":
            return PredictTiles(self.prediction_plan(), self.predict_batch_size)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        if not self.split_scenes(split):
            raise ValueError(f"{type(self).__name__}: no {split} data (data.{split}_fraction is 0 or no {split} scene is set)")
        return PatchDataset(self.sources, self.positions(split), self.patch_size, self.hr_bands, self.pair)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split == "predict":
            return self.predict_dataloader()
        if split not in self.datasets:
            self.datasets[split] = self._make_dataset(split)
        ds = self.datasets[split]
        common = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0}
        if shuffle:
            # patches depend on (seed, epoch) only; the loader's generator is seeded too, else creating each
            # epoch's iterator draws from the global generator and shifts later draws after a resume
            # (see datamodules/sampling.py)
            sampler = RandomPatchSampler(len(ds), self.samples_per_epoch, self.seed)
            return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, drop_last=self.samples_per_epoch > self.batch_size,
                              generator=torch.Generator().manual_seed(self.seed), **common)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False, **common)

    def predict_dataloader(self) -> DataLoader:
        """This rank's chunks of tiles of :meth:`prediction_plan` (one chunk per batch)."""
        if "predict" not in self.datasets:
            self.datasets["predict"] = self._make_dataset("predict")
        world, rank = self._world()
        return tile_loader(self.datasets["predict"], world, rank, self.num_workers)

    def _world(self) -> tuple[int, int]:
        trainer = self._trainer_or_none()
        if trainer is not None:
            return trainer.world_size, trainer.global_rank
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    def _trainer_or_none(self) -> Any:
        return getattr(self, "trainer", None)

    def setup(self, stage: str) -> None:
        """Training splits as the base class; ``predict`` only makes sure a scene writer is attached.

        The tiles are built lazily by :meth:`predict_dataloader`, after the writer has fixed the plan
        (it measures the overlap on the model when ``data.overlap`` is null).
        """
        if stage == "predict":
            self._ensure_writer()
            return
        super().setup(stage)

    def _ensure_writer(self) -> None:
        trainer = self._trainer_or_none()
        if trainer is not None and not any(isinstance(cb, ScenePredictionWriter) for cb in trainer.callbacks):
            trainer.callbacks.append(ScenePredictionWriter())

    # ------------------------------------------------------------------ statistics
    def scene_sums(self, index: int) -> dict[str, Any]:
        if index not in self._sums:
            self._sums[index] = band_sums(self.sources[index], self.stats_cache_dir)
        return self._sums[index]

    def _train_scene_indices(self) -> list[int]:
        return self.split_scenes("train")

    def _band_statistics(self, max_samples: int = 256) -> tuple[Tensor, Tensor]:
        """Per-band mean and std over the valid pixels of the training scenes (whole scenes; cached)."""
        n = self._num_bands_available()
        if self.band_statistics is not None and "mean" in self.band_statistics:
            mean, std = self.band_statistics["mean"], self.band_statistics.get("std")
            if std is None or len(mean) != n or len(std) != n:
                raise ValueError(f"data.band_statistics needs 'mean' and 'std' with one value per band ({n} bands)")
            return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        entries = [self.scene_sums(i) for i in self._train_scene_indices()]
        mean, std, _ = combine_sums(entries, range(n))
        return torch.from_numpy(mean).float(), torch.from_numpy(std).float()

    def statistics(self) -> dict[str, Tensor]:
        bs = self.band_statistics
        if self._statistics is None and bs is not None and "input_mean" in bs:
            keys = ("input_mean", "input_std", "target_mean", "target_std")
            if any(k not in bs for k in keys):
                raise ValueError(f"data.band_statistics needs all of {keys} (or 'mean' and 'std' per file band)")
            stats = {k: torch.tensor(bs[k], dtype=torch.float32) for k in keys}
            for k in keys:
                want = self.in_channels if k.startswith("input") else self.out_channels
                if stats[k].numel() != want:
                    raise ValueError(f"data.band_statistics[{k!r}] has {stats[k].numel()} values, expected {want}")
            self._statistics = stats
        return super().statistics()

    def default_data_range(self) -> float:
        """255 for 8-bit data, 1.0 for reflectance in [0, 1], else the largest target value of the training scenes."""
        dtype = self.sources[0].dtype
        if dtype == "uint8":
            return 255.0
        entries = [self.scene_sums(i) for i in self._train_scene_indices()]
        _, _, hi = combine_sums(entries, self.target_bands)
        peak = float(np.max(hi))
        if dtype.startswith("float") and peak <= 1.0 + 1e-6:
            return 1.0
        return peak if math.isfinite(peak) and peak > 0 else 1.0

    # ------------------------------------------------------------------ prediction
    @abstractmethod
    def _predict_plan_inputs(self) -> tuple[list[PredictScene], list[OutputSpec]]:
        """The scenes to predict and their output files (the plan's inputs)."""

    def prediction_plan(self, generator: nn.Module | None = None) -> PredictionPlan:
        """The scenes to super-resolve, their tilings and outputs (built once).

        ``generator``: the network to measure the seamless overlap on when ``data.overlap`` is null
        (:func:`aerogan.prediction.overlap.seamless_overlap`); :class:`ScenePredictionWriter` passes the model's.
        """
        if self._plan is None:
            overlap = self.overlap
            if overlap is None:
                if generator is None:
                    raise ValueError("data.overlap is null (measured on the model's generator), but no generator was given; "
                                     "set data.overlap or predict through ScenePredictionWriter")
                overlap = seamless_overlap(generator, self.in_channels, self.scale, self.tile)
            scenes, outputs = self._predict_plan_inputs()
            self._plan = make_plan(scenes, outputs, self.scale, self.tile, overlap, self.output_dtype, self.predict_block_width)
        return self._plan
