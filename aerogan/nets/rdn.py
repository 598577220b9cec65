"""Residual-dense-block generator (RDN, Zhang et al. 2018; as used by ALERT-style SR GANs).

Dense connections reuse low-level spectral features across depth; local and global feature
fusion keep the width bounded. The net predicts a residual over the bicubic skip bands.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aerogan.nets.guidance import GuidedGenerator, GuideFusion
from aerogan.nets.upsample import BandSkip, Upsampler, check_positive_int, check_scale, start_at_skip_

__all__ = ["RDNGenerator", "ResidualDenseBlock"]


class ResidualDenseBlock(nn.Module):
    """RDB: ``num_layers`` densely connected conv3x3+ReLU layers, 1x1 local fusion, local residual."""

    def __init__(self, num_features: int, num_layers: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_features + i * growth, growth, 3, padding=1), nn.ReLU())
            for i in range(num_layers)
        )
        self.fusion = nn.Conv2d(num_features + num_layers * growth, num_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block; shape is preserved."""
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        return x + self.fusion(torch.cat(feats, dim=1))


class RDNGenerator(GuidedGenerator):
    """RDN generator with global skip bands.

    ``shallow conv (F_-1) -> conv (F_0) -> num_blocks x RDB -> 1x1 + 3x3 global fusion over all RDB
    outputs -> + F_-1 -> Upsampler -> conv out -> + bicubic skip bands``. Skip rule as in
    :class:`~aerogan.nets.srresnet.SRResNet`. Maps ``(B, in, H, W)`` to ``(B, out, H*scale, W*scale)``.

    Guided form (``guide_channels``/``guide_ratios`` not empty): each guide group is pixel-unshuffled
    onto the input grid and stacked with ``x`` before the shallow conv
    (:class:`~aerogan.nets.guidance.GuideFusion`); the skip stays the upsampled target bands.

    ``start_at_skip`` (default): the output conv is zeroed, so the untrained net returns its skip (bicubic)
    exactly (:func:`~aerogan.nets.upsample.start_at_skip_`); without a skip it keeps its initialisation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int,
        num_features: int = 64,
        num_blocks: int = 4,
        num_layers: int = 4,
        growth: int = 32,
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
        check_positive_int("num_blocks", num_blocks)
        check_positive_int("num_layers", num_layers)
        check_positive_int("growth", growth)
        self.skip = BandSkip(in_channels, out_channels, scale, skip_bands)
        self.fusion = GuideFusion(in_channels, scale, guide_channels, guide_ratios, owner="RDNGenerator")

        self.conv_shallow1 = nn.Conv2d(self.fusion.out_channels, num_features, 3, padding=1)
        self.conv_shallow2 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.blocks = nn.ModuleList(
            ResidualDenseBlock(num_features, num_layers, growth) for _ in range(num_blocks)
        )
        self.global_fusion = nn.Sequential(
            nn.Conv2d(num_blocks * num_features, num_features, 1),
            nn.Conv2d(num_features, num_features, 3, padding=1),
        )
        self.upsampler = Upsampler(num_features, scale)
        self.conv_out = nn.Conv2d(num_features, out_channels, 3, padding=1)
        start_at_skip_(self.conv_out, self.skip, start_at_skip)

    def forward(self, x: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """Super-resolve ``x`` of shape ``(B, in, H, W)`` with its ``guides`` to ``(B, out, H*scale, W*scale)``."""
        shallow = self.conv_shallow1(self.fusion(x, guides))
        feat = self.conv_shallow2(shallow)
        block_outs: list[Tensor] = []
        for block in self.blocks:
            feat = block(feat)
            block_outs.append(feat)
        feat = self.global_fusion(torch.cat(block_outs, dim=1)) + shallow
        out = self.conv_out(self.upsampler(feat))
        return self.skip(out, x)
