"""Pixel-wise (fidelity) losses for SR: the loss modules and the shortcut names that build them."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

__all__ = ["PIXEL_LOSSES", "CharbonnierLoss", "HalfSumSquaredError", "PixelLossName", "make_pixel_loss"]

#: The shortcut names, the one definition of them (the registry below follows this order).
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


class HalfSumSquaredError(nn.Module):
    """``0.5 * sum((pred - target)^2)`` over the batch (not a mean): the summed squared loss of the two-layer theory.

    ``L_sup = ½ Σ_p ‖f(x_p) − y_p‖²`` when the batch is the whole training set (docs/science.md §2).
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return 0.5 * ((pred - target) ** 2).sum()


#: Shortcut name -> loss class, in the order of :data:`PixelLossName`.
PIXEL_LOSSES: dict[str, type[nn.Module]] = dict(
    zip(get_args(PixelLossName), (nn.L1Loss, nn.MSELoss, CharbonnierLoss, HalfSumSquaredError), strict=True)
)


def make_pixel_loss(loss: str | nn.Module, parameter: str = "supervised_loss") -> nn.Module:
    """The pixel loss for ``loss``: a module ``(pred, target) -> scalar`` is returned as is, a shortcut name is built.

    Names: ``l1``, ``mse``, ``charbonnier`` (:class:`CharbonnierLoss`, eps 1e-3) and ``half_sse``
    (:class:`HalfSumSquaredError`). ``parameter`` names the setting in the error raised for an unknown name.
    """
    if isinstance(loss, nn.Module):
        return loss
    if isinstance(loss, str) and loss in PIXEL_LOSSES:
        return PIXEL_LOSSES[loss]()
    raise ValueError(
        f"{parameter}={loss!r} is not a pixel loss: expected one of the names {', '.join(PIXEL_LOSSES)} "
        "or a loss module (class_path: aerogan.losses.CharbonnierLoss, ...)"
    )
