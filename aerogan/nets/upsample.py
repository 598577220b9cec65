"""Upsampling building blocks shared by the super-resolution generators.

Sub-pixel convolution (Shi et al. 2016) handles any integer scale by factoring it into
primes, so odd remote-sensing ratios (3x, 6x for Sentinel-2 60 m -> 10 m) need no special code.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "INTERPOLATIONS",
    "BandSkip",
    "Upsampler",
    "check_interpolation",
    "check_positive_int",
    "check_scale",
    "prime_factors",
    "resolve_skip_bands",
    "start_at_skip_",
    "upsample",
    "upsample_bicubic",
]

#: Interpolations accepted for the fixed (non-learned) upsampling of bands: ``bicubic`` (this project's
#: default) and ``bilinear`` (what the published DSen2 code uses, scikit-image ``resize`` of order 1).
INTERPOLATIONS: tuple[str, ...] = ("bicubic", "bilinear")


def check_scale(scale: object) -> int:
    """Return ``scale`` as ``int`` if it is an integer >= 1, else raise ``ValueError``.

    Booleans are rejected on purpose: ``True`` is an ``int`` in Python but never a meant scale.
    """
    if isinstance(scale, bool) or not isinstance(scale, Integral) or int(scale) < 1:
        raise ValueError(
            f"scale must be an integer >= 1 (allowed values: 1, 2, 3, 4, ...; e.g. 2, 3, 4, 6), got {scale!r}"
        )
    return int(scale)


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as ``int`` if it is an integer >= 1, else raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def prime_factors(n: int) -> list[int]:
    """Prime factorisation of ``n`` in ascending order (``[]`` for 1), e.g. ``12 -> [2, 2, 3]``."""
    n = check_scale(n)
    factors: list[int] = []
    p = 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    if n > 1:
        factors.append(n)
    return factors


class Upsampler(nn.Module):
    """EDSR-style sub-pixel upsampler: ``conv3x3 -> PixelShuffle(p)`` per prime factor ``p`` of ``scale``.

    Keeps ``num_features`` channels. No activation is inserted (as in EDSR); scale 1 is the identity.
    """

    def __init__(self, num_features: int, scale: int) -> None:
        super().__init__()
        self.scale = check_scale(scale)
        self.num_features = check_positive_int("num_features", num_features)
        self.factors: tuple[int, ...] = tuple(prime_factors(self.scale))
        layers: list[nn.Module] = []
        for p in self.factors:
            layers.append(nn.Conv2d(num_features, num_features * p * p, kernel_size=3, padding=1))
            layers.append(nn.PixelShuffle(p))
        self.body = nn.Sequential(*layers)  # empty Sequential == identity

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, F, H, W)`` to ``(B, F, H*scale, W*scale)``."""
        return self.body(x)


def check_interpolation(name: str, value: object) -> str:
    """Return ``value`` if it is one of :data:`INTERPOLATIONS`, else raise ``ValueError`` naming ``name``."""
    if value not in INTERPOLATIONS:
        raise ValueError(f"{name} must be one of {list(INTERPOLATIONS)}, got {value!r}")
    return str(value)


def upsample(x: Tensor, scale: int, mode: str = "bicubic") -> Tensor:
    """Upsample by an integer ``scale`` with ``mode`` (``align_corners=False``); identity at scale 1.

    The output size is set explicitly to ``(H*scale, W*scale)`` so it always matches the sub-pixel branch.
    """
    scale = check_scale(scale)
    mode = check_interpolation("mode", mode)
    if scale == 1:
        return x
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h * scale, w * scale), mode=mode, align_corners=False)


def upsample_bicubic(x: Tensor, scale: int) -> Tensor:
    """Bicubic upsampling by an integer ``scale`` (``align_corners=False``); identity at scale 1."""
    return upsample(x, scale, "bicubic")


def resolve_skip_bands(
    in_channels: int, out_channels: int, skip_bands: Sequence[int] | None
) -> tuple[int, ...] | None:
    """Decide which input bands form the global (residual) skip of a generator.

    ``None`` means identity skip when ``in_channels == out_channels`` and no skip otherwise
    (band synthesis cannot guess which inputs correspond to which outputs).
    """
    if skip_bands is None:
        return tuple(range(in_channels)) if in_channels == out_channels else None
    bands = list(skip_bands)
    if len(bands) != out_channels:
        raise ValueError(
            f"skip_bands must have one entry per output band (out_channels={out_channels}), "
            f"got {len(bands)} entries: {bands}"
        )
    for b in bands:
        if isinstance(b, bool) or not isinstance(b, Integral) or not 0 <= int(b) < in_channels:
            raise ValueError(
                f"skip_bands entries must be integer input-band indices in [0, {in_channels - 1}] "
                f"(in_channels={in_channels}), got {bands}"
            )
    return tuple(int(b) for b in bands)


class BandSkip(nn.Module):
    """Global skip branch: selects ``skip_bands`` of the LR input and bicubic-upsamples them.

    With this branch the generator only has to predict a residual over bicubic, which is the
    usual and much easier target for spectral super-resolution.
    """

    skip_index: Tensor

    def __init__(
        self, in_channels: int, out_channels: int, scale: int, skip_bands: Sequence[int] | None
    ) -> None:
        super().__init__()
        self.scale = check_scale(scale)
        self.bands = resolve_skip_bands(in_channels, out_channels, skip_bands)
        self.identity = self.bands is not None and self.bands == tuple(range(in_channels))
        # Non-persistent: follows .to(device) but stays out of the state dict.
        index = torch.tensor(self.bands if self.bands is not None else [], dtype=torch.long)
        self.register_buffer("skip_index", index, persistent=False)

    @property
    def enabled(self) -> bool:
        """Whether a skip is added at all."""
        return self.bands is not None

    def forward(self, out: Tensor, lr: Tensor) -> Tensor:
        """Return ``out`` plus the upsampled skip bands of ``lr`` (``out`` unchanged if disabled)."""
        if self.bands is None:
            return out
        skip = lr if self.identity else lr.index_select(1, self.skip_index)
        return out + upsample_bicubic(skip, self.scale)

    def extra_repr(self) -> str:
        return f"bands={self.bands}, scale={self.scale}"


@torch.no_grad()
def start_at_skip_(output_layer: nn.Conv2d, skip: BandSkip, enabled: bool = True) -> None:
    """Zero the last layer of a residual generator, so that at step 0 it outputs its skip exactly.

    A freshly initialised residual branch adds a random field to the interpolated bands (DSen2's He-uniform
    output layer adds one several times larger than the bicubic error), so training starts far *below*
    the baseline and spends its first epochs climbing back. Zeroed, the net starts at the baseline and
    every step is an improvement over it (as Fixup/ReZero do for residual branches). The layer still
    receives gradients (its input features are not zero), so it leaves zero at the first step. Nets without
    a skip (band synthesis) keep their initialisation: a zero output would carry no information.
    """
    if enabled and skip.enabled:
        nn.init.zeros_(output_layer.weight)
        if output_layer.bias is not None:
            nn.init.zeros_(output_layer.bias)
