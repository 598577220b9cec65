"""Seeded synthetic multispectral scenes: the embedded default data (no download needed).

A scene is a land-cover map (Voronoi fields of crops, forest, bare soil and urban blocks, a water
body, a few roads) rendered through per-class spectral signatures at the bands' centre wavelengths,
with per-field brightness, multi-scale texture and sensor noise. The signatures follow the usual
shapes (vegetation red edge, water absorbing in the NIR and SWIR, soil rising towards the SWIR), so
band-to-band relations look like those of real optical sensors. Values are reflectance in [0, 1].
Everything is drawn from one ``torch.Generator``: the same seed gives the same scenes on every
machine and every DDP rank.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from kornia.filters import gaussian_blur2d
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.super_resolution import SuperResolutionDataModule

#: Sentinel-2 band centres (µm), B01..B12 without B10, used when 13 or 12 bands are asked for.
SENTINEL2_WAVELENGTHS = [0.443, 0.490, 0.560, 0.665, 0.705, 0.740, 0.783, 0.842, 0.865, 0.945, 1.375, 1.610, 2.190]

# Knots (µm) and reflectance of each land-cover class; interpolated at the band centres.
_KNOTS = [0.44, 0.49, 0.56, 0.665, 0.70, 0.74, 0.78, 0.84, 0.94, 1.375, 1.61, 2.19]
_SIGNATURES = {
    "water": [0.080, 0.075, 0.060, 0.035, 0.030, 0.025, 0.020, 0.015, 0.010, 0.005, 0.005, 0.003],
    "crop": [0.040, 0.050, 0.100, 0.050, 0.120, 0.300, 0.420, 0.450, 0.430, 0.010, 0.250, 0.120],
    "forest": [0.030, 0.035, 0.060, 0.030, 0.080, 0.220, 0.300, 0.320, 0.310, 0.008, 0.160, 0.070],
    "soil": [0.090, 0.110, 0.150, 0.200, 0.220, 0.240, 0.250, 0.270, 0.280, 0.015, 0.330, 0.300],
    "urban": [0.140, 0.150, 0.170, 0.190, 0.195, 0.200, 0.205, 0.210, 0.215, 0.012, 0.240, 0.220],
    "road": [0.110, 0.115, 0.120, 0.125, 0.128, 0.130, 0.132, 0.135, 0.138, 0.010, 0.150, 0.140],
}
_FIELD_CLASSES = ["crop", "forest", "soil", "urban", "crop"]


def band_wavelengths(num_bands: int) -> list[float]:
    """Centre wavelengths (µm) for ``num_bands`` bands: Sentinel-2's for 13, else B, G, R, NIR, SWIR..."""
    if num_bands == 13:
        return list(SENTINEL2_WAVELENGTHS)
    base = [0.490, 0.560, 0.665, 0.842, 1.610, 2.190]
    if num_bands <= len(base):
        return base[:num_bands]
    return list(np.linspace(0.45, 2.2, num_bands))


def class_signatures(num_bands: int) -> Tensor:
    """(num_classes, num_bands) reflectance of each class in ``_SIGNATURES`` order."""
    wl = band_wavelengths(num_bands)
    rows = [np.interp(wl, _KNOTS, _SIGNATURES[name]) for name in _SIGNATURES]
    return torch.tensor(np.array(rows), dtype=torch.float32)


def _smooth_noise(shape: tuple[int, int], sigma: float, gen: torch.Generator) -> Tensor:
    """Gaussian-filtered white noise with unit std, shape (H, W)."""
    noise = torch.randn((1, 1, *shape), generator=gen)
    k = 2 * math.ceil(3 * sigma) + 1
    out = gaussian_blur2d(noise, (k, k), (sigma, sigma), border_type="reflect")[0, 0]
    return out / out.std().clamp_min(1e-8)


