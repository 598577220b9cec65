"""Metrics on physical values, built on torchmetrics (sum-reduced states: exact under DDP).

* :mod:`aerogan.metrics.image`: against the truth, per image or pooled: PSNR, SSIM, UIQ, SAM, per-band RMSE,
  SRE, ERGAS;
* the "trustworthy pixels" metrics, after opensr-test (ESA OpenSR): :mod:`~aerogan.metrics.consistency`
  (the output degraded like the data against its own input), :mod:`~aerogan.metrics.synthesis` (what the
  output adds over the upsampled input) and :mod:`~aerogan.metrics.correctness` (per pixel: improvement,
  omission or hallucination against the truth), with :mod:`~aerogan.metrics.phase_correlation` for the
  spatial shift.
"""

from aerogan.metrics.consistency import Consistency
from aerogan.metrics.correctness import (
    CLASSES,
    HALLUCINATION,
    IMPROVEMENT,
    OMISSION,
    UNDECIDED,
    Correctness,
    correctness_map,
    pixel_distance,
)
from aerogan.metrics.image import (
    BandRMSE,
    SignalToReconstructionError,
    SpectralAngle,
    ergas,
    image_metrics,
    psnr_from_mse,
    spectral_angles,
)
from aerogan.metrics.phase_correlation import phase_correlation
from aerogan.metrics.synthesis import Synthesis

__all__ = [
    "BandRMSE",
    "CLASSES",
    "Consistency",
    "Correctness",
    "HALLUCINATION",
    "IMPROVEMENT",
    "OMISSION",
    "SignalToReconstructionError",
    "SpectralAngle",
    "Synthesis",
    "UNDECIDED",
    "correctness_map",
    "ergas",
    "image_metrics",
    "phase_correlation",
    "pixel_distance",
    "psnr_from_mse",
    "spectral_angles",
]
