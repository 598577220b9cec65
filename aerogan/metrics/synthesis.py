"""Synthesis: how much an SR output adds to the upsampled input, the detail a generator creates.

The bicubic upsampling of the input ``up(x)`` carries what the LR image already holds; ``ŷ - up(x)`` is
what the network put on top of it (sharpened edges, texture, and any invented detail). Synthesis is its
mean absolute value per band, in physical units: 0 for the bicubic baseline itself, larger for outputs
that depart further from it. It says nothing about whether the added detail is right; that is
:mod:`aerogan.metrics.correctness`, against the truth.

After opensr-test's synthesis (ESA OpenSR, MIT; ``Metrics.synthesis``: the L1 distance, per pixel and
averaged, between the LR image upsampled to the HR grid and the *harmonised* SR image). Where this differs:

* the upsampling is the project's baseline, bicubic (``F.interpolate``, ``align_corners=False``), where
  opensr-test uses a bilinear, antialiased one;
* no harmonisation: opensr-test first matches the SR histogram to the HR image and registers it to HR,
  which needs the truth; here the output is scored as it is, so a radiometric offset counts as synthesis;
* per band, pooled over every pixel seen (sum states, DDP-exact), where opensr-test averages the band
  mean per pixel over one image.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class Synthesis(Metric):
    """Mean ``|ŷ - up(x)|`` per band over all pixels seen; ``compute`` returns a (C,) float64 tensor.

    Args:
        num_bands: bands of the output.

    ``update(preds, upsampled)`` takes SR and the upsampled input bands, both (B, C, H, W) on the HR grid.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, num_bands: int) -> None:
        super().__init__()
        if not isinstance(num_bands, int) or num_bands < 1:
            raise ValueError(f"Synthesis: num_bands must be an integer >= 1, got {num_bands!r}")
        self.add_state("abs_sum", torch.zeros(num_bands, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, upsampled: Tensor) -> None:
        if preds.shape != upsampled.shape:
            raise ValueError(f"Synthesis: SR {tuple(preds.shape)} and upsampled input {tuple(upsampled.shape)} must share a shape")
        d = (preds.double() - upsampled.double()).transpose(0, 1).flatten(1)
        self.abs_sum += d.abs().sum(1)
        self.count += d.shape[1]

    def compute(self) -> Tensor:
        return self.abs_sum / self.count.clamp_min(1)
