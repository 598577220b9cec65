"""Extra generator loss terms for multispectral SR: spectral angle (fidelity of the spectra) and total variation.

Both are weighted additions to the supervised loss (``model.sam_weight``, ``model.tv_weight``) and appear as
their own loss terms (``spectral_angle``, ``total_variation``), so the gradient monitors see them separately.
"""

from __future__ import annotations

import torch
from kornia.losses import total_variation
from torch import Tensor, nn

__all__ = ["SpectralAngleLoss", "TotalVariationLoss"]


class SpectralAngleLoss(nn.Module):
    """Mean spectral angle (radians) between predicted and target spectra, the band axis being dim 1.

    ``acos(<p, t> / (|p| |t|))`` per pixel (or per sample for ``(B, C)`` vectors), averaged over the pixels
    whose spectra are non-zero in both tensors (as the SAM metric); 0 when there are none. Computed in
    float32; the cosine is clipped to ``[-1 + eps, 1 - eps]`` so the gradient stays finite when the spectra
    are parallel (``acos`` has an infinite slope at 1). No host-device synchronisation (masking by weights).

    Args:
        eps: the clipping margin of the cosine and the norm below which a spectrum counts as zero.
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        if not 0 < eps < 1:
            raise ValueError(f"SpectralAngleLoss eps must lie in (0, 1), got {eps!r}")
        self.eps = float(eps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape or pred.ndim < 2:
            raise ValueError(
                f"SpectralAngleLoss expects prediction and target of one shape (B, C, ...), got {tuple(pred.shape)} "
                f"and {tuple(target.shape)}"
            )
        p, t = pred.float(), target.float()
        p_norm, t_norm = torch.linalg.vector_norm(p, dim=1), torch.linalg.vector_norm(t, dim=1)
        valid = ((p_norm > self.eps) & (t_norm > self.eps)).to(p.dtype)
        cos = (p * t).sum(1) / (p_norm * t_norm).clamp_min(self.eps)
        angle = torch.acos(cos.clamp(-1.0 + self.eps, 1.0 - self.eps))
        return (angle * valid).sum() / valid.sum().clamp_min(1.0)

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"


class TotalVariationLoss(nn.Module):
    """Anisotropic total variation of the prediction, ``mean |dI/dy| + mean |dI/dx|`` per band, averaged over
    bands and samples (kornia's ``total_variation`` with ``reduction="mean"``, so independent of the patch size).

    Penalises high-frequency noise and ringing; images only (``(B, C, H, W)``). The target is not used.
    """

    def forward(self, pred: Tensor, target: Tensor | None = None) -> Tensor:
        if pred.ndim != 4:
            raise ValueError(
                f"TotalVariationLoss needs images (B, C, H, W), got shape {tuple(pred.shape)}; "
                "total variation is not defined for vector data (set the tv weight to 0)"
            )
        return total_variation(pred, reduction="mean").mean()
