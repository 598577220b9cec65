"""Sample panels for TensorBoard: LR upsampled (bicubic), SR, HR and |error|, side by side.

All three image columns share one stretch per composite band (the 2nd-98th percentile of the HR
samples), so brightness differences between columns are real, not a display artefact. The error
column shows the mean absolute error over all bands at 4x the composite's contrast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def band_stretch(reference: Tensor, low: float = 0.02, high: float = 0.98) -> tuple[Tensor, Tensor]:
    """Per-band (lo, hi) percentiles of ``reference`` (B, C, H, W), as (C,) tensors."""
    flat = reference.detach().float().transpose(0, 1).flatten(1)
    lo = torch.quantile(flat, low, dim=1)
    hi = torch.quantile(flat, high, dim=1)
    hi = torch.where(hi > lo, hi, lo + 1e-6)
    return lo, hi


def _apply(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Stretch ``x`` (B, C, H, W) band by band to [0, 1] with the (lo, hi) of :func:`band_stretch`."""
    return ((x - lo.view(1, -1, 1, 1)) / (hi - lo).view(1, -1, 1, 1)).clamp(0, 1)


def render_panels(lr_up: Tensor, sr: Tensor, hr: Tensor, rgb_bands: list[int], pad: int = 2) -> Tensor:
    """A (3, H, W) float image in [0, 1]: one row per sample, columns LR-up | SR | HR | |error|.

    ``lr_up``, ``sr`` and ``hr`` are (B, C, H, W) in the same physical units; ``rgb_bands`` picks three
    of the C bands for the colour composite (repeat an index for fewer bands).
    """
    if not (lr_up.shape == sr.shape == hr.shape):
        raise ValueError(f"panel inputs must share a shape, got {tuple(lr_up.shape)}, {tuple(sr.shape)}, {tuple(hr.shape)}")
    bands = hr.shape[1] if hr.ndim == 4 else 0
    if len(rgb_bands) != 3 or not all(0 <= int(b) < bands for b in rgb_bands):
        raise ValueError(f"rgb_bands must be three band indices in [0, {bands}), got {list(rgb_bands)}")
    lr_up, sr, hr = (t.detach().float().cpu() for t in (lr_up, sr, hr))
    comp = [t[:, rgb_bands] for t in (lr_up, sr, hr)]
    lo, hi = band_stretch(comp[2])
    columns = [_apply(c, lo, hi) for c in comp]
    err = (sr - hr).abs().mean(1, keepdim=True)
    span = (hi - lo).mean()
    columns.append((4 * err / span).clamp(0, 1).expand(-1, 3, -1, -1))
    cols = [F.pad(c, (pad, pad, pad, pad), value=1.0) for c in columns]
    rows = torch.cat(cols, dim=3)  # (B, 3, H, 4W)
    return torch.cat(list(rows), dim=1)  # (3, B*H, 4W)
