"""Wald's protocol for multi-resolution scenes: every band group degraded by the task's ratio.

To train a network that brings coarse bands to the resolution of fine ones, where no truth exists,
all groups are degraded by the same ratio ``r`` and the network learns one level down, where the
original coarse bands are the truth (Wald et al. 1997; DSen2, Lanaras et al. 2018). DSen2's recipe
(``downPixelAggr``): a Gaussian blur of sigma ``1 / r`` pixels of the group being degraded (scipy's
``gaussian_filter``, truncated at 4 sigma), then an ``r x r`` block mean. The deterministic core is the
project's one operator (:func:`aerogan.degradation.gaussian_block_mean`, kornia's ``gaussian_blur2d``
with the same discrete kernel), so it runs on the batch's device and the model's consistency metric
degrades its outputs the same way; at the image border kornia reflects without repeating the edge pixel
(scipy repeats it), which only touches the outer ``4 sigma`` pixels. Training patches are read with a
margin at least that wide and cropped after the blur, so their degraded values equal those of the
degraded whole scene. This module keeps the training-time randomisation (sigma jitter, noise).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aerogan.degradation import blur_radius, check_image, gaussian_block_mean


def dsen2_sigma(ratio: int) -> float:
    """DSen2's blur: sigma ``1 / ratio`` in pixels of the group being degraded."""
    return 1.0 / ratio


def degrade_group(x: Tensor, ratio: int, sigma: float | Tensor | None = None, margin: int = 0) -> Tensor:
    """Degrade one band group ``x`` (B, C, H, W) by ``ratio``: Gaussian blur, crop ``margin``, block mean.

    Args:
        x: the group in physical units, on any device.
        ratio: integer degradation factor (1 = unchanged, apart from the crop).
        sigma: Gaussian sigma in pixels of ``x`` (a float, or a (B,) tensor for one sigma per sample);
            default DSen2's ``1 / ratio``; 0 = block mean only.
        margin: pixels on each side that only feed the blur and are cropped before the block mean.

    Returns:
        (B, C, (H - 2 margin) / ratio, (W - 2 margin) / ratio), same dtype and device.
    """
    check_image(x, ratio, margin, label="degrade_group", name="ratio")
    if ratio == 1 and margin == 0:
        return x
    if sigma is None:
        sigma = dsen2_sigma(ratio)
    if not isinstance(sigma, Tensor) and sigma < 0:
        raise ValueError(f"degrade_group: sigma must be >= 0, got {sigma}")
    return gaussian_block_mean(x, ratio, sigma, margin=margin)


class WaldDegradation(nn.Module):
    """The configured group degradation: DSen2's blur by default, optional training-time randomisation.

    Args:
        ratio: the task's ratio (2 for 20 m -> 10 m, 6 for 60 m -> 10 m).
        blur_sigma: Gaussian sigma in pixels of the group being degraded (default: DSen2's ``1 / ratio``).
        sigma_jitter: relative per-sample jitter of sigma during training (0 = fixed blur).
        noise_std: std of additive Gaussian noise on degraded training groups, in data units.
    """

    def __init__(self, ratio: int, blur_sigma: float | None = None, sigma_jitter: float = 0.0, noise_std: float = 0.0) -> None:
        super().__init__()
        if not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f"ratio must be an integer >= 1, got {ratio!r}")
        for label, value in (("blur_sigma", blur_sigma or 0.0), ("sigma_jitter", sigma_jitter), ("noise_std", noise_std)):
            if value < 0:
                raise ValueError(f"data.{label}={value} must be >= 0")
        if sigma_jitter >= 1:
            raise ValueError(f"data.sigma_jitter={sigma_jitter} must be < 1 (relative jitter of the blur)")
        self.ratio = ratio
        self.sigma = dsen2_sigma(ratio) if blur_sigma is None else float(blur_sigma)
        self.sigma_jitter = sigma_jitter
        self.noise_std = noise_std

    def margin(self) -> int:
        """Pixels (of the group being degraded) that the blur reaches beyond a patch."""
        return blur_radius(self.sigma * (1.0 + self.sigma_jitter)) if self.ratio > 1 else 0

    def forward(self, x: Tensor, margin: int = 0, randomize: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Degrade ``x`` (B, C, H, W) read with ``margin`` extra pixels on each side."""
        sigma: float | Tensor = self.sigma
        if randomize and self.sigma_jitter > 0 and self.sigma > 0:
            u = torch.rand(x.shape[0], generator=generator).to(x)
            sigma = self.sigma * (1.0 + self.sigma_jitter * (2 * u - 1))
        y = degrade_group(x, self.ratio, sigma, margin)
        if randomize and self.noise_std > 0:
            y = y + self.noise_std * torch.randn(y.shape, generator=generator).to(y)
        return y
