"""Critics (discriminators) for adversarially regularized SR.

No batch norm anywhere: WGAN-GP penalises per-sample input gradients, which is only
meaningful when each sample's score depends on that sample alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
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

    ``condition=True`` makes it a conditional critic g(y | guides): ``forward(y, guides)`` interpolates
    each guide group (bicubic) onto y's grid and stacks it before y, so the critic judges whether y is
    consistent with the fine bands it was predicted from rather than only whether it looks real.
    ``in_channels`` then counts y's bands plus all guide bands (or is inferred, as above).
    """

    def __init__(
        self,
        in_channels: int | None = None,
        num_features: int = 64,
        num_layers: int = 4,
        spectral_norm: bool = False,
        condition: bool = False,
    ) -> None:
        super().__init__()
        self.condition = bool(condition)
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

    def conditioned(self, x: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """The critic's input: ``x`` alone, or (``condition=True``) the guides on x's grid stacked before ``x``."""
        if isinstance(guides, Tensor):
            raise ValueError(
                "PatchCritic: guides must be a list of tensors (one per guide group), got a tensor"
            )
        if not self.condition:
            if len(guides):
                raise ValueError(
                    f"PatchCritic was built with condition=False but received {len(guides)} guide tensor(s); "
                    "set condition: true to condition the critic on the guides, or do not pass them"
                )
            return x
        if not len(guides):
            raise ValueError("PatchCritic was built with condition=True but received no guides")
        if x.ndim != 4:
            raise ValueError(f"PatchCritic expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        parts: list[Tensor] = []
        for k, g in enumerate(guides):
            if (
                g.ndim != 4
                or g.shape[0] != b
                or g.shape[-2] == 0
                or g.shape[-1] == 0
                or h % g.shape[-2]
                or w % g.shape[-1]
                or h // g.shape[-2] != w // g.shape[-1]
            ):
                raise ValueError(
                    f"PatchCritic: guides[{k}] must be (B={b}, C_k, {h}/r, {w}/r) for an integer ratio r "
                    f"(input shape {tuple(x.shape)}), got shape {tuple(g.shape)}"
                )
            ratio = h // g.shape[-2]
            parts.append(
                g if ratio == 1 else F.interpolate(g, size=(h, w), mode="bicubic", align_corners=False)
            )
        return torch.cat([*parts, x], dim=1)

    def forward(self, x: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """Score ``(B, C, H, W)`` inputs (given their ``guides`` when conditioned): shape ``(B,)``.

        The score is the per-sample mean of the patch map.
        """
        return self.patch_scores(self.conditioned(x, guides)).mean(dim=(1, 2, 3))


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
            layers += [
                nn.Linear(width, hidden) if width is not None else nn.LazyLinear(hidden),
                nn.LeakyReLU(0.2),
            ]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Score ``(B, in_features)`` inputs, returning ``(B,)``."""
        return self.body(x.flatten(1)).squeeze(1)
