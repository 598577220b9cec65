"""Guide fusion shared by the guided ("multi-resolution") generators.

Multi-resolution sensors (Sentinel-2: 10 m, 20 m, 60 m groups) are super-resolved with the finer
bands as guides: the fine bands carry the geometry, the coarse target bands the spectrum. A
generator receives the target bands ``x`` on their coarse grid ``(B, C_t, h, w)`` and one tensor per
guide group, finest first; guide ``k`` lies on a grid ``guide_ratios[k]`` times coarser than the output
grid, i.e. ``(B, guide_channels[k], h*scale/guide_ratios[k], w*scale/guide_ratios[k])``.

:class:`GuideFusion` brings every guide group onto the grid the generator works on and stacks them
with its input, in one of two ways:

- ``grid="output"`` (pre-upsampling nets such as DSen2): each guide is interpolated by its ratio to the
  output grid and concatenated with the interpolated target bands, as in DSen2 (Lanaras et al. 2018).
- ``grid="input"`` (post-upsampling nets such as SRResNet and RDN, which work on the coarse grid):
  each guide is brought to the coarse grid by pixel-unshuffle (space-to-depth) by ``scale/ratio``.
  Unlike any resampling, space-to-depth is lossless: every fine pixel becomes a channel of the coarse
  pixel that covers it, so the head convolution still sees all the guide's detail (the inverse of
  sub-pixel convolution, Shi et al. 2016; used for the same purpose at the input of Real-ESRGAN's
  x1/x2 generators, Wang et al. 2021).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerogan.nets.upsample import check_interpolation, check_positive_int, check_scale, upsample

__all__ = ["GuideFusion", "GuidedGenerator", "check_guide_config", "check_guides"]

Grid = Literal["input", "output"]


def _int_list(name: str, values: object) -> tuple[int, ...]:
    """``values`` as a tuple of integers >= 1, or a ``ValueError`` naming ``name`` and the bad entry."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list of integers >= 1 (one per guide group), got {values!r}")
    out: list[int] = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, Integral) or int(v) < 1:
            raise ValueError(f"{name}[{i}] must be an integer >= 1, got {v!r} (in {name}={list(values)})")
        out.append(int(v))
    return tuple(out)


