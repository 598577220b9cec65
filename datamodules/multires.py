"""Guided super-resolution of multi-resolution scenes (Sentinel-2 10/20/60 m), trained by Wald's protocol.

The coarse *target* bands are brought to the grid of the finest *guide* group; the fine guides carry
the geometry, the coarse bands the spectrum (DSen2, Lanaras et al. 2018; docs/science.md §4). Two
DSen2 tasks: T2 (guide B02 B03 B04 B08, target B05 B06 B07 B8A B11 B12, scale 2) and S6 (guides the
10 m and the 20 m bands, target B01 B09, scale 6).

Training (Wald's protocol, :mod:`datamodules.wald`): every group is degraded by the task's scale R, and
the network learns one level down, where the original target bands are the truth. A training patch
is ``patch_size`` pixels of the target's own grid (the output grid of the training level).

Batches after :meth:`MultiResolutionDataModule.on_after_batch_transfer` (physical units, float32):

* ``"input"``: (B, C_t, h, w) the target bands on their coarse grid;
* ``"guides"``: one (B, C_k, h R / rho_k, w R / rho_k) tensor per guide group, finest first, where rho_k
  is the guide's pixel size over the output grid's (:attr:`guide_ratios`);
* ``"target"``: (B, C_t, h R, w R) the truth.

Prediction does not go through the Trainer's predict loop: ``aerogan predict`` and ``aerogan product``
turn each of :meth:`MultiResolutionDataModule.prediction_scenes` into one product on its finest grid
(:func:`aerogan.prediction.super_resolve_product`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.augmentation import random_dihedral
from datamodules.band_catalog import (
    S2_BANDS,
    BandGroup,
    BandRef,
    MultiResolutionScene,
    normalize_band_name,
    open_catalog,
)
from datamodules.band_summary import summarize_scene
from datamodules.radiometry import RadiometricJitter
from datamodules.scenes import RandomPatchSampler
from datamodules.sources import band_sums, combine_sums
from datamodules.wald import WaldDegradation
from datamodules.windows import CellGrid, SplitAxis, split_regions

SPLITS = ("train", "val", "test")
Normalization = Literal["auto", "zscore", "reflectance"]
#: DSen2's fixed scale: digital numbers (reflectance x 10000) divided by 2000, so reflectance 0.2 -> 1.
DN_REFLECTANCE_SCALE = 2000.0


class WindowDataset(Dataset):
    """Square windows of every group at fixed corners (pixels of the coarsest group = the target).

    Item: ``{"image": target group (C_t, w, w), "guide_images": [guide k (C_k, w q_k, w q_k)]}`` with
    ``w = window``; reads are windowed and files reopen in each worker.
    """

    def __init__(self, scene: MultiResolutionScene, corners: np.ndarray, window: int) -> None:
        self.scene = scene
        self.corners = np.asarray(corners, dtype=np.int64).reshape(-1, 2)
        self.window = window

    def __len__(self) -> int:
        return len(self.corners)

    def __getitem__(self, index: int) -> dict[str, Any]:
        r, c = (int(v) for v in self.corners[index])
        w = self.window
        groups = [torch.from_numpy(self.scene.read(k, r, c, w, w)[0]) for k in range(len(self.scene.groups))]
        return {"image": groups[0], "guide_images": groups[1:]}


class MultiResolutionDataModule(L.LightningDataModule):
    """Guided super-resolution data: target bands on a coarse grid, guide groups on finer grids.

    Args:
        sources: raster files (one per band group, bands named by their descriptions), or one
            Sentinel-2 product (``.SAFE`` folder or ``.zip``), or one STAC Item JSON.
        target_bands: the bands to super-resolve, by name (one group, one grid), e.g. ``[B05, B06, B07, B8A, B11, B12]``.
        guide_bands: the guide groups, finest first, e.g. ``[[B02, B03, B04, B08]]`` (T2) or
            ``[[B02, B03, B04, B08], [B05, B06, B07, B8A, B11, B12]]`` (S6); none coarser than the target.
        patch_size: training patch side in pixels of the target's grid (the training level's output
            grid), a multiple of the scale.
        batch_size: batch size of every split.
        samples_per_epoch: random training patches per epoch.
        val_fraction / test_fraction: share of the scene held out, in whole blocks along ``split_axis``.
        split_axis: ``cols`` (left-to-right blocks: held out on the right), ``rows`` or ``auto``.
        split_order: blocks along the axis (default ``[train, val, test]``).
        split_gap: target pixels between blocks (default: one patch with its margin).
        sample_stride: lattice step of training patch corners in target pixels (default: a quarter patch).
        seed: seed of the patch draws.
        num_workers: DataLoader workers.
        augment: random flips and 90-degree rotations of training samples (all groups alike).
        blur_sigma: Wald degradation blur in pixels of the group being degraded (default DSen2's ``1 / scale``).
        sigma_jitter: relative per-sample blur jitter during training.
        noise_std: additive noise on degraded training groups, in data units.
        nodata: nodata value of every file (default: each file's own, else 0, Sentinel-2's fill value).
        rgb_bands: three indices into ``target_bands`` for colour composites (default: the first three).
        data_range: peak value for PSNR/SSIM in data units (default: the largest target value).
        band_statistics: per band name ``[mean, std]`` instead of computing them.
        stats_cache_dir: where statistics are cached when the data folder is read-only.
        predict_sources: scenes for ``aerogan predict`` (each like ``sources``; a flat list of rasters is one
            scene; default ``sources``). Each becomes one product on its finest grid in ``output_dir``
            (:func:`aerogan.prediction.super_resolve_product`).
        tile / overlap: prediction tile side and overlap, in pixels of the target's grid (overlap ``None``:
            measured from the generator's receptive field, seamless).
        output_dir: folder of the products written by ``aerogan predict``.
        use_guides: feed the guide groups to the model (default). ``False`` keeps everything else (grids,
            scale, split, patches, degradation) and gives the model the target bands alone: the
            single-input ablation that measures what guidance is worth.
        normalization: how the model scales each band (stored in its checkpoint and exports).
            ``reflectance``: a fixed physical scale, every band divided by ``reflectance_scale`` (no
            per-scene statistics, so a model transfers to scenes of other brightness); ``zscore``: the
            band's mean and std over these files (for data without a physical scale); ``auto`` (default):
            ``reflectance`` when every band is a Sentinel-2 band, else ``zscore``.
        reflectance_scale: the divisor of ``reflectance`` (default DSen2's 2000 for digital numbers,
            i.e. reflectance x 10000; 0.2 for float reflectance in [0, 1]).
        gain_jitter / offset_jitter / brightness_jitter: training-time radiometric changes, per sample
            (:class:`datamodules.radiometry.RadiometricJitter`): band gains log-uniform in
            ``[exp(-a), exp(a)]``, band offsets uniform in ``[-o, o]`` data units, one brightness factor for
            every band; applied before degradation, so input, guides and truth agree (0: off).
    """

    def __init__(
        self,
        sources: list[str] | str,
        target_bands: list[str],
        guide_bands: list[list[str]],
        patch_size: int = 32,
        batch_size: int = 16,
        samples_per_epoch: int = 1024,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_axis: SplitAxis = "cols",
        split_order: list[str] | None = None,
        split_gap: int | None = None,
        sample_stride: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        augment: bool = True,
        blur_sigma: float | None = None,
        sigma_jitter: float = 0.0,
        noise_std: float = 0.0,
        nodata: float | None = None,
        rgb_bands: list[int] | None = None,
        data_range: float | None = None,
        band_statistics: dict[str, list[float]] | None = None,
        stats_cache_dir: str | None = None,
        predict_sources: list[str] | str | None = None,
        tile: int = 256,
        overlap: int | None = None,
        output_dir: str = "runs/predictions",
        use_guides: bool = True,
        normalization: Normalization = "auto",
        reflectance_scale: float | None = None,
        gain_jitter: float = 0.0,
        offset_jitter: float = 0.0,
        brightness_jitter: float = 0.0,
    ) -> None:
        super().__init__()
        self.sources = [str(s) for s in ([sources] if isinstance(sources, str | os.PathLike) else sources)]
        self.target_band_list = [normalize_band_name(b) for b in _as_list(target_bands, "target_bands")]
        if not isinstance(guide_bands, Sequence) or isinstance(guide_bands, str) or not guide_bands:
            raise ValueError(f"data.guide_bands={guide_bands!r}: expected a non-empty list of band lists, finest group first, e.g. [[B02, B03, B04, B08]]")
        self.guide_band_lists = [[normalize_band_name(b) for b in _as_list(g, f"guide_bands[{i}]")] for i, g in enumerate(guide_bands)]
        seen: dict[str, str] = {}
        for label, names in [("target_bands", self.target_band_list)] + [(f"guide_bands[{i}]", g) for i, g in enumerate(self.guide_band_lists)]:
            for n in names:
                if n in seen:
                    raise ValueError(f"data.{label}: band {n} is asked for twice (also in data.{seen[n]}); each band may appear once")
                seen[n] = label
        for label, value in (("patch_size", patch_size), ("batch_size", batch_size), ("samples_per_epoch", samples_per_epoch)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{label}={value!r} must be an integer >= 1")
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_axis = split_axis
        self.split_order = list(split_order) if split_order is not None else ["train", "val", "test"]
        self.seed = seed
        self.num_workers = num_workers
        self.augment = augment
        self.nodata = nodata
        self._rgb_bands = list(rgb_bands) if rgb_bands is not None else None
        self._data_range = data_range
        self.band_statistics = band_statistics
        self.stats_cache_dir = stats_cache_dir
        self.predict_sources = predict_sources
        if tile < 1 or (overlap is not None and overlap < 0):
            raise ValueError(f"data.tile={tile} must be >= 1 and data.overlap={overlap} >= 0 (or null: measured)")
        self.tile, self.overlap = tile, overlap
        self.output_dir = output_dir
        self.use_guides = bool(use_guides)
        if normalization not in ("auto", "zscore", "reflectance"):
            raise ValueError(f"data.normalization={normalization!r}: expected 'auto', 'zscore' or 'reflectance'")
        if reflectance_scale is not None and not (math.isfinite(reflectance_scale) and reflectance_scale > 0):
            raise ValueError(f"data.reflectance_scale={reflectance_scale!r} must be a finite number > 0 (data units per network unit)")
        self._normalization = normalization
        self._reflectance_scale = reflectance_scale
        self.radiometry = RadiometricJitter(gain_jitter, offset_jitter, brightness_jitter)

        self.scene = self._open_scene(self.sources, "sources")
        factors = self.scene.factors  # pixels per target pixel, per group (target first)
        self._scale = max(factors[1:])
        self._guide_ratios = [self._scale // q for q in factors[1:]]
        if patch_size % self._scale:
            raise ValueError(
                f"data.patch_size={patch_size} must be a multiple of the scale {self._scale} (the target {self.target_band_list} "
                f"at {self.scene.groups[0].resolution:g} m over the finest guide at {self.scene.groups[0].resolution / self._scale:g} m)"
            )
        self.degradation = WaldDegradation(self._scale, blur_sigma, sigma_jitter, noise_std)
        self.margin = self.degradation.margin()  # target pixels (the target is the coarsest group, one pixel per pixel)
        self.window = patch_size + 2 * self.margin
        if self.window > min(self.scene.height, self.scene.width):
            raise ValueError(
                f"{self.scene.groups[0].grid.name}: the common extent of the band groups is {self.scene.height}x{self.scene.width} px "
                f"at the coarsest resolution ({self.scene.resolution:g} m), smaller than one patch of data.patch_size={patch_size} "
                f"px plus the blur margin of {self.margin} px on each side ({self.window} px)"
            )
        if sample_stride is None:
            sample_stride = max(1, patch_size // 4)
        if sample_stride < 1:
            raise ValueError(f"data.sample_stride={sample_stride} must be >= 1")
        self.sample_stride = int(sample_stride)
        self.split_gap = self.window if split_gap is None else int(split_gap)
        self.split_boxes = split_regions(
            self.scene.height, self.scene.width, self.window, val_fraction, test_fraction, self.split_gap,
            split_axis, name=self.scene.groups[0].grid.name, order=self.split_order,
        )
        self._check_rgb()
        self.datasets: dict[str, Dataset] = {}
        self._grid: CellGrid | None = None
        self._statistics: dict[str, Any] | None = None
        self._summary: dict[str, dict[str, float]] | None = None

    # ------------------------------------------------------------------ scene
    def _open_scene(self, sources: Sequence[str], label: str) -> MultiResolutionScene:
        names = self.target_band_list + [b for g in self.guide_band_lists for b in g]
        catalog = open_catalog(sources, self.nodata, names)
        where = ", ".join(str(s) for s in sources)

        def refs(bands: list[str], what: str) -> list[BandRef]:
            missing = [b for b in bands if b not in catalog]
            if missing:
                raise ValueError(f"{where}: data.{what} asks for band(s) {missing}, which data.{label} does not hold; available: {sorted(catalog)}")
            return [catalog[b] for b in bands]

        target = BandGroup(refs(self.target_band_list, "target_bands"), "target_bands")
        guides = [BandGroup(refs(g, f"guide_bands[{i}]"), f"guide_bands[{i}]") for i, g in enumerate(self.guide_band_lists)]
        for i, g in enumerate(guides):
            if g.resolution > target.resolution * (1 + 1e-6):
                raise ValueError(
                    f"{g.grid.name}: data.guide_bands[{i}]={g.names} is at {g.resolution:g} m, coarser than the target bands "
                    f"{target.names} at {target.resolution:g} m ({target.grid.name}); guides must be finer than (or as fine as) the target"
                )
            if i and g.resolution < guides[i - 1].resolution * (1 - 1e-6):
                raise ValueError(
                    f"data.guide_bands: list the groups finest first; group {i} {g.names} is at {g.resolution:g} m, finer than "
                    f"group {i - 1} {guides[i - 1].names} at {guides[i - 1].resolution:g} m"
                )
        if guides[0].resolution >= target.resolution * (1 - 1e-6):
            raise ValueError(
                f"data.guide_bands[0]={guides[0].names} is at {guides[0].resolution:g} m, not finer than the target bands at "
                f"{target.resolution:g} m; the finest guide sets the output grid, so it must be finer than the target"
            )
        return MultiResolutionScene([target, *guides])

    # ------------------------------------------------------------------ data properties
    @property
    def scale(self) -> int:
        """Output grid over input grid (2 for T2, 6 for S6); linked to the generator's ``scale``."""
        return self._scale

    @property
    def in_channels(self) -> int:
        return len(self.target_band_list)

    @property
    def out_channels(self) -> int:
        return len(self.target_band_list)

    @property
    def guide_channels(self) -> list[int]:
        """Bands per guide group the model receives, finest first (empty with ``use_guides=False``)."""
        return [len(g) for g in self.guide_band_lists] if self.use_guides else []

    @property
    def guide_ratios(self) -> list[int]:
        """Each guide's pixel over the output grid's pixel (1 for the finest guide); empty without guides."""
        return list(self._guide_ratios) if self.use_guides else []

    @property
    def degradation_spec(self) -> dict[str, int | float]:
        """The nominal degradation of the target group, ``{"scale": int, "sigma": float}``: Wald's ratio and
        its blur sigma in pixels of the target's own grid (DSen2: ``1 / scale``), without jitter and noise.

        At the training level the target's own grid is the output grid, so this is the operator that maps
        an output back onto the input (:class:`aerogan.degradation.GaussianBlockMean`).
        """
        return {"scale": int(self._scale), "sigma": float(self.degradation.sigma)}

    @property
    def target_in_input(self) -> list[int]:
        """The input holds the target bands (coarse), so the bicubic baseline upsamples all of them."""
        return list(range(self.out_channels))

    def _check_rgb(self) -> None:
        _ = self.rgb_bands

    @property
    def rgb_bands(self) -> list[int]:
        n = self.out_channels
        rgb = self._rgb_bands if self._rgb_bands is not None else [min(i, n - 1) for i in range(3)]
        if len(rgb) != 3 or any(not 0 <= b < n for b in rgb):
            raise ValueError(f"data.rgb_bands={rgb}: expected three indices into the {n} target bands {self.target_band_list}")
        return rgb

    def band_names(self) -> list[str]:
        """Every band used: the target bands, then each guide group's."""
        return self.target_band_list + [b for g in self.guide_band_lists for b in g]

    def input_band_names(self) -> list[str]:
        return list(self.target_band_list)

    def target_band_names(self) -> list[str]:
        return list(self.target_band_list)

    def guide_band_names(self) -> list[list[str]]:
        return [list(g) for g in self.guide_band_lists] if self.use_guides else []

    # ------------------------------------------------------------------ positions
    def cell_grid(self) -> CellGrid:
        """Validity of the scene on a lattice of ``sample_stride`` target pixels (any nodata in any group)."""
        if self._grid is None:
            scene, s = self.scene, self.sample_stride
            grid = CellGrid(scene.height, scene.width, s)
            rows = max(s, (1 << 18) // max(1, scene.width * max(scene.factors) ** 2) // s * s)
            for r in range(0, scene.height, rows):
                h = min(rows, scene.height - r)
                grid.mark_pixels(r, scene.invalid_coarse(r, h))
            if not grid.any_valid:
                raise ValueError(f"{scene.describe()}: the scene holds no valid pixel (all nodata; nodata={self.nodata})")
            self._grid = grid
        return self._grid

    def corners(self, split: str) -> np.ndarray:
        """(N, 2) window corners (target pixels) of ``split``: a lattice (train) or non-overlapping windows."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self.split_boxes:
            raise ValueError(f"{type(self).__name__}: no {split} data (data.{split}_fraction is 0)")
        grid = self.cell_grid()
        out = [grid.positions(b, self.window) if split == "train" else grid.grid_positions(b, self.window) for b in self.split_boxes[split]]
        pos = np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)
        if not len(pos):
            raise ValueError(
                f"{self.scene.groups[0].grid.name}: no {split} window of {self.window} px lies on valid pixels inside the {split} "
                f"block(s) {[tuple(b) for b in self.split_boxes[split]]} (row0, col0, row1, col1); lower data.patch_size or change the split"
            )
        return pos.astype(np.int64)

    # ------------------------------------------------------------------ datasets and loaders
    def _make_dataset(self, split: str) -> Dataset:
        return WindowDataset(self.scene, self.corners(split), self.window)

    def prediction_scenes(self) -> list[list[str] | str]:
        """The scenes ``aerogan predict`` turns into products: ``predict_sources`` (default ``sources``)."""
        return [list(self.sources)] if self.predict_sources is None else _predict_items(self.predict_sources)

    def product_path(self, scene: list[str] | str) -> Path:
        """Where the product of ``scene`` goes: ``output_dir/<name>_sr.tif``, the name shared by its files
        (``S2A_MSIL1C_..._T33UUB`` for ``..._10m.tif``, ``..._20m.tif``) or the product's own."""
        paths = [Path(str(p)) for p in (scene if isinstance(scene, list) else [scene])]
        stems = [p.name[: -len(".SAFE")] if p.name.upper().endswith(".SAFE") else p.stem for p in paths]
        name = os.path.commonprefix(stems).rstrip("_-. ") or stems[0]
        return Path(self.output_dir) / f"{name}_sr.tif"

    def product_options(self, scale: int) -> dict[str, Any]:
        """Keyword arguments of ``super_resolve_product`` for a model of ``scale``: ``nodata``, ``batch_size``,
        and ``tile``/``overlap`` converted from target pixels to output pixels (``overlap`` None: measured)."""
        overlap = None if self.overlap is None else self.overlap * scale
        return {"nodata": self.nodata, "tile": self.tile * scale, "overlap": overlap, "batch_size": self.batch_size}

    def setup(self, stage: str) -> None:
        # predict: nothing to build, predict_dataloader says where prediction happens
        splits = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": []}[stage]
        if stage == "fit" and "val" not in self.split_boxes:
            splits = ["train"]  # data.val_fraction 0: fit without validation (aerogan sharpen)
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = self._make_dataset(split)

    def _loader(self, split: str) -> DataLoader:
        if split not in self.datasets:
            self.datasets[split] = self._make_dataset(split)
        ds = self.datasets[split]
        common: dict[str, Any] = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0, "batch_size": self.batch_size}
        if split == "train":
            sampler = RandomPatchSampler(len(ds), self.samples_per_epoch, self.seed)
            return DataLoader(ds, sampler=sampler, drop_last=self.samples_per_epoch > self.batch_size, **common)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(ds, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)
            return DataLoader(ds, sampler=sampler, **common)
        return DataLoader(ds, shuffle=False, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val") if "val" in self.split_boxes else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Refused: multi-resolution scenes are predicted whole, product by product, outside the Trainer."""
        raise RuntimeError(
            f"{type(self).__name__} has no predict loader: predict multi-resolution scenes with `aerogan predict "
            "--ckpt_path CKPT` (one product per data.predict_sources scene, see prediction_scenes) or `aerogan product`, "
            "or call aerogan.prediction.super_resolve_product"
        )

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Wald pairs on the batch's device (augmented and radiometrically jittered in training)."""
        trainer = getattr(self, "trainer", None)
        training = trainer is not None and trainer.training
        return self.wald_batch(batch["image"], list(batch["guide_images"]), augment=training and self.augment, randomize=training)

    def wald_batch(self, image: Tensor, guide_images: Sequence[Tensor], augment: bool = False, randomize: bool = False) -> dict[str, Any]:
        """``{"input", "guides", "target"}`` from windows of every group read with the blur margin.

        ``image`` is the target group (B, C_t, w, w) and ``guide_images[k]`` the guide (B, C_k, w q_k, w q_k),
        with ``w = patch_size + 2 margin``; every group is degraded by the scale, the margin cropped.
        """
        groups = [image, *guide_images]
        if augment:
            groups = random_dihedral(groups)
        if randomize:
            groups = self.radiometry(groups)
        m = self.margin
        factors = self.scene.factors
        target = groups[0][..., m : groups[0].shape[-2] - m, m : groups[0].shape[-1] - m] if m else groups[0]
        degraded = [self.degradation(g, margin=m * q, randomize=randomize) for g, q in zip(groups, factors, strict=True)]
        guides = degraded[1:] if self.use_guides else []
        return {"input": degraded[0], "guides": guides, "target": target.contiguous()}

    # ------------------------------------------------------------------ statistics
    def _band_moments(self, ref: BandRef) -> tuple[float, float, float]:
        entry = band_sums(ref.file, self.stats_cache_dir)
        mean, std, hi = combine_sums([entry], [ref.index])
        return float(mean[0]) + ref.offset, float(std[0]), float(hi[0]) + ref.offset

    def _group_stats(self, group: BandGroup) -> tuple[Tensor, Tensor]:
        means, stds = [], []
        for ref in group.refs:
            if self.band_statistics is not None:
                pair = self.band_statistics.get(ref.name)
                if pair is None or len(pair) != 2:
                    raise ValueError(f"data.band_statistics needs [mean, std] for band {ref.name}; got {pair!r}")
                mean, std = float(pair[0]), float(pair[1])
            else:
                mean, std, _ = self._band_moments(ref)
            if not (math.isfinite(mean) and math.isfinite(std)):
                raise ValueError(f"{ref.file.name}: band {ref.name} has non-finite statistics (mean {mean}, std {std})")
            means.append(mean)
            stds.append(std if std > 0 else 1.0)
        return torch.tensor(means, dtype=torch.float32), torch.tensor(stds, dtype=torch.float32)

    @property
    def normalization(self) -> dict[str, Any]:
        """The resolved normalisation: ``{"kind": "zscore"}`` or ``{"kind": "reflectance", "scale": s}``."""
        kind = self._normalization
        if kind == "auto":
            kind = "reflectance" if all(b in S2_BANDS for b in self.band_names()) else "zscore"
        if kind == "zscore":
            return {"kind": "zscore"}
        scale = self._reflectance_scale
        if scale is None:
            floats = all(f.dtype.startswith("float") for g in self.scene.groups for f in g.files)
            scale = 0.2 if floats and self.data_range <= 1.0 + 1e-6 else DN_REFLECTANCE_SCALE
        return {"kind": "reflectance", "scale": float(scale)}

    def statistics(self) -> dict[str, Any]:
        """Per-band normalisation (see ``normalization``) of the target bands and every guide group.

        Returns ``input_mean``, ``input_std``, ``target_mean``, ``target_std`` (C_t,), ``guide_mean``,
        ``guide_std``: lists with one (C_k,) tensor per guide group, and ``normalization`` (what they are).
        ``zscore``: whole files, valid pixels, offsets applied, cached beside the data; ``reflectance``:
        mean 0 and std the fixed scale for every band.
        """
        if self._statistics is None:
            norm = self.normalization
            groups = [self.scene.groups[0]] + (list(self.scene.groups[1:]) if self.use_guides else [])
            if norm["kind"] == "reflectance":
                pairs = [(torch.zeros(len(g.refs)), torch.full((len(g.refs),), norm["scale"])) for g in groups]
            else:
                pairs = [self._group_stats(g) for g in groups]
            (t_mean, t_std), guides = pairs[0], pairs[1:]
            self._statistics = {
                "input_mean": t_mean, "input_std": t_std, "target_mean": t_mean.clone(), "target_std": t_std.clone(),
                "guide_mean": [g[0] for g in guides], "guide_std": [g[1] for g in guides], "normalization": norm,
            }
        return self._statistics

    def input_summary(self) -> dict[str, dict[str, float]]:
        """Per band (target and guides), the distribution of the training block(s) at native resolution:
        mean, std and a few percentiles (:func:`datamodules.band_summary.summarize_scene`). Models store
        it, and every prediction compares its scene with it (the domain-shift guard)."""
        if self._summary is None:
            boxes = [tuple(int(v) for v in b) for b in self.split_boxes["train"]]
            groups = list(range(len(self.scene.groups))) if self.use_guides else [0]
            summary = summarize_scene(self.scene, groups=groups, boxes=boxes)
            self._summary = {name: s.to_dict() for name, s in summary.items()}
        return self._summary

    @property
    def data_range(self) -> float:
        """Peak for PSNR/SSIM: ``data_range``, else 1.0 for reflectance in [0, 1], else the largest target value."""
        if self._data_range is not None:
            return float(self._data_range)
        group = self.scene.groups[0]
        peak = max(self._band_moments(ref)[2] for ref in group.refs)
        if group.grid.dtype.startswith("float") and peak <= 1.0 + 1e-6:
            return 1.0
        return peak if math.isfinite(peak) and peak > 0 else 1.0


def _as_list(value: Any, label: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"data.{label}={value!r}: expected a non-empty list of band names, e.g. [B05, B06]")
    return [str(v) for v in value]


def _predict_items(value: list[str] | str) -> list[Any]:
    """Prediction scenes: one product/item/raster set per entry (a list entry = the group rasters of one scene)."""
    items = [value] if isinstance(value, str | Path) else list(value)
    # a flat list of rasters is one scene (one file per group), like data.sources
    if all(isinstance(i, str | Path) for i in items) and not any(str(i).lower().endswith((".safe", ".zip", ".json")) for i in items):
        return [list(items)]
    return items
