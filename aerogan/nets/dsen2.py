"""DSen2 (Lanaras et al. 2018, "Super-resolution of Sentinel-2 images").

The LR bands are first brought to the HR grid (bicubic), then a ResNet of constant width
predicts a residual; ``scale=1`` is band synthesis on a common grid.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from aerogan.nets.upsample import BandSkip, check_positive_int, check_scale, upsample_bicubic

__all__ = ["DSen2", "ScaledResidualBlock"]


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


class DSen2(nn.Module):
    """DSen2 generator: ``bicubic(x) -> conv+ReLU -> K scaled residual blocks -> conv -> + skip bands``.

    Skip rule as in :class:`~aerogan.nets.srresnet.SRResNet`: ``skip_bands=None`` means identity
    skip when ``in_channels == out_channels`` and no skip otherwise.
    Maps ``(B, in, H, W)`` to ``(B, out, H*scale, W*scale)``.
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
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.scale = check_scale(scale)
        check_positive_int("num_features", num_features)
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(f"num_blocks must be an integer >= 0, got {num_blocks!r}")
        # Input is already on the HR grid when the skip is taken, hence scale 1 here.
        self.skip = BandSkip(in_channels, out_channels, 1, skip_bands)

        self.conv_head = nn.Conv2d(in_channels, num_features, 3, padding=1)
        self.act = nn.ReLU()
        self.blocks = nn.Sequential(
            *(ScaledResidualBlock(num_features, residual_scale) for _ in range(num_blocks))
        )
        self.conv_out = nn.Conv2d(num_features, out_channels, 3, padding=1)

    @property
    def skip_bands(self) -> Sequence[int] | None:
        """Resolved input-band indices of the global skip (``None`` if there is no skip)."""
        return self.skip.bands

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve ``x`` of shape ``(B, in, H, W)`` to ``(B, out, H*scale, W*scale)``."""
        up = upsample_bicubic(x, self.scale)
        out = self.conv_out(self.blocks(self.act(self.conv_head(up))))
        return self.skip(out, up)
