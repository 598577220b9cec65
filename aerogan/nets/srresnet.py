"""SRResNet without batch norm (MSRResNet style, Ledig et al. 2017 / BasicSR).

Batch norm is dropped because it hurts SR fidelity and couples the samples of a batch; the
net predicts a residual over the bicubic-upsampled skip bands.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from aerogan.nets.guidance import GuidedGenerator, GuideFusion
from aerogan.nets.upsample import BandSkip, Upsampler, check_positive_int, check_scale, start_at_skip_

__all__ = ["ResidualBlockNoBN", "SRResNet", "default_init_weights"]


@torch.no_grad()
def default_init_weights(modules: Iterable[nn.Module], scale: float = 1.0, bias_fill: float = 0.0) -> None:
    """BasicSR ``default_init_weights``: Kaiming-normal conv/linear weights times ``scale``, constant bias.

    A small ``scale`` (0.1) in residual branches starts each block close to the identity,
    which keeps deep BN-free residual nets stable early in training.
    """
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.fill_(bias_fill)


class ResidualBlockNoBN(nn.Module):
    """``x + conv(relu(conv(x)))`` without batch norm (EDSR / MSRResNet residual block)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(num_features, num_features, 3, padding=1)
        default_init_weights([self.conv1, self.conv2], scale=0.1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the residual block; shape is preserved."""
        return x + self.conv2(self.act(self.conv1(x)))


class SRResNet(GuidedGenerator):
    """BN-free SRResNet generator for multispectral SR.

    ``conv head -> ReLU -> num_blocks x ResidualBlockNoBN -> conv (+ long skip) -> Upsampler -> conv out``,
    plus the bicubic-upsampled ``skip_bands`` of the input (``None``: identity skip when
    ``in_channels == out_channels``, otherwise no skip). Maps ``(B, in, H, W)`` to
    ``(B, out, H*scale, W*scale)``.

    Guided form (``guide_channels``/``guide_ratios`` not empty): each guide group is pixel-unshuffled
    onto the input grid and stacked with ``x`` before the head conv (:class:`~aerogan.nets.guidance.GuideFusion`,
    lossless for the guide's detail); the skip stays the upsampled target bands.

    ``start_at_skip`` (default): the output conv is zeroed, so the untrained net returns its skip (bicubic)
    exactly (:func:`~aerogan.nets.upsample.start_at_skip_`); without a skip it keeps its initialisation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int,
        num_features: int = 64,
        num_blocks: int = 16,
        skip_bands: list[int] | None = None,
        guide_channels: Sequence[int] = (),
        guide_ratios: Sequence[int] = (),
        start_at_skip: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.scale = check_scale(scale)
        check_positive_int("num_features", num_features)
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(f"num_blocks must be an integer >= 0, got {num_blocks!r}")
        self.skip = BandSkip(in_channels, out_channels, scale, skip_bands)
        self.fusion = GuideFusion(in_channels, scale, guide_channels, guide_ratios, owner="SRResNet")

        self.conv_head = nn.Conv2d(self.fusion.out_channels, num_features, 3, padding=1)
        self.act = nn.ReLU()
        self.blocks = nn.Sequential(*(ResidualBlockNoBN(num_features) for _ in range(num_blocks)))
        self.conv_body = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.upsampler = Upsampler(num_features, scale)
        self.conv_out = nn.Conv2d(num_features, out_channels, 3, padding=1)
        default_init_weights([self.conv_head, self.conv_body, self.upsampler, self.conv_out], scale=0.1)
        start_at_skip_(self.conv_out, self.skip, start_at_skip)

    def forward(self, x: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """Super-resolve ``x`` of shape ``(B, in, H, W)`` with its ``guides`` to ``(B, out, H*scale, W*scale)``."""
        feat = self.act(self.conv_head(self.fusion(x, guides)))
        feat = feat + self.conv_body(self.blocks(feat))
        out = self.conv_out(self.upsampler(feat))
        return self.skip(out, x)
