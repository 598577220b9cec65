"""Base datamodule for super-resolution and band synthesis on multispectral imagery.

Datasets yield samples in physical units (reflectance, DN):

* ``{"image": (C_all, H, W)}``: one HR image holding every band; the input bands are degraded on the
  fly (see :mod:`datamodules.degradation`) after HR-only augmentation, the target bands kept at HR.
* ``{"input": (C_in, h, w), "target": (C_out, H, W)}``: an already paired sample (two sensors);
  both get the same flips and rotations.

Batches reaching the LightningModule are ``{"input": ..., "target": ...}`` (prediction batches may
lack ``"target"``). Normalisation is the model's job (it stores the statistics in its checkpoint), so
metrics are computed on the physical values that this module delivers.

Subclasses implement :meth:`_num_bands_available` and :meth:`_make_dataset` (checked when a subclass is
built: :class:`lightning.LightningDataModule` is no :class:`abc.ABC`, so nothing else would). The module
satisfies :class:`datamodules.contract.SuperResolutionData` with no guide groups, no input summary and
prediction through the Trainer's predict loop.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.augmentation import random_dihedral
from datamodules.degradation import Degradation
from datamodules.sampling import EpochShuffleSampler


class SuperResolutionDataModule(L.LightningDataModule):
    """Band selection, HR augmentation, LR synthesis, band statistics and loaders.

    Args:
        scale: integer HR/LR resolution ratio (1 = band synthesis on one grid).
        patch_size: HR patch side in pixels; a multiple of ``scale``.
        input_bands: indices of the bands fed to the network (default: all).
        target_bands: indices of the bands to predict (default: the input bands).
        batch_size: training batch size (validation and test use the same).
        num_workers: DataLoader workers.
        augment: random flips and 90-degree rotations of training samples.
        blur_sigma: degradation blur, in LR pixels (see :class:`Degradation`).
        sigma_jitter: relative per-sample blur jitter during training.
        noise_std: additive noise on training LR inputs, in data units.
        rgb_bands: three indices into ``target_bands`` used for colour composites (default: first three).
        data_range: the fixed peak value for PSNR/SSIM in data units (default: the dataset's own).
    """

    def __init__(
        self,
        scale: int = 2,
        patch_size: int = 64,
        input_bands: list[int] | None = None,
        target_bands: list[int] | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        augment: bool = True,
        blur_sigma: float = 0.5,
        sigma_jitter: float = 0.0,
        noise_std: float = 0.0,
        rgb_bands: list[int] | None = None,
        data_range: float | None = None,
    ) -> None:
        unimplemented = abstract_members(type(self))
        if unimplemented:
            raise TypeError(
                f"{type(self).__qualname__} does not implement {', '.join(unimplemented)}: every subclass of "
                f"datamodules.SuperResolutionDataModule must define them (see its docstring)"
            )
        super().__init__()
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"data.scale must be an integer >= 1, got {scale!r}")
        if patch_size < scale or patch_size % scale:
            raise ValueError(
                f"data.patch_size={patch_size} must be a positive multiple of data.scale={scale} "
                f"(allowed: {scale}, {2 * scale}, {3 * scale}, ...)"
            )
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self._scale = scale
        self.patch_size = patch_size
        self._input_bands = list(input_bands) if input_bands is not None else None
        self._target_bands = list(target_bands) if target_bands is not None else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.degradation = Degradation(scale, blur_sigma, sigma_jitter, noise_std)
        self._rgb_bands = list(rgb_bands) if rgb_bands is not None else None
        self._data_range = data_range
        self.hr_augmentation = K.AugmentationSequential(
            K.RandomHorizontalFlip(),
            K.RandomVerticalFlip(),
            K.RandomRotation90(times=(0, 3), resample="nearest", p=1.0),
        )
        self.datasets: dict[str, Dataset] = {}
        self._statistics: dict[str, Tensor] | None = None

    # ----------------------------------------------------------------- for subclasses
    @abstractmethod
    def _num_bands_available(self) -> int:
        """Number of bands in the source data (the valid range of band indices)."""

    @abstractmethod
    def _make_dataset(self, split: str) -> Dataset:
        """Build the dataset of ``split`` in {"train", "val", "test", "predict"}."""

    def band_names(self) -> list[str]:
        """Names of all available bands (subclasses override when the data carries names)."""
        return [f"B{i}" for i in range(self._num_bands_available())]

    def default_data_range(self) -> float:
        """Peak value of the data's units, for PSNR and SSIM (reflectance: 1.0)."""
        return 1.0

    # ----------------------------------------------------------------- band bookkeeping
    def _check_bands(self, bands: Sequence[int], name: str) -> None:
        n = self._num_bands_available()
        bad = [b for b in bands if not 0 <= b < n]
        if bad or not bands:
            raise ValueError(f"data.{name}={list(bands)}: band indices must lie in 0..{n - 1} ({n} bands available)")

    def check_bands(self) -> None:
        """Validate input, target and composite bands now (call once the band count is known)."""
        _ = (self.input_bands, self.target_bands, self.rgb_bands)

    @property
    def input_bands(self) -> list[int]:
        bands = self._input_bands if self._input_bands is not None else list(range(self._num_bands_available()))
        self._check_bands(bands, "input_bands")
        return bands

    @property
    def target_bands(self) -> list[int]:
        bands = self._target_bands if self._target_bands is not None else self.input_bands
        self._check_bands(bands, "target_bands")
        return bands

    @property
    def in_channels(self) -> int:
        """Number of input bands (linked to the generator's ``in_channels``)."""
        return len(self.input_bands)

    @property
    def out_channels(self) -> int:
        """Number of target bands (linked to the generator's ``out_channels``)."""
        return len(self.target_bands)

    @property
    def scale(self) -> int:
        """HR/LR resolution ratio (linked to the generator's ``scale``)."""
        return self._scale

    @property
    def target_in_input(self) -> list[int] | None:
        """Positions of the target bands within the input, if all are there (for the bicubic baseline)."""
        inputs = self.input_bands
        if all(b in inputs for b in self.target_bands):
            return [inputs.index(b) for b in self.target_bands]
        return None

    @property
    def rgb_bands(self) -> list[int]:
        """Three positions in the target bands for colour composites."""
        n = self.out_channels
        rgb = self._rgb_bands if self._rgb_bands is not None else [min(i, n - 1) for i in range(3)]
        if len(rgb) != 3 or any(not 0 <= b < n for b in rgb):
            raise ValueError(f"data.rgb_bands={rgb}: expected three indices into the {n} target bands")
        return rgb

    @property
    def data_range(self) -> float:
        return float(self._data_range) if self._data_range is not None else self.default_data_range()

    @property
    def degradation_spec(self) -> dict[str, int | float]:
        """The nominal degradation LR = D(HR): ``{"scale": int, "sigma": float}``, sigma in HR pixels.

        The deterministic part of :attr:`degradation` (``blur_sigma * scale``; 0 at scale 1, where nothing is
        degraded), without the training-time jitter and noise. The model stores it in its checkpoint and
        degrades its outputs with it (:class:`aerogan.degradation.GaussianBlockMean`) to score their
        consistency with the input. For paired sensors it is the assumed relation between the two.
        """
        return {"scale": int(self.scale), "sigma": float(self.degradation.operator.sigma)}

    def input_band_names(self) -> list[str]:
        """Names of the input bands, in input order (from :meth:`band_names`)."""
        names = self.band_names()
        return [names[b] for b in self.input_bands]

    def target_band_names(self) -> list[str]:
        """Names of the target bands, in output order (from :meth:`band_names`)."""
        names = self.band_names()
        return [names[b] for b in self.target_bands]

    # ----------------------------------------------------------------- no guide groups (see MultiResolutionDataModule)
    @property
    def guide_channels(self) -> list[int]:
        """No guide groups: the model takes the input bands alone."""
        return []

    @property
    def guide_ratios(self) -> list[int]:
        return []

    def guide_band_names(self) -> list[list[str]]:
        return []

    def input_summary(self) -> dict[str, dict[str, float]]:
        """No summary of the training inputs (the domain-shift guard covers multi-resolution products only)."""
        return {}

    # ----------------------------------------------------------------- prediction
    def prediction_scenes(self) -> list[Any] | None:
        """None: ``aerogan predict`` runs the Trainer's predict loop on :meth:`predict_dataloader`."""
        return None

    def product_path(self, scene: Any) -> Path:
        raise NotImplementedError(self._no_products())

    def product_options(self, scale: int) -> dict[str, Any]:
        raise NotImplementedError(self._no_products())

    def _no_products(self) -> str:
        return (
            f"{type(self).__name__} writes no products: its prediction_scenes() is None, so aerogan predict runs the "
            "Trainer's predict loop (products are for multi-resolution data, datamodules.MultiResolutionDataModule)"
        )

    # ----------------------------------------------------------------- Lightning hooks
    def setup(self, stage: str) -> None:
        splits = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["predict"]}[stage]
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = self._make_dataset(split)
                if len(self.datasets[split]) == 0:
                    raise ValueError(f"the {split} split of {type(self).__name__} is empty")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test", "predict": "predict"}[split])
        dataset = self.datasets[split]
        # The order and the workers' base seed come from the run's seed (torch.initial_seed(), set by
        # seed_everything) and the epoch, never from draws on the global generator: see sampling.py.
        seed = torch.initial_seed() % (2**31)
        sampler: Sampler[int] | None = EpochShuffleSampler(len(dataset), seed) if shuffle else None
        trainer = self.trainer
        if not shuffle and trainer is not None and trainer.world_size > 1:
            # Evaluation shards without the padding DistributedSampler adds (it repeats samples to
            # even out the ranks, which biases metrics): each sample is seen exactly once.
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(dataset) > self.batch_size,
            generator=torch.Generator().manual_seed(seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    def on_after_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict[str, Tensor]:
        """Augment (training only), then synthesise LR from HR on the batch's device."""
        training = self.trainer is not None and self.trainer.training
        if "image" in batch:
            return self.make_pair(batch["image"], augment=training and self.augment, randomize=training)
        if training and self.augment and "target" in batch:
            batch = dict(batch)
            batch["input"], batch["target"] = random_dihedral([batch["input"], batch["target"]])
        return batch

    def make_pair(self, image: Tensor, augment: bool = False, randomize: bool = False) -> dict[str, Tensor]:
        """Turn HR images (B, C_all, H, W) into ``{"input": LR, "target": HR}``."""
        if augment:
            image = self.hr_augmentation(image)
        target = image[:, self.target_bands]
        lr = self.degradation(image[:, self.input_bands], randomize=randomize)
        return {"input": lr, "target": target}

    # ----------------------------------------------------------------- statistics
    def statistics(self) -> dict[str, Tensor]:
        """Per-band mean and std of the input and target bands over the training split (cached).

        Returns ``{"input_mean", "input_std", "target_mean", "target_std"}`` as float32 (C,) tensors in
        data units; the model uses them for normalisation and stores them in its checkpoint.
        """
        if self._statistics is None:
            mean, std = self._band_statistics()
            std = torch.where(std > 0, std, torch.ones_like(std))
            self._statistics = {
                "input_mean": mean[self.input_bands],
                "input_std": std[self.input_bands],
                "target_mean": mean[self.target_bands],
                "target_std": std[self.target_bands],
            }
        return self._statistics

    def _band_statistics(self, max_samples: int = 256) -> tuple[Tensor, Tensor]:
        """Mean and std of every band over (up to ``max_samples``) training samples."""
        if "train" not in self.datasets:
            self.datasets["train"] = self._make_dataset("train")
        ds = self.datasets["train"]
        if "image" not in ds[0]:
            raise NotImplementedError(f"{type(self).__name__} must override _band_statistics for paired samples")
        step = max(1, len(ds) // max_samples)
        total = None
        total_sq = None
        count = 0
        for i in range(0, len(ds), step):
            sample = ds[i]
            x = sample["image"].double().flatten(1)
            total = x.sum(1) if total is None else total + x.sum(1)
            total_sq = (x * x).sum(1) if total_sq is None else total_sq + (x * x).sum(1)
            count += x.shape[1]
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0)
        return mean.float(), var.sqrt().float()


def abstract_members(cls: type) -> list[str]:
    """Names of the abstract methods (and properties) ``cls`` leaves unimplemented, sorted."""
    return sorted(n for n in dir(cls) if getattr(inspect.getattr_static(cls, n), "__isabstractmethod__", False))
