"""Geometric augmentation of whole samples: flips and 90-degree rotations.

These are the only augmentations that commute with the degradation and are valid for every band,
so they are applied to the HR image before LR synthesis, or identically to an (LR, HR) pair.
"""

from __future__ import annotations

import torch
from torch import Tensor


def random_dihedral(tensors: list[Tensor], generator: torch.Generator | None = None) -> list[Tensor]:
    """Apply one random element of the dihedral group (flips, rot90) per sample, the same to each tensor.

    All tensors are (B, C, H, W) with square or rotation-compatible spatial shapes; the same transform
    is applied to sample i of every tensor, so co-registered LR/HR pairs stay aligned.
    """
    b = tensors[0].shape[0]
    codes = torch.randint(0, 8, (b,), generator=generator).tolist()
    out: list[list[Tensor]] = [[] for _ in tensors]
    for i, code in enumerate(codes):
        for j, t in enumerate(tensors):
            x = t[i]
            if code & 1:
                x = x.flip(-1)
            if code & 2:
                x = x.flip(-2)
            if code & 4:
                x = x.transpose(-1, -2)
            out[j].append(x)
    return [torch.stack(o) for o in out]
