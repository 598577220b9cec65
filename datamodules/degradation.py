"""The degradation that makes a low-resolution image from a high-resolution one, for the scene datamodules.

Protocol (Wald-style, as in DSen2): each band is blurred with a Gaussian of standard deviation
``sigma = blur_sigma * scale`` high-resolution pixels (a sensor MTF stand-in), then decimated by an
``scale x scale`` block mean. The deterministic core is the project's one operator,
:class:`aerogan.degradation.GaussianBlockMean`, which the model also uses to check its outputs against
their inputs. This module adds the optional training-time randomisation: a per-sample jitter of sigma
and additive Gaussian noise. Scale 1 (band synthesis) is the identity. It runs on the batch's device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aerogan.degradation import GaussianBlockMean, blur_radius, gaussian_block_mean


class Degradation(nn.Module):
    """Blur + block-mean decimation, applied per band, on the batch's device.

    Args:
        scale: integer resolution ratio between HR and LR (1 = identity).
        blur_sigma: Gaussian sigma in units of the LR pixel (``sigma_hr = blur_sigma * scale``).
        sigma_jitter: relative per-sample jitter of sigma during training (0 = fixed blur).
        noise_std: std of additive Gaussian noise during training, in the data's units.
    """

    def __init__(self, scale: int, blur_sigma: float = 0.5, sigma_jitter: float = 0.0, noise_std: float = 0.0) -> None:
        super().__init__()
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
        if blur_sigma < 0 or sigma_jitter < 0 or noise_std < 0:
            raise ValueError(
                f"blur_sigma, sigma_jitter and noise_std must be >= 0, got {blur_sigma}, {sigma_jitter}, {noise_std}"
            )
        self.scale = scale
        self.blur_sigma = blur_sigma
        self.sigma_jitter = sigma_jitter
        self.noise_std = noise_std
        # the nominal operator: scale 1 degrades nothing, so its sigma is 0
        self.operator = GaussianBlockMean(scale, float(blur_sigma) * scale if scale > 1 else 0.0)

    def kernel_size(self) -> int:
        """Odd kernel size covering the largest sigma that can be drawn (radius ``int(4 sigma + 0.5)``)."""
        return 2 * blur_radius(self.operator.sigma * (1.0 + self.sigma_jitter)) + 1

    def forward(self, hr: Tensor, randomize: bool = False) -> Tensor:
        """Degrade ``hr`` (B, C, H, W); H and W must be multiples of ``scale``."""
        if self.scale == 1:
            return hr
        b, _, h, w = hr.shape
        if h % self.scale or w % self.scale:
            raise ValueError(f"image size {h}x{w} is not a multiple of scale={self.scale}")
        sigma = self.operator.sigma
        if randomize and self.sigma_jitter > 0 and sigma > 0:
            jitter = 1.0 + self.sigma_jitter * (2 * torch.rand(b, 1, device=hr.device, dtype=hr.dtype) - 1)
            x = gaussian_block_mean(hr, self.scale, sigma * jitter.view(-1), radius=(self.kernel_size() - 1) // 2)
        else:
            x = self.operator(hr)
        if randomize and self.noise_std > 0:
            x = x + self.noise_std * torch.randn_like(x)
        return x