def check_guide_config(
    guide_channels: Sequence[int], guide_ratios: Sequence[int], scale: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validate the guide groups of a generator of ``scale``; return ``(channels, ratios)`` as tuples.

    One ratio per channel count; each ratio (guide grid / output grid) must divide ``scale``, so that
    every guide grid is an integer multiple of the input grid and an integer fraction of the output grid.
    """
    scale = check_scale(scale)
    channels = _int_list("guide_channels", guide_channels)
    ratios = _int_list("guide_ratios", guide_ratios)
    if len(channels) != len(ratios):
        raise ValueError(
            "guide_channels and guide_ratios must have one entry per guide group, got "
            f"guide_channels={list(channels)} ({len(channels)} entries) and "
            f"guide_ratios={list(ratios)} ({len(ratios)} entries)"
        )
    allowed = [d for d in range(1, scale + 1) if scale % d == 0]
    for i, r in enumerate(ratios):
        if scale % r:
            raise ValueError(
                f"guide_ratios[{i}]={r} does not divide scale={scale}: a guide's grid must be an integer "
                f"fraction of the output grid and a multiple of the input grid (allowed ratios: {allowed})"
            )
    return channels, ratios


def check_guides(
    x: Tensor,
    guides: Sequence[Tensor],
    guide_channels: Sequence[int],
    guide_ratios: Sequence[int],
    scale: int,
    owner: str = "generator",
) -> None:
    """Check the guide tensors given with ``x`` against the guide groups a model was built with.

    Raises ``ValueError`` naming the guide, with the expected and the received shape.
    """
    if isinstance(guides, Tensor):
        raise ValueError(
            f"{owner}: guides must be a list of tensors (one per guide group), got a single tensor"
        )
    n, n_expected = len(guides), len(guide_channels)
    if n_expected == 0 and n > 0:
        raise ValueError(
            f"{owner} was built without guides (guide_channels=[], guide_ratios=[]) but forward received "
            f"{n} guide tensor(s); build it with guide_channels/guide_ratios matching the data"
        )
    if n != n_expected:
        raise ValueError(
            f"{owner} expects {n_expected} guide tensor(s) (guide_channels={list(guide_channels)}, "
            f"guide_ratios={list(guide_ratios)}), got {n}"
        )
    if x.ndim != 4:
        raise ValueError(f"{owner} input must be a (B, C, h, w) tensor, got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    for k, (g, c, r) in enumerate(zip(guides, guide_channels, guide_ratios, strict=True)):
        expected = (b, c, h * scale // r, w * scale // r)
        if not isinstance(g, Tensor) or tuple(g.shape) != expected:
            got = tuple(g.shape) if isinstance(g, Tensor) else type(g).__name__
            raise ValueError(
                f"{owner}: guides[{k}] must have shape {expected} = (B, guide_channels[{k}]={c}, "
                f"h*scale/guide_ratios[{k}], w*scale/guide_ratios[{k}]) for input {tuple(x.shape)}, "
                f"scale={scale}, guide_ratios[{k}]={r}; got {got}"
            )


class GuideFusion(nn.Module):
    """Bring the guide groups onto a generator's working grid and stack them before its input.

    ``grid="output"``: guide ``k`` is interpolated by ``guide_ratios[k]`` (``interpolation``) onto the
    output grid, adding ``guide_channels[k]`` channels. ``grid="input"``: guide ``k`` is pixel-unshuffled
    by ``scale // guide_ratios[k]`` onto the input grid, adding ``guide_channels[k] * (scale //
    guide_ratios[k]) ** 2`` channels. ``owner`` names the model in error messages. Channel order: guides finest first, then the base (the order of
    the published DSen2 model). Without guide groups the module returns its base unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        scale: int,
        guide_channels: Sequence[int] = (),
        guide_ratios: Sequence[int] = (),
        grid: Grid = "input",
        interpolation: str = "bicubic",
        owner: str = "generator",
    ) -> None:
        super().__init__()
        self.owner = owner  # named in error messages
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.scale = check_scale(scale)
        self.guide_channels, self.guide_ratios = check_guide_config(guide_channels, guide_ratios, scale)
        if grid not in ("input", "output"):
            raise ValueError(f"grid must be 'input' or 'output', got {grid!r}")
        self.grid: Grid = grid
        self.interpolation = check_interpolation("interpolation", interpolation)
        if grid == "output":
            self.factors = tuple(self.guide_ratios)
            added = sum(self.guide_channels)
        else:
            self.factors = tuple(self.scale // r for r in self.guide_ratios)
            added = sum(c * f * f for c, f in zip(self.guide_channels, self.factors, strict=True))
        self.out_channels = self.in_channels + added

    @property
    def enabled(self) -> bool:
        """Whether the model has guide groups at all."""
        return bool(self.guide_channels)

    def forward(self, x: Tensor, guides: Sequence[Tensor] = (), base: Tensor | None = None) -> Tensor:
        """Check ``guides`` against ``x`` (the coarse input) and stack them, on the working grid, before ``base``.

        ``base`` is what the net works on: ``x`` itself for ``grid="input"`` (the default), the
        upsampled ``x`` for ``grid="output"`` (computed here when not given).
        """
        check_guides(x, guides, self.guide_channels, self.guide_ratios, self.scale, self.owner)
        if base is None:
            base = x if self.grid == "input" else upsample(x, self.scale, self.interpolation)
        if not self.guide_channels:
            return base
        if self.grid == "output":
            parts = [upsample(g, f, self.interpolation) for g, f in zip(guides, self.factors, strict=True)]
        else:
            parts = [
                g if f == 1 else F.pixel_unshuffle(g, f) for g, f in zip(guides, self.factors, strict=True)
            ]
        return torch.cat([*parts, base], dim=1)

    def extra_repr(self) -> str:
        return (
            f"guide_channels={list(self.guide_channels)}, guide_ratios={list(self.guide_ratios)}, "
            f"grid={self.grid!r}, out_channels={self.out_channels}"
        )


class GuidedGenerator(nn.Module):
    """Base of the generators that take guide groups: they hold a :class:`GuideFusion` as ``self.fusion``
    and a :class:`~aerogan.nets.upsample.BandSkip` as ``self.skip``; this exposes what the module and the
    CLI read from them."""

    fusion: GuideFusion

    @property
    def skip_bands(self) -> Sequence[int] | None:
        """Resolved input-band indices of the global skip (``None`` if there is no skip)."""
        return self.skip.bands

    @property
    def guide_channels(self) -> tuple[int, ...]:
        """Channels of each guide group (empty: single-input model)."""
        return self.fusion.guide_channels

    @property
    def guide_ratios(self) -> tuple[int, ...]:
        """Ratio of each guide group's grid to the output grid."""
        return self.fusion.guide_ratios
