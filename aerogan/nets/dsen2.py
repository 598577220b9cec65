"""DSen2 (Lanaras et al. 2018, "Super-resolution of Sentinel-2 images"), as in its published code.

The coarse target bands are interpolated to the output grid and concatenated with the guide bands
(each guide group interpolated to the output grid), then ``conv+ReLU -> d scaled residual blocks ->
conv`` predicts a residual over the interpolated target bands (the global skip). Published sizes:
DSen2 ``num_blocks=6, num_features=128``; VDSen2 ``num_blocks=32, num_features=256``. Without guides
this is a single-input residual SR net; ``scale=1`` is band synthesis on a common grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aerogan.nets.guidance import GuidedGenerator, GuideFusion
from aerogan.nets.upsample import (
    BandSkip,
    check_interpolation,
    check_positive_int,
    check_scale,
    start_at_skip_,
    upsample,
)

__all__ = ["DSen2", "ScaledResidualBlock", "he_uniform_"]


@torch.no_grad()
def he_uniform_(module: nn.Module) -> None:
    """Keras ``he_uniform`` (U(±sqrt(6 / fan_in))) on every conv weight, zero biases: DSen2's initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * math.prod(m.kernel_size)
            bound = math.sqrt(6.0 / fan_in)
            m.weight.uniform_(-bound, bound)
            if m.bias is not None:
                m.bias.zero_()


class ScaledResidualBlock(nn.Module):
    """DSen2 block: ``x + residual_scale * conv(relu(conv(x)))`` (residual scaling stabilises training)."""

    def __init__(self, num_features: int, residual_scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.residual_scale = float(residual_scale)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the scaled residual block; shape is preserved."""
        return x + self.residual_scale * self.conv2(self.act(self.conv1(x)))

    def extra_repr(self) -> str:
        return f"residual_scale={self.residual_scale}"


class DSen2(GuidedGenerator):
    """DSen2 generator: ``[guides↑, x↑] -> conv+ReLU -> d scaled residual blocks -> conv -> + skip bands``.

    ``x`` (``(B, in_channels, h, w)``, the target bands on their coarse grid) is interpolated by
    ``scale`` (``interpolation``: ``bicubic``, or ``bilinear`` as in the published code); guide group
    ``k`` (``(B, guide_channels[k], h*scale/guide_ratios[k], ...)``) is interpolated by
    ``guide_ratios[k]``; all are concatenated (guides finest first, as published) on the output grid.
    Weights are initialised as published (Keras ``he_uniform``, zero biases), except that the output
    layer is zeroed (``start_at_skip=True``, the default): the untrained net returns the interpolated bands
    and training starts at the baseline instead of far above its error (``False``: as published). Skip rule as in
    :class:`~aerogan.nets.srresnet.SRResNet`: ``skip_bands=None`` means identity skip when
    ``in_channels == out_channels`` and no skip otherwise. Maps to ``(B, out, h*scale, w*scale)``.
    Empty ``guide_channels``/``guide_ratios`` give the single-input net.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int,
        num_features: int = 128,
        num_blocks: int = 6,
        residual_scale: float = 0.1,
        skip_bands: list[int] | None = None,
        guide_channels: Sequence[int] = (),
        guide_ratios: Sequence[int] = (),
        interpolation: str = "bicubic",
        start_at_skip: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.scale = check_scale(scale)
        check_positive_int("num_features", num_features)
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(f"num_blocks must be an integer >= 0, got {num_blocks!r}")
        self.interpolation = check_interpolation("interpolation", interpolation)
        self.fusion = GuideFusion(
            in_channels,
            scale,
            guide_channels,
            guide_ratios,
            grid="output",
            interpolation=interpolation,
            owner="DSen2",
        )
        # Input is already on the output grid when the skip is taken, hence scale 1 here.
        self.skip = BandSkip(in_channels, out_channels, 1, skip_bands)

        self.conv_head = nn.Conv2d(self.fusion.out_channels, num_features, 3, padding=1)
        self.act = nn.ReLU()
        self.blocks = nn.Sequential(
            *(ScaledResidualBlock(num_features, residual_scale) for _ in range(num_blocks))
        )
        self.conv_out = nn.Conv2d(num_features, out_channels, 3, padding=1)
        he_uniform_(self)
        start_at_skip_(self.conv_out, self.skip, start_at_skip)

    def forward(self, x: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """Super-resolve ``x`` of shape ``(B, in, h, w)`` with its ``guides`` to ``(B, out, h*scale, w*scale)``."""
        up = upsample(x, self.scale, self.interpolation)
        feat = self.fusion(x, guides, base=up)
        out = self.conv_out(self.blocks(self.act(self.conv_head(feat))))
        return self.skip(out, up)
