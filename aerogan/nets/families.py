r"""The generator families of the epochs-to-converge table (docs/science.md §3).

The table, from the talk slides accompanying arXiv 2010.00522, lists six configurations: MLP-Deep (6 layers, ELU, 2 residual blocks), CNN-ResNet, CNN-DenseNet,
CNN-DenseNet with an L1 and with an L2 weight penalty, and CNN-ResNet with average pooling. Their exact
depths, widths and data are not published; these are image-to-image versions of the same families, so one
table can be measured on a dense band-synthesis / SR task:

* :class:`MLPDeep`: a *per-pixel* MLP (1×1 convolutions): 6 weight layers, ELU, 2 residual blocks;
* :class:`CNNResNet`: 3×3 conv residual blocks; ``pooling="avg"`` runs the blocks at half resolution after a
  2×2 average pool and brings them back with bilinear upsampling plus a full-resolution skip
  (CNN-ResNet-AvgPool: a global pool, as in a classifier, would destroy the per-pixel output);
* :class:`CNNDenseNet`: densely connected blocks (each layer sees all previous feature maps of its block,
  a 1×1 fusion convolution and a local residual, the RDB form used in ALERT).

Every generator takes ``(in_channels, out_channels, scale)`` (linked from the datamodule by the CLI);
``scale > 1`` first brings the input to the output grid (bicubic), ``scale = 1`` is band synthesis.

**Weight penalty** (CNN-DenseNet-L1/-L2): ``weight_penalty="l1"|"l2"`` with ``weight_penalty_coef`` makes
:meth:`regularization_loss` return ``coef · Σ|w|`` or ``coef · Σ w²`` over the conv weights (biases excluded);
:class:`aerogan.AdversarialRegularization` adds it to the generator loss as the term ``weight_penalty`` (it is
part of the baseline *and* the regularized objective, so the comparison stays supervised-vs-regularized).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerogan.nets.upsample import check_positive_int, check_scale, upsample_bicubic

__all__ = ["CNNDenseNet", "CNNResNet", "MLPDeep", "WeightPenalty"]

WeightPenalty = Literal["none", "l1", "l2"]


class _PenalizedGenerator(nn.Module):
    """Shared plumbing: argument checks, the input resampling and the optional weight penalty."""

    def __init__(
        self, in_channels: int, out_channels: int, scale: int, weight_penalty: str, weight_penalty_coef: float
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.scale = check_scale(scale)
        if weight_penalty not in ("none", "l1", "l2"):
            raise ValueError(f"weight_penalty must be 'none', 'l1' or 'l2', got {weight_penalty!r}")
        if not weight_penalty_coef >= 0:
            raise ValueError(f"weight_penalty_coef must be >= 0, got {weight_penalty_coef!r}")
        self.weight_penalty = weight_penalty
        self.weight_penalty_coef = float(weight_penalty_coef)

    def _to_output_grid(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return upsample_bicubic(x, self.scale) if self.scale > 1 else x

    def penalized_weights(self) -> list[Tensor]:
        """The weights the penalty acts on: every conv / linear weight (no biases)."""
        return [m.weight for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    def regularization_loss(self) -> Tensor | None:
        """``coef · Σ|w|`` (l1) or ``coef · Σ w²`` (l2) over :meth:`penalized_weights`; ``None`` without penalty."""
        if self.weight_penalty == "none" or self.weight_penalty_coef == 0:
            return None
        if self.weight_penalty == "l1":
            total = sum(w.abs().sum() for w in self.penalized_weights())
        else:
            total = sum(w.pow(2).sum() for w in self.penalized_weights())
        return self.weight_penalty_coef * total  # type: ignore[operator]


class _ELUResidualBlock(nn.Module):
    """``elu(x + conv1x1(elu(conv1x1(x))))``: a per-pixel residual block."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(width, width, 1)
        self.fc2 = nn.Conv2d(width, width, 1)
        self.act = nn.ELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.fc2(self.act(self.fc1(x))))


