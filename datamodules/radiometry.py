"""Radiometric augmentation: per-band gain and offset jitter and a per-sample brightness change.

A model trained on one scene meets others with different illumination, atmosphere, calibration or
processing: each band's values change by a gain and an offset, differently per band. Training on
randomly re-scaled copies of the scene teaches the network to rely on the *shape* of the spectrum and the
geometry of the guides rather than on the exact radiometry of one scene.

The change is drawn per sample and per band and applied to the native-resolution windows *before* any
degradation, so the degraded input and its truth (and a band's guide copy, were it both) always agree:
a band is shifted the same way wherever it appears.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class RadiometricJitter:
    """``x * g_band * b + o_band`` per sample: band gains, band offsets and one brightness factor per sample.

    Args:
        gain_jitter: band gains drawn log-uniformly in ``[exp(-a), exp(a)]`` (0: off). ``0.4`` spans 0.67-1.49.
        offset_jitter: band offsets drawn uniformly in ``[-o, o]`` data units (0: off).
        brightness_jitter: one factor per sample for every band, log-uniform in ``[exp(-a), exp(a)]`` (0: off).
    """

    def __init__(self, gain_jitter: float = 0.0, offset_jitter: float = 0.0, brightness_jitter: float = 0.0) -> None:
        for label, value in (("gain_jitter", gain_jitter), ("offset_jitter", offset_jitter), ("brightness_jitter", brightness_jitter)):
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"data.{label}={value!r} must be a finite number >= 0 (0 switches it off)")
        if gain_jitter > 2 or brightness_jitter > 2:
            raise ValueError(
                f"data.gain_jitter={gain_jitter} / data.brightness_jitter={brightness_jitter}: log-gain half-widths above 2 "
                "(factors beyond 0.14-7.4) are not radiometric changes; expected values such as 0.2-0.5"
            )
        self.gain_jitter = float(gain_jitter)
        self.offset_jitter = float(offset_jitter)
        self.brightness_jitter = float(brightness_jitter)

    @property
    def enabled(self) -> bool:
        return bool(self.gain_jitter or self.offset_jitter or self.brightness_jitter)

    def __call__(self, groups: Sequence[Tensor], generator: torch.Generator | None = None) -> list[Tensor]:
        """Apply one draw per sample to every group (B, C_k, H_k, W_k); groups hold distinct bands."""
        if not self.enabled:
            return list(groups)
        b = groups[0].shape[0]
        device = groups[0].device

        def uniform(*shape: int) -> Tensor:
            return (torch.rand(*shape, generator=generator) * 2 - 1).to(device)

        brightness = torch.exp(self.brightness_jitter * uniform(b, 1, 1, 1))
        out = []
        for g in groups:
            c = g.shape[1]
            gain = torch.exp(self.gain_jitter * uniform(b, c, 1, 1)) * brightness
            offset = self.offset_jitter * uniform(b, c, 1, 1)
            out.append(g * gain.to(g.dtype) + offset.to(g.dtype))
        return out

    def __repr__(self) -> str:
        return (f"RadiometricJitter(gain_jitter={self.gain_jitter}, offset_jitter={self.offset_jitter}, "
                f"brightness_jitter={self.brightness_jitter})")
