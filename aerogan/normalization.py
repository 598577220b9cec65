"""Per-band normalisation stored with the model, so checkpoints and exports carry their statistics."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class BandNormalizer(nn.Module):
    """``(x - mean) / std`` per band, with buffers sized when statistics are first set or loaded.

    The buffers start empty (the band count is a property of the data); loading a state dict resizes
    them, so a bare model can be restored from any checkpoint.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("std", torch.ones(0))

    @property
    def initialized(self) -> bool:
        return self.mean.numel() > 0

    def set(self, mean: Tensor, std: Tensor) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.shape != std.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} must have the same number of bands")
        if not torch.isfinite(mean).all() or not (torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"band statistics must be finite with std > 0, got mean={mean.tolist()} std={std.tolist()}")
        device = self.mean.device
        self.mean = mean.to(device)
        self.std = std.to(device)

    def _view(self, t: Tensor, x: Tensor) -> Tensor:
        if not self.initialized:
            raise RuntimeError("BandNormalizer used before its statistics were set (no datamodule statistics or checkpoint)")
        if x.shape[1] != t.numel():
            raise ValueError(f"expected {t.numel()} bands, got a tensor with {x.shape[1]} (shape {tuple(x.shape)})")
        return t.to(x.dtype).view(1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self._view(self.mean, x)) / self._view(self.std, x)

    def inverse(self, x: Tensor) -> Tensor:
        return x * self._view(self.std, x) + self._view(self.mean, x)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in ("mean", "std"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
