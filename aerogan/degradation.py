"""The one deterministic degradation ``D``: LR = block mean of the Gaussian-blurred HR image.

``D`` is how every LR image of this project is made from its HR image, and how the model checks its
outputs against their inputs: the scene datamodules (:mod:`datamodules.degradation`, Wald's protocol in
:mod:`datamodules.wald`) build their training pairs with it, the consistency metric
(:class:`aerogan.metrics.Consistency`) degrades the SR output with it, and the consistency projection
takes its adjoint with ``torch.func.vjp``. So the data and the model degrade the same way.

``D`` is a Gaussian blur of ``sigma`` HR pixels, then a ``scale x scale`` block mean (DSen2's
``downPixelAggr``). The discrete kernel is truncated at ``radius = int(4 sigma + 0.5)`` pixels (scipy's
``gaussian_filter`` default, as in DSen2) and normalised to sum 1; the border is a reflection that does not
repeat the edge pixel (kornia's ``reflect``). ``D`` is linear and made of pure torch ops (kornia's
convolution, ``avg_pool2d``), so autograd and ``torch.func`` transforms see through it. Scale 1 is the
identity (band synthesis: nothing is degraded).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d, get_gaussian_kernel1d
from torch import Tensor, nn


def blur_radius(sigma: float) -> int:
    """Half width of the discrete Gaussian kernel: ``int(4 sigma + 0.5)`` (scipy's ``truncate=4``)."""
    return int(4.0 * float(sigma) + 0.5)


def check_image(x: Tensor, scale: int, margin: int = 0, label: str = "degradation", name: str = "scale") -> None:
    """Refuse what cannot be degraded by ``scale``: a non-float or non-(B, C, H, W) tensor, or a size (after
    ``margin`` on each side) that is not a positive multiple of it. ``label``/``name`` word the message."""
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"{label}: {name} must be an integer >= 1, got {scale!r}")
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{label}: expected a float (B, C, H, W) tensor, got {x.dtype} of shape {tuple(x.shape)}")
    h, w = x.shape[-2] - 2 * margin, x.shape[-1] - 2 * margin
    if margin < 0 or h < scale or w < scale or h % scale or w % scale:
        raise ValueError(
            f"{label}: image {x.shape[-2]}x{x.shape[-1]} px minus a margin of {margin} px on each side leaves "
            f"{h}x{w} px, which must be positive multiples of {name}={scale}"
        )


def gaussian_block_mean(x: Tensor, scale: int, sigma: float | Tensor, radius: int | None = None, margin: int = 0) -> Tensor:
    """``D`` as a function: blur ``x`` (B, C, H, W), crop ``margin`` pixels on each side, ``scale x scale`` block mean.

    Args:
        x: HR images, any float dtype and device.
        scale: integer factor (1: no blur, no block mean; only the crop).
        sigma: Gaussian sigma in pixels of ``x`` (0: block mean only), or a (B,) tensor, one per sample
            (the datamodules' training-time jitter).
        radius: kernel half width; default ``blur_radius`` of the largest sigma. The datamodules pass the
            radius of the largest sigma their jitter can draw.
        margin: pixels on each side that only feed the blur and are cropped before the block mean
            (Wald's patches read with a margin equal the degraded whole scene).

    Returns:
        (B, C, (H - 2 margin) / scale, (W - 2 margin) / scale), same dtype and device.
    """
    check_image(x, scale, margin)
    b = x.shape[0]
    if isinstance(sigma, Tensor):
        sig = sigma.to(x).reshape(-1, 1).expand(b, 2)
        peak = float(sig.max()) if sig.numel() else 0.0
    else:
        if sigma < 0:
            raise ValueError(f"degradation: sigma must be >= 0 (HR pixels), got {sigma}")
        sig = torch.full((b, 2), float(sigma), dtype=x.dtype, device=x.device)
        peak = float(sigma)
    r = blur_radius(peak) if radius is None else int(radius)
    if scale > 1 and peak > 0 and r > 0:
        if r >= min(x.shape[-2:]):
            raise ValueError(
                f"degradation: a blur radius of {r} px (sigma {peak:g}) needs an image larger than {tuple(x.shape[-2:])}"
            )
        x = gaussian_blur2d(x, (2 * r + 1, 2 * r + 1), sig, border_type="reflect")
    if margin:
        x = x[..., margin : x.shape[-2] - margin, margin : x.shape[-1] - margin]
    return F.avg_pool2d(x, scale) if scale > 1 else x


class GaussianBlockMean(nn.Module):
    """The deterministic degradation ``D``: Gaussian blur of ``sigma`` HR pixels, then ``scale x scale`` block mean.

    Args:
        scale: integer HR/LR ratio (1 = identity).
        sigma: blur sigma in HR pixels (0 = block mean only). The scene datamodules' ``blur_sigma`` of 0.5 LR
            pixels is ``sigma = 0.5 * scale``; DSen2's Wald degradation is ``sigma = 1 / scale``.
    """

    def __init__(self, scale: int, sigma: float) -> None:
        super().__init__()
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"GaussianBlockMean: scale must be an integer >= 1, got {scale!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma >= 0:
            raise ValueError(f"GaussianBlockMean: sigma must be a number >= 0 (HR pixels), got {sigma!r}")
        self.scale = scale
        self.sigma = float(sigma)

    @property
    def radius(self) -> int:
        """Half width of the blur kernel in HR pixels (0: no blur, as at scale 1 or sigma 0)."""
        return blur_radius(self.sigma) if self.scale > 1 and self.sigma > 0 else 0

    def kernel(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
        """The normalised 2D blur kernel, ``(2 radius + 1, 2 radius + 1)`` (``[[1]]`` without blur)."""
        r = self.radius
        if r == 0:
            return torch.ones(1, 1, dtype=dtype, device=device)
        k1 = get_gaussian_kernel1d(2 * r + 1, self.sigma, device=device, dtype=dtype)[0]
        return torch.outer(k1, k1)

    def forward(self, hr: Tensor) -> Tensor:
        """``D(hr)``: (B, C, H, W) -> (B, C, H / scale, W / scale); H and W multiples of ``scale``."""
        return gaussian_block_mean(hr, self.scale, self.sigma, self.radius)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, sigma={self.sigma:g}"
