"""Critics (discriminators) for adversarially regularized SR.

No batch norm anywhere: WGAN-GP penalises per-sample input gradients, which is only
meaningful when each sample's score depends on that sample alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from aerogan.nets.upsample import check_positive_int

__all__ = ["MLPCritic", "PatchCritic"]


class PatchCritic(nn.Module):
    """Size-agnostic PatchGAN-style critic returning one score per sample, shape ``(B,)``.

    ``conv3x3 s1 + LeakyReLU(0.2)``, then ``num_layers - 1`` x ``conv4x4 s2`` (channels doubling,
    capped at ``8 * num_features``) ``+ LeakyReLU(0.2)``, then ``conv3x3 -> 1`` patch score map whose
    spatial mean is the sample score. Optional spectral norm on every conv. Inputs must be at
    least ``2 ** (num_layers - 1)`` pixels on each side.

    ``in_channels=None`` (the default in configs) infers the band count from the first input, so the
    critic follows the data's target bands without repeating them in the config; the model's setup
    runs one dummy forward so the weights exist before DDP wraps the model or optimizers are built.
    """

    def __init__(
        self,
        in_channels: int | None = None,
        num_features: int = 64,
        num_layers: int = 4,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if in_channels is not None:
            check_positive_int("in_channels", in_channels)
        check_positive_int("num_features", num_features)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.min_input_size = 2 ** (num_layers - 1)

        self.spectral_norm = spectral_norm

        def wrap(conv: nn.Conv2d) -> nn.Module:
            return _spectral_norm(conv) if spectral_norm else conv

        cap = 8 * num_features
        first = (
            nn.LazyConv2d(num_features, 3, stride=1, padding=1)
            if in_channels is None
            else wrap(nn.Conv2d(in_channels, num_features, 3, stride=1, padding=1))
        )
        layers: list[nn.Module] = [first, nn.LeakyReLU(0.2)]
        ch = num_features
        for _ in range(num_layers - 1):
            nxt = min(ch * 2, cap)
            layers += [wrap(nn.Conv2d(ch, nxt, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            ch = nxt
        layers.append(wrap(nn.Conv2d(ch, 1, 3, stride=1, padding=1)))
        self.body = nn.Sequential(*layers)

    def patch_scores(self, x: Tensor) -> Tensor:
        """Return the raw ``(B, 1, h, w)`` patch score map (logits)."""
        if x.ndim != 4:
            raise ValueError(f"PatchCritic expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if min(h, w) < self.min_input_size:
            raise ValueError(
                f"PatchCritic input size {h}x{w} is too small: num_layers={self.num_layers} needs at "
                f"least {self.min_input_size}x{self.min_input_size} pixels (minimum {self.min_input_size})"
            )
        first = self.body[0]
        if isinstance(first, nn.modules.lazy.LazyModuleMixin) and first.has_uninitialized_params():
            with torch.no_grad():
                first(x[:1])  # materialises the weights (Lazy* -> Conv2d)
            if self.spectral_norm:
                self.body[0] = _spectral_norm(first)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Score ``(B, C, H, W)`` inputs: per-sample mean of the patch map, shape ``(B,)``."""
        return self.patch_scores(x).mean(dim=(1, 2, 3))


class MLPCritic(nn.Module):
    """MLP critic for vector outputs: ``num_layers`` x (Linear + LeakyReLU(0.2)) then Linear -> 1.

    Non-batch dims are flattened, so ``(B, D)`` or ``(B, *)`` with ``prod(*) == in_features`` works;
    returns ``(B,)``. ``in_features=None`` infers the width from the first input.
    """

    def __init__(self, in_features: int | None = None, hidden: int = 256, num_layers: int = 2) -> None:
        super().__init__()
        if in_features is not None:
            check_positive_int("in_features", in_features)
        self.in_features = in_features
        check_positive_int("hidden", hidden)
        check_positive_int("num_layers", num_layers)
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden) if width is not None else nn.LazyLinear(hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Score ``(B, in_features)`` inputs, returning ``(B,)``."""
        return self.body(x.flatten(1)).squeeze(1)
