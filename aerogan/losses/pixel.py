"""Pixel-wise (fidelity) losses for SR."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

__all__ = ["CharbonnierLoss", "PixelLossName", "make_pixel_loss"]

PixelLossName = Literal["l1", "mse", "charbonnier", "half_sse"]


class CharbonnierLoss(nn.Module):
    """Charbonnier loss ``mean(sqrt((pred - target)^2 + eps^2))``: a smooth, outlier-robust L1."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.eps = float(eps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Return the scalar mean Charbonnier distance between ``pred`` and ``target``."""
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class _HalfSumSquaredError(nn.Module):
    """``0.5 * sum((pred - target)^2)``: the summed squared loss of the two-layer theory."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return 0.5 * ((pred - target) ** 2).sum()


def make_pixel_loss(name: str) -> nn.Module:
    """Build the pixel loss called ``name`` (one of ``l1``, ``mse``, ``charbonnier``, ``half_sse``).

    ``half_sse`` is ``0.5 * sum((pred - target)^2)`` over the batch (not a mean): the two-layer theory's
    ``L_sup = ½ Σ_p ‖f(x_p) − y_p‖²`` when the batch is the whole training set.
    """
    allowed = get_args(PixelLossName)
    if name == "l1":
        return nn.L1Loss()
    if name == "mse":
        return nn.MSELoss()
    if name == "charbonnier":
        return CharbonnierLoss()
    if name == "half_sse":
        return _HalfSumSquaredError()
    raise ValueError(f"unknown pixel loss name {name!r}; allowed values: {', '.join(allowed)}")
