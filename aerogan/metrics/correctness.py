"""Correctness: is the detail an SR output adds right? Every pixel is an improvement, an omission or a hallucination.

Three per-pixel distances (band mean of the normalised difference ``|a - b| / |a + b|``, opensr-test's
``nd``) between the SR output ``ŷ``, the upsampled input ``u = up(x)`` (bicubic) and the truth ``y``:

    d_ref = d(u, y),   d_im = d(ŷ, y) / d_ref,   d_om = d(ŷ, u) / d_ref

and three scores (opensr-test's ``tc_improvement``, ``tc_omission``, ``tc_hallucination``; ``H = d_im + d_om - 1``):

    improvement   = d_im + d_om (1 - exp(-γ H))
    omission      = d_om + d_im (1 - exp(-γ H))
    hallucination = exp(-γ d_im d_om)

A pixel takes the class of the smallest score: *improvement* when ``ŷ`` is nearer the truth than the
upsampled input was (``d_im`` small), *omission* when it stays at the upsampled input where the truth
differs (``d_om`` small), *hallucination* when it is far from both. Only pixels where one distance exceeds
a threshold are classified (by default the 75th percentile of ``d_ref`` in each image, opensr-test's
``"auto"``); the others, where nothing is at stake, are ``UNDECIDED``. An output equal to the upsampled
input is omission at every classified pixel (``d_om = 0``, ``d_im = 1``).

After opensr-test's correctness (ESA OpenSR, MIT; ``Metrics.correctness`` with its defaults: ``nd``
distance, pixel aggregation, γ = 0.05 for the three scores, ``gradient_threshold="auto"``). Where this differs:

* fractions of classified pixels (opensr-test's ``correctness_norm="percent"``), not the mean softmin
  probabilities (its default ``"softmin"``, whose argmax is the same class); counts are summed over every
  image seen, so the fractions are DDP-exact;
* no harmonisation of ``ŷ`` (opensr-test matches its histogram to ``y`` and registers it to ``y`` first):
  a radiometric or geometric error of the network is part of what is scored;
* bicubic upsampling (opensr-test: bilinear, antialiased) and no 16-pixel border crop;
* the normalised difference uses ``max(|a + b|, eps)`` as denominator and ``d_ref`` is floored at
  ``eps``, so zero pixels and ``d_ref = 0`` give finite scores (a departure there counts as hallucination).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchmetrics import Metric

IMPROVEMENT, OMISSION, HALLUCINATION = 0, 1, 2
UNDECIDED = -1
CLASSES = ("improvement", "omission", "hallucination")
Distance = Literal["nd", "l1"]


def pixel_distance(a: Tensor, b: Tensor, distance: Distance = "nd", eps: float = 1e-12) -> Tensor:
    """Per-pixel distance (B, H, W) in float64: the band mean of ``|a - b| / |a + b|`` (``nd``) or of ``|a - b|`` (``l1``)."""
    a, b = a.double(), b.double()
    diff = (a - b).abs()
    if distance == "nd":
        diff = diff / (a + b).abs().clamp_min(eps)
    elif distance != "l1":
        raise ValueError(f"correctness: distance must be 'nd' or 'l1', got {distance!r}")
    return diff.mean(1)


def correctness_map(
    sr: Tensor,
    upsampled: Tensor,
    hr: Tensor,
    threshold: float | None = None,
    quantile: float = 0.75,
    gamma: float = 0.05,
    distance: Distance = "nd",
    eps: float = 1e-12,
) -> Tensor:
    """The class of every pixel, (B, H, W) int64: ``IMPROVEMENT``, ``OMISSION``, ``HALLUCINATION`` or ``UNDECIDED``.

    Args:
        sr, upsampled, hr: (B, C, H, W) in the same physical units: the output, the upsampled input, the truth.
        threshold: pixels where ``d(u, y)``, ``d(ŷ, y)`` and ``d(ŷ, u)`` all stay at or below it are undecided;
            ``None`` = the ``quantile`` of ``d(u, y)`` in each image.
        quantile: the per-image quantile of ``d(u, y)`` used when ``threshold`` is None (opensr-test: 0.75).
        gamma: the scores' parameter γ (opensr-test: 0.05).
        distance: ``nd`` (normalised difference, unitless) or ``l1`` (data units).
    """
    if not (sr.shape == upsampled.shape == hr.shape) or sr.ndim != 4:
        raise ValueError(
            f"correctness: SR, upsampled input and truth must be (B, C, H, W) of one shape, got "
            f"{tuple(sr.shape)}, {tuple(upsampled.shape)}, {tuple(hr.shape)}"
        )
    d_ref = pixel_distance(upsampled, hr, distance, eps)
    d_sr_hr = pixel_distance(sr, hr, distance, eps)
    d_sr_up = pixel_distance(sr, upsampled, distance, eps)
    if threshold is None:
        flat = d_ref.flatten(1)
        k = max(1, int(quantile * flat.shape[1]))
        thr = flat.kthvalue(k, dim=1).values.view(-1, 1, 1)
    else:
        thr = torch.full((sr.shape[0], 1, 1), float(threshold), dtype=d_ref.dtype, device=d_ref.device)
    decided = (d_ref > thr) | (d_sr_hr > thr) | (d_sr_up > thr)
    ref = d_ref.clamp_min(eps)
    d_im, d_om = d_sr_hr / ref, d_sr_up / ref
    damp = 1 - torch.exp(-gamma * (d_im + d_om - 1))
    scores = torch.stack([d_im + d_om * damp, d_om + d_im * damp, torch.exp(-gamma * d_im * d_om)], dim=1)
    classes = scores.argmin(1)
    return torch.where(decided, classes, torch.full_like(classes, UNDECIDED))


class Correctness(Metric):
    """Fractions of classified pixels that are improvement, omission and hallucination (:func:`correctness_map`).

    Args:
        threshold: fixed decision threshold on the distances (``None``: the per-image ``quantile`` of ``d(u, y)``).
        quantile: per-image quantile of ``d(u, y)`` used without a fixed threshold, in (0, 1].
        gamma: the scores' parameter γ, > 0.
        distance: ``nd`` (normalised difference) or ``l1``.

    ``update(preds, upsampled, target)`` takes SR, the upsampled input and the truth, (B, C, H, W) each.
    ``compute()`` returns ``{"improvement", "omission", "hallucination"}`` (float64, summing to 1; NaN
    before any pixel was classified).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, threshold: float | None = None, quantile: float = 0.75, gamma: float = 0.05, distance: Distance = "nd") -> None:
        super().__init__()
        if threshold is not None and not threshold >= 0:
            raise ValueError(f"Correctness: threshold must be >= 0 or None (per-image quantile), got {threshold!r}")
        if not 0 < quantile <= 1:
            raise ValueError(f"Correctness: quantile must lie in (0, 1], got {quantile!r}")
        if not gamma > 0:
            raise ValueError(f"Correctness: gamma must be > 0, got {gamma!r}")
        if distance not in ("nd", "l1"):
            raise ValueError(f"Correctness: distance must be 'nd' or 'l1', got {distance!r}")
        self.threshold = threshold
        self.quantile = quantile
        self.gamma = gamma
        self.distance: Distance = distance
        self.add_state("counts", torch.zeros(len(CLASSES), dtype=torch.float64), dist_reduce_fx="sum")

    def classify(self, preds: Tensor, upsampled: Tensor, target: Tensor) -> Tensor:
        """The class map (B, H, W) with this metric's settings (for panels)."""
        return correctness_map(preds, upsampled, target, self.threshold, self.quantile, self.gamma, self.distance)

    def update(self, preds: Tensor, upsampled: Tensor, target: Tensor) -> None:
        classes = self.classify(preds, upsampled, target)
        self.counts += torch.stack([(classes == k).sum() for k in range(len(CLASSES))]).to(self.counts)

    def compute(self) -> dict[str, Tensor]:
        total = self.counts.sum()
        fractions = self.counts / total if total > 0 else torch.full_like(self.counts, float("nan"))
        return dict(zip(CLASSES, fractions, strict=True))
