"""Consistency: does an SR output, degraded the way the data was, give back its own LR input?

An output ``ŷ`` is consistent with its input ``x`` when ``D(ŷ) = x``, where ``D`` is the data's degradation
(:class:`aerogan.degradation.GaussianBlockMean` with the datamodule's ``degradation_spec``). The check needs
no truth, so it also scores full-resolution products. Reported in physical units:

* reflectance: RMSE and L1 (mean absolute error) of ``D(ŷ) - x`` per band (and their band means);
* spectral: mean spectral angle (degrees) between ``D(ŷ)`` and ``x``, pixels with zero spectra skipped;
* spatial: the translation of ``D(ŷ)`` relative to ``x`` by phase correlation, in LR pixels
  (:func:`aerogan.metrics.phase_correlation.phase_correlation`), its magnitude averaged over images.

After opensr-test's consistency (ESA OpenSR, MIT; ``Metrics.consistency``: reflectance L1, spectral SAD,
spatial alignment). Where this differs:

* ``D``: opensr-test brings the SR image to the LR grid with a bilinear, antialiased ``interpolate``; here
  ``D`` is the data's own degradation, so an output that degrades exactly to its input scores 0;
* reflectance: opensr-test's L1 is a per-pixel band mean averaged over pixels of one image; here the sums
  run over every pixel seen (DDP-exact), per band, with RMSE beside L1;
* spatial: opensr-test registers the RGB bands with satalign's PCC (or LightGlue) and reports the shift
  of the warp; here all bands are correlated together by a small FFT phase correlation with parabolic
  sub-pixel refinement, on every image (``spatial=True``);
* no border crop (opensr-test masks 16 HR pixels on each side) and no per-image NaN for failed
  registrations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from aerogan.degradation import GaussianBlockMean
from aerogan.metrics.image import spectral_angles
from aerogan.metrics.phase_correlation import phase_correlation


class Consistency(Metric):
    """Agreement of SR outputs with their inputs after the data's degradation, from sum-reduced states.

    Args:
        num_bands: bands of the output (and of the input they are compared with).
        ratio: the HR/LR scale of ``D``.
        sigma: blur of ``D`` in HR pixels; 0 (default) = the ``ratio x ratio`` block mean alone.
        spatial: also estimate each image's translation by phase correlation (needs whole images; off for
            callers that pass blocks side by side, such as the product writer).
        **kwargs: torchmetrics ``Metric`` options (e.g. ``sync_on_compute=False`` for a per-process figure).

    ``update(preds, lr)`` takes SR (B, C, H, W) and the input bands (B, C, H / ratio, W / ratio).
    ``compute()`` returns ``{"rmse": (C,), "l1": (C,), "sam": degrees}`` (float64) and, with ``spatial``,
    ``"shift"``: the mean translation magnitude in LR pixels.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_bands: int, ratio: int, sigma: float = 0.0, spatial: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_bands, int) or num_bands < 1:
            raise ValueError(f"Consistency: num_bands must be an integer >= 1, got {num_bands!r}")
        if not isinstance(ratio, int) or isinstance(ratio, bool) or ratio < 1:
            raise ValueError(f"Consistency: ratio must be an integer >= 1, got {ratio!r}")
        self.ratio = ratio
        self.operator = GaussianBlockMean(ratio, sigma)
        self.spatial = bool(spatial)
        self.add_state("sq_sum", torch.zeros(num_bands, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("abs_sum", torch.zeros(num_bands, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("angle_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("angle_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("shift_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def sigma(self) -> float:
        """Blur of the degradation in HR pixels."""
        return self.operator.sigma

    def degrade(self, preds: Tensor) -> Tensor:
        """``D(preds)`` in float64: the SR bands on the input's grid."""
        return self.operator(preds.double())

    def update(self, preds: Tensor, lr: Tensor, degraded: bool = False) -> None:
        """Accumulate SR ``preds`` against the input bands ``lr``; ``degraded=True``: ``preds`` is already
        ``D(SR)`` on the input's grid (a caller streaming a scene degrades windows with their blur context)."""
        back = preds if degraded else self.degrade(preds)
        if back.shape != lr.shape:
            raise ValueError(
                f"Consistency: SR {tuple(preds.shape)} degraded by {self.ratio} is {tuple(back.shape)}, input is {tuple(lr.shape)}"
            )
        back = back.double()
        d = (back - lr.double()).transpose(0, 1).flatten(1)
        self.sq_sum += (d * d).sum(1)
        self.abs_sum += d.abs().sum(1)
        self.count += d.shape[1]
        angle, valid = spectral_angles(back, lr)
        self.angle_sum += angle[valid].sum()
        self.angle_count += valid.sum()
        if self.spatial:
            self.shift_sum += phase_correlation(back, lr).norm(dim=1).sum()
            self.images += back.shape[0]

    def compute(self) -> dict[str, Tensor]:
        n = self.count.clamp_min(1)
        out = {
            "rmse": (self.sq_sum / n).sqrt(),
            "l1": self.abs_sum / n,
            "sam": self.angle_sum / self.angle_count if self.angle_count > 0 else torch.tensor(float("nan"), dtype=torch.float64),
        }
        if self.spatial:
            out["shift"] = self.shift_sum / self.images if self.images > 0 else torch.tensor(float("nan"), dtype=torch.float64)
        return out
