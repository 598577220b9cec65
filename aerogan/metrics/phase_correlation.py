"""Sub-pixel translation between two images by phase correlation (FFT), for the spatial consistency check.

The normalised cross-power spectrum of two images that differ by a translation ``d`` is a pure phase
ramp; its inverse FFT peaks at ``d``. The peak is refined to sub-pixel precision by a parabola through it
and its two neighbours, along each axis. Multispectral images share one translation: the cross-power
spectra of the bands are summed before normalisation. kornia (0.9) has no phase correlation, hence this
short one. The FFT treats the images as periodic: on non-periodic patches the edges pull the estimate
towards 0, and shifts are only defined modulo the image size (reported in ``[-N/2, N/2]``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _refine(r: Tensor, iy: Tensor, ix: Tensor, axis: int) -> Tensor:
    """Sub-pixel offset of the peak ``(iy, ix)`` of ``r`` (B, H, W) along ``axis`` (-2 rows, -1 columns)."""
    n = r.shape[axis]
    if n < 3:
        return torch.zeros(r.shape[0], dtype=r.dtype, device=r.device)
    b = torch.arange(r.shape[0], device=r.device)
    if axis == -2:
        before, peak, after = r[b, (iy - 1) % n, ix], r[b, iy, ix], r[b, (iy + 1) % n, ix]
    else:
        before, peak, after = r[b, iy, (ix - 1) % n], r[b, iy, ix], r[b, iy, (ix + 1) % n]
    curvature = before - 2 * peak + after
    offset = 0.5 * (before - after) / torch.where(curvature < 0, curvature, torch.ones_like(curvature))
    return torch.where(curvature < 0, offset.clamp(-0.5, 0.5), torch.zeros_like(offset))


def phase_correlation(moving: Tensor, reference: Tensor, eps: float = 1e-12) -> Tensor:
    """Translation ``(dy, dx)`` in pixels of ``moving`` relative to ``reference``, both (B, C, H, W): (B, 2) float64.

    ``moving`` equal to ``reference`` rolled by ``(dy, dx)`` (``torch.roll(reference, (dy, dx), (-2, -1))``)
    returns ``(dy, dx)``. Each band's mean is removed first; images without any variation return 0.
    """
    if moving.shape != reference.shape or moving.ndim != 4:
        raise ValueError(f"phase_correlation: expected two (B, C, H, W) tensors of one shape, got {tuple(moving.shape)} and {tuple(reference.shape)}")
    a = moving.double()
    b = reference.double()
    a = a - a.mean((-2, -1), keepdim=True)
    b = b - b.mean((-2, -1), keepdim=True)
    cross = (torch.fft.fft2(a) * torch.fft.fft2(b).conj()).sum(1)  # (B, H, W), bands summed
    magnitude = cross.abs()
    cross = torch.where(magnitude > eps, cross / magnitude.clamp_min(eps), torch.zeros_like(cross))
    r = torch.fft.ifft2(cross).real
    h, w = r.shape[-2:]
    idx = r.flatten(1).argmax(1)
    iy, ix = idx // w, idx % w
    dy = iy.double() + _refine(r, iy, ix, -2)
    dx = ix.double() + _refine(r, iy, ix, -1)
    dy = torch.where(dy > h / 2, dy - h, dy)
    dx = torch.where(dx > w / 2, dx - w, dx)
    return torch.stack([dy, dx], dim=1)
