"""Sample panels for TensorBoard: LR upsampled (bicubic), SR, HR and |error|, side by side; and the correctness map.

All three image columns share one stretch per composite band (the 2nd-98th percentile of the HR
samples), so brightness differences between columns are real, not a display artefact. The error
column shows the mean absolute error over all bands at 4x the composite's contrast.

The correctness panel (:func:`render_correctness`) colours each pixel by its class
(:func:`aerogan.metrics.correctness_map`): improvement green, omission blue, hallucination red; undecided
pixels show the HR luminance, dimmed. Its rows line up with those of :func:`render_panels`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from aerogan.metrics.correctness import HALLUCINATION, IMPROVEMENT, OMISSION

#: RGB of each class in the correctness panel.
CLASS_COLOURS = {IMPROVEMENT: (0.10, 0.75, 0.25), OMISSION: (0.15, 0.45, 0.95), HALLUCINATION: (0.95, 0.15, 0.15)}


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


def luminance(hr: Tensor, rgb_bands: list[int]) -> Tensor:
    """The colour composite of ``hr`` (B, C, H, W) stretched as in :func:`render_panels`, averaged: (B, H, W) in [0, 1]."""
    comp = hr.detach().float().cpu()[:, list(rgb_bands)]
    lo, hi = band_stretch(comp)
    return _apply(comp, lo, hi).mean(1)


def render_correctness(classes: Tensor, background: Tensor | None = None, pad: int = 2) -> Tensor:
    """A (3, H, W) float image in [0, 1], one row per sample: the class map (B, H, W) in colour.

    ``background`` (B, H, W) in [0, 1] (e.g. the stretched HR luminance) shows, at a third of its
    brightness, under the undecided pixels; without it they are black.
    """
    if classes.ndim != 3:
        raise ValueError(f"render_correctness: expected a (B, H, W) class map, got shape {tuple(classes.shape)}")
    classes = classes.detach().cpu()
    if background is None:
        image = torch.zeros(classes.shape[0], 3, *classes.shape[1:])
    else:
        if background.shape != classes.shape:
            raise ValueError(f"render_correctness: background {tuple(background.shape)} must be the class map's shape {tuple(classes.shape)}")
        image = (background.detach().float().cpu().clamp(0, 1) / 3)[:, None].expand(-1, 3, -1, -1).clone()
    for k, rgb in CLASS_COLOURS.items():
        mask = (classes == k)[:, None].expand(-1, 3, -1, -1)
        colour = torch.tensor(rgb).view(1, 3, 1, 1).expand_as(image)
        image = torch.where(mask, colour, image)
    rows = F.pad(image, (pad, pad, pad, pad), value=1.0)
    return torch.cat(list(rows), dim=1)