def generate_scene(num_bands: int, size: int, seed: int, noise_std: float = 0.003) -> Tensor:
    """One synthetic scene, (num_bands, size, size) float32 reflectance, fully determined by ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    names = list(_SIGNATURES)
    sig = class_signatures(num_bands)

    # Fields: Voronoi cells with a class and a brightness each, edges jittered by low-frequency noise.
    num_fields = int(torch.randint(12, 30, (1,), generator=gen))
    centres = torch.rand(num_fields, 2, generator=gen) * size
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    warp = 6.0 * torch.stack([_smooth_noise((size, size), size / 16, gen), _smooth_noise((size, size), size / 16, gen)])
    pts = torch.stack([yy + warp[0], xx + warp[1]], -1).reshape(-1, 2)
    field = torch.cdist(pts, centres).argmin(1).reshape(size, size)
    field_class = torch.tensor([names.index(_FIELD_CLASSES[int(i)]) for i in torch.randint(0, len(_FIELD_CLASSES), (num_fields,), generator=gen)])
    field_gain = 0.8 + 0.4 * torch.rand(num_fields, generator=gen)
    label = field_class[field]
    gain = field_gain[field]

    # Water: a smooth blob (lake or river bend).
    water = _smooth_noise((size, size), size / 10, gen) > 1.1
    label = torch.where(water, names.index("water"), label)
    gain = torch.where(water, torch.ones_like(gain), gain)

    # Roads: a few straight lines, 1-3 px wide.
    for _ in range(int(torch.randint(1, 4, (1,), generator=gen))):
        p = torch.rand(2, generator=gen) * size
        theta = float(torch.rand(1, generator=gen)) * math.pi
        width = 0.5 + float(torch.rand(1, generator=gen)) * 1.0
        dist = ((yy - p[0]) * math.cos(theta) - (xx - p[1]) * math.sin(theta)).abs()
        road = (dist < width) & ~water
        label = torch.where(road, names.index("road"), label)
        gain = torch.where(road, torch.ones_like(gain), gain)

    image = sig[label].permute(2, 0, 1) * gain  # (C, H, W)
    # Texture: within-field variation at two scales, stronger in the NIR for vegetation-like rows.
    texture = 0.06 * _smooth_noise((size, size), 1.0, gen) + 0.04 * _smooth_noise((size, size), 4.0, gen)
    image = image * (1.0 + texture)
    image = image + noise_std * torch.randn(image.shape, generator=gen)
    return image.clamp(0.0, 1.0).float()


class SyntheticScenes(Dataset):
    """HR patches cut from a fixed set of synthetic scenes.

    Training samples are random crops (position drawn from ``seed`` and the index, so an epoch is
    reproducible); evaluation samples are a fixed, non-overlapping grid of crops.
    """

    def __init__(self, scenes: Tensor, patch_size: int, num_samples: int | None, seed: int) -> None:
        self.scenes = scenes
        self.patch_size = patch_size
        self.seed = seed
        n, _, h, w = scenes.shape
        if patch_size > min(h, w):
            raise ValueError(f"data.patch_size={patch_size} is larger than the scenes ({h}x{w})")
        self.random = num_samples is not None
        if self.random:
            self.num_samples = int(num_samples)
        else:
            per_row, per_col = h // patch_size, w // patch_size
            self.grid = [(s, r * patch_size, c * patch_size) for s in range(n) for r in range(per_row) for c in range(per_col)]
            self.num_samples = len(self.grid)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        p = self.patch_size
        if self.random:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
            n, _, h, w = self.scenes.shape
            s = int(torch.randint(0, n, (1,), generator=gen))
            r = int(torch.randint(0, h - p + 1, (1,), generator=gen))
            c = int(torch.randint(0, w - p + 1, (1,), generator=gen))
        else:
            s, r, c = self.grid[index]
        return {"image": self.scenes[s, :, r : r + p, c : c + p]}


class SyntheticDataModule(SuperResolutionDataModule):
    """The embedded default data: seeded synthetic multispectral scenes, split by scene.

    Train, validation and test use disjoint scenes (different seeds), so no patch is shared.

    Args:
        num_bands: bands per scene (any count; 13 uses Sentinel-2 band centres).
        scene_size: side of each generated scene in HR pixels.
        num_train_scenes / num_val_scenes / num_test_scenes: scenes per split.
        samples_per_epoch: random training crops per epoch.
        seed: seed of everything generated.
        **kwargs: the arguments of :class:`SuperResolutionDataModule` (scale, patch_size, bands, batch_size, ...).
    """

    def __init__(
        self,
        num_bands: int = 4,
        scene_size: int = 192,
        num_train_scenes: int = 8,
        num_val_scenes: int = 2,
        num_test_scenes: int = 2,
        samples_per_epoch: int = 512,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if num_bands < 1:
            raise ValueError(f"data.num_bands must be >= 1, got {num_bands}")
        # jsonargparse follows **kwargs into SuperResolutionDataModule.__init__ (scale, patch_size, bands, ...)
        super().__init__(**kwargs)
        if self.patch_size > scene_size:
            raise ValueError(f"data.patch_size={self.patch_size} is larger than data.scene_size={scene_size}")
        self.num_bands = num_bands
        self.scene_size = scene_size
        self.num_scenes = {"train": num_train_scenes, "val": num_val_scenes, "test": num_test_scenes, "predict": num_test_scenes}
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.check_bands()

    def _num_bands_available(self) -> int:
        return self.num_bands

    def band_names(self) -> list[str]:
        return [f"{w:.3f}um" for w in band_wavelengths(self.num_bands)]

    def scenes(self, split: str) -> Tensor:
        """All scenes of ``split`` as one (N, C, S, S) tensor."""
        offset = {"train": 0, "val": 10_000, "test": 20_000, "predict": 20_000}[split]
        n = self.num_scenes[split]
        if n < 1:
            raise ValueError(f"data.num_{split}_scenes must be >= 1, got {n}")
        return torch.stack([generate_scene(self.num_bands, self.scene_size, self.seed * 100_000 + offset + i) for i in range(n)])

    def _make_dataset(self, split: str) -> Dataset:
        num = self.samples_per_epoch if split == "train" else None
        return SyntheticScenes(self.scenes(split), self.patch_size, num, seed=self.seed + (1 if split == "train" else 0))
