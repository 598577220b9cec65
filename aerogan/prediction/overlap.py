"""The receptive radius of a generator, measured, and the tile overlap that makes tiling seamless.

Tiled prediction drops ``overlap // 4`` input pixels at every inner tile edge and feathers the next
half of the overlap (see :func:`aerogan.prediction.plan.blend_weights`); the output is seamless when the
dropped margin is at least the generator's receptive radius. The radius is measured rather than
derived from the architecture: the gradient of one central output pixel with respect to a random
input is non-zero exactly over the pixels that pixel depends on.
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn


def receptive_radius(generator: nn.Module, in_channels: int, scale: int, max_probe: int = 512) -> int:
    """Largest LR-pixel distance from which an input pixel influences an output pixel (measured)."""
    param = next(generator.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = generator.training
    generator.eval()
    probe = 32
    try:
        while True:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(1, in_channels, probe, probe, generator=gen).to(device=device, dtype=dtype).requires_grad_(True)
            with torch.enable_grad():
                y = generator(x)
                centre = (probe // 2) * scale
                (grad,) = torch.autograd.grad(y[..., centre, centre].sum(), x)
            hit = grad.abs().sum(dim=(0, 1)) > 0
            rows = hit.any(1).nonzero().flatten()
            cols = hit.any(0).nonzero().flatten()
            if rows.numel() == 0:
                return 0
            c = probe // 2
            radius = int(max(c - rows.min(), rows.max() - c, c - cols.min(), cols.max() - c))
            if radius < probe // 2 - 1 or probe >= max_probe:
                return radius
            probe *= 2
    finally:
        generator.train(was_training)


def seamless_overlap(generator: nn.Module, in_channels: int, scale: int, tile: int) -> int:
    """The smallest overlap (a multiple of 8) whose dropped margin covers the receptive radius.

    Capped at half the tile, with a warning, when the tile is too small for a seamless result.
    """
    radius = receptive_radius(generator, in_channels, scale)
    overlap = 8 * math.ceil(4 * radius / 8)
    if overlap > tile // 2:
        rank_zero_warn(
            f"the generator's receptive radius is {radius} LR px, which needs an overlap of {overlap} px for "
            f"seamless tiles, more than half the tile ({tile}); using {tile // 2}. Use a tile of at least {2 * overlap} px."
        )
        overlap = tile // 2
    return overlap
