"""Super-resolution metrics on physical (de-normalised) values, built on torchmetrics.

* PSNR averaged per image (``dim=(1, 2, 3)``) and SSIM, both with a fixed ``data_range``;
* SAM in degrees, guarded: pixels whose predicted or reference spectrum is all zero are skipped
  (torchmetrics' SAM returns NaN for the whole set when one such pixel exists);
* RMSE per band (and its band mean), from running sums, so DDP reduction is exact;
* ERGAS with ``ratio = scale`` (torchmetrics keeps every image: test only).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.image import (
    ErrorRelativeGlobalDimensionlessSynthesis,
    PeakSignalNoiseRatio,
    StructuralSimilarityIndexMeasure,
)


class SpectralAngle(Metric):
    """Mean spectral angle (degrees) over pixels with non-zero spectra in both images."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps
        self.add_state("angle_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        p = preds.double().flatten(2)
        t = target.double().flatten(2)
        pn, tn = p.norm(dim=1), t.norm(dim=1)
        valid = (pn > self.eps) & (tn > self.eps)
        cos = (p * t).sum(1) / (pn * tn).clamp_min(self.eps)
        angle = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))
        self.angle_sum += angle[valid].sum()
        self.count += valid.sum()

    def compute(self) -> Tensor:
        if self.count == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.angle_sum / self.count


class BandRMSE(Metric):
    """Root-mean-square error of each band over all pixels seen; ``compute`` returns a (C,) tensor."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_bands: int) -> None:
        super().__init__()
        self.add_state("sq_sum", torch.zeros(num_bands, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        d = (preds.double() - target.double()).transpose(0, 1).flatten(1)
        self.sq_sum += (d * d).sum(1)
        self.count += d.shape[1]

    def compute(self) -> Tensor:
        return (self.sq_sum / self.count.clamp_min(1)).sqrt()


def image_metrics(data_range: float, num_bands: int) -> MetricCollection:
    """PSNR (per image), SSIM and, for more than one band, SAM: the per-step validation set."""
    metrics: dict[str, Metric] = {
        "psnr": PeakSignalNoiseRatio(data_range=data_range, dim=(1, 2, 3), reduction="elementwise_mean"),
        "ssim": StructuralSimilarityIndexMeasure(data_range=data_range),
    }
    if num_bands > 1:
        metrics["sam"] = SpectralAngle()
    return MetricCollection(metrics)


def ergas(scale: int) -> ErrorRelativeGlobalDimensionlessSynthesis:
    """ERGAS = 100 (h/l) sqrt(mean_b (RMSE_b / mu_b)^2); torchmetrics' ``ratio`` is l/h = scale."""
    return ErrorRelativeGlobalDimensionlessSynthesis(ratio=float(scale))


def psnr_from_mse(mse: float, data_range: float) -> float:
    """10 log10(MAX^2 / MSE), the hand formula (used in tests and reports)."""
    return 10.0 * math.log10(data_range**2 / mse)
