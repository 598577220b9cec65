"""Super-resolution metrics on physical (de-normalised) values, built on torchmetrics.

* PSNR averaged per image (``dim=(1, 2, 3)``) and SSIM, both with a fixed ``data_range``;
* SAM in degrees, guarded: pixels whose predicted or reference spectrum is all zero are skipped
  (torchmetrics' SAM returns NaN for the whole set when one such pixel exists);
* RMSE per band (and its band mean), from running sums, so DDP reduction is exact;
* SRE per band (signal-to-reconstruction error, dB, DSen2's metric) from running sums;
* UIQ (universal image quality index, torchmetrics, running mean over windows);
* ERGAS with ``ratio = scale`` (torchmetrics keeps every image: test only).

The "trustworthy pixels" metrics (after opensr-test) are beside this module: consistency with the input
(:mod:`aerogan.metrics.consistency`), synthesis over the upsampled input (:mod:`aerogan.metrics.synthesis`)
and per-pixel correctness against the truth (:mod:`aerogan.metrics.correctness`).
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
    UniversalImageQualityIndex,
)


def spectral_angles(preds: Tensor, target: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Per-pixel spectral angle in degrees (float64, (B, H*W)) and the mask of pixels where both spectra are non-zero."""
    p = preds.double().flatten(2)
    t = target.double().flatten(2)
    pn, tn = p.norm(dim=1), t.norm(dim=1)
    valid = (pn > eps) & (tn > eps)
    cos = (p * t).sum(1) / (pn * tn).clamp_min(eps)
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0))), valid


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
        angle, valid = spectral_angles(preds, target, self.eps)
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


class SignalToReconstructionError(Metric):
    """SRE per band, ``10 log10(mean(y_b)^2 / mean((ŷ_b - y_b)^2))`` dB over all pixels seen (DSen2's metric).

    ``compute`` returns the (C,) per-band values; their mean is the figure DSen2 reports. Higher is better;
    unlike PSNR it is relative to each band's own brightness, so dark bands (B01, B09) count as much as bright.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_bands: int) -> None:
        super().__init__()
        self.add_state("target_sum", torch.zeros(num_bands, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sq_sum", torch.zeros(num_bands, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        t = target.double().transpose(0, 1).flatten(1)
        d = preds.double().transpose(0, 1).flatten(1) - t
        self.target_sum += t.sum(1)
        self.sq_sum += (d * d).sum(1)
        self.count += t.shape[1]

    def compute(self) -> Tensor:
        n = self.count.clamp_min(1)
        mse = (self.sq_sum / n).clamp_min(torch.finfo(torch.float64).tiny)
        return 10.0 * torch.log10((self.target_sum / n) ** 2 / mse)


def image_metrics(data_range: float, num_bands: int) -> MetricCollection:
    """PSNR (per image), SSIM, UIQ and, for more than one band, SAM: the per-step validation set."""
    metrics: dict[str, Metric] = {
        "psnr": PeakSignalNoiseRatio(data_range=data_range, dim=(1, 2, 3), reduction="elementwise_mean"),
        "ssim": StructuralSimilarityIndexMeasure(data_range=data_range),
        "uiq": UniversalImageQualityIndex(),
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