class MLPDeep(_PenalizedGenerator):
    """MLP-Deep: a per-pixel MLP of 6 weight layers (1×1 convs), ELU, 2 residual blocks.

    ``head (in→width) → 2 × residual block (2 layers each) → tail (width→out)``: 1 + 4 + 1 = 6 weight
    layers for ``num_blocks=2``. Each output pixel depends only on the input pixel at the same place.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 1,
        width: int = 64,
        num_blocks: int = 2,
        weight_penalty: WeightPenalty = "none",
        weight_penalty_coef: float = 0.0,
    ) -> None:
        super().__init__(in_channels, out_channels, scale, weight_penalty, weight_penalty_coef)
        width = check_positive_int("width", width)
        self.head = nn.Conv2d(self.in_channels, width, 1)
        self.act = nn.ELU()
        self.blocks = nn.Sequential(*(_ELUResidualBlock(width) for _ in range(num_blocks)))
        self.tail = nn.Conv2d(width, self.out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, H, W) -> (B, out, H·scale, W·scale)``."""
        return self.tail(self.blocks(self.act(self.head(self._to_output_grid(x)))))


class _ResidualBlock(nn.Module):
    """``x + conv3x3(relu(conv3x3(x)))``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class CNNResNet(_PenalizedGenerator):
    """CNN-ResNet (``pooling="none"``) and CNN-ResNet-AvgPool (``pooling="avg"``).

    ``head conv3x3 + ReLU → num_blocks residual blocks → tail conv3x3``. With ``pooling="avg"`` the blocks
    run on ``avg_pool2d(head, 2)`` (ceil mode, so odd sizes work) and their output is upsampled bilinearly
    back to the head's size and added to the head features before the tail.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 1,
        num_features: int = 32,
        num_blocks: int = 4,
        pooling: Literal["none", "avg"] = "none",
        weight_penalty: WeightPenalty = "none",
        weight_penalty_coef: float = 0.0,
    ) -> None:
        super().__init__(in_channels, out_channels, scale, weight_penalty, weight_penalty_coef)
        if pooling not in ("none", "avg"):
            raise ValueError(f"pooling must be 'none' or 'avg', got {pooling!r}")
        f = check_positive_int("num_features", num_features)
        self.pooling = pooling
        self.head = nn.Conv2d(self.in_channels, f, 3, padding=1)
        self.act = nn.ReLU()
        self.blocks = nn.Sequential(*(_ResidualBlock(f) for _ in range(num_blocks)))
        self.tail = nn.Conv2d(f, self.out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, H, W) -> (B, out, H·scale, W·scale)``."""
        h = self.act(self.head(self._to_output_grid(x)))
        if self.pooling == "avg":
            low = self.blocks(F.avg_pool2d(h, 2, ceil_mode=True))
            h = h + F.interpolate(low, size=h.shape[-2:], mode="bilinear", align_corners=False)
        else:
            h = self.blocks(h)
        return self.tail(h)


class _DenseBlock(nn.Module):
    """``num_layers`` conv3x3+ReLU layers, each fed the concatenation of all previous maps; 1×1 fusion; residual."""

    def __init__(self, width: int, growth: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv2d(width + i * growth, growth, 3, padding=1) for i in range(num_layers)
        )
        self.fusion = nn.Conv2d(width + num_layers * growth, width, 1)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        maps = [x]
        for layer in self.layers:
            maps.append(self.act(layer(torch.cat(maps, dim=1))))
        return x + self.fusion(torch.cat(maps, dim=1))


class CNNDenseNet(_PenalizedGenerator):
    """CNN-DenseNet (and its L1 / L2 weight-penalty variants via ``weight_penalty``).

    ``head conv3x3 → num_blocks dense blocks (num_layers layers of growth channels each) → tail conv3x3``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 1,
        num_features: int = 32,
        growth: int = 16,
        num_layers: int = 3,
        num_blocks: int = 2,
        weight_penalty: WeightPenalty = "none",
        weight_penalty_coef: float = 0.0,
    ) -> None:
        super().__init__(in_channels, out_channels, scale, weight_penalty, weight_penalty_coef)
        f = check_positive_int("num_features", num_features)
        check_positive_int("growth", growth)
        check_positive_int("num_layers", num_layers)
        self.head = nn.Conv2d(self.in_channels, f, 3, padding=1)
        self.blocks = nn.Sequential(*(_DenseBlock(f, growth, num_layers) for _ in range(num_blocks)))
        self.tail = nn.Conv2d(f, self.out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, H, W) -> (B, out, H·scale, W·scale)``."""
        return self.tail(self.blocks(self.head(self._to_output_grid(x))))
