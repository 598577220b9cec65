"""The measured receptive radius of a generator and the seamless tile overlap derived from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aerogan import SuperResolution
from aerogan.nets import SRResNet
from aerogan.prediction import receptive_radius, seamless_overlap, super_resolve_array


def _model() -> SuperResolution:
    torch.manual_seed(0)
    m = SuperResolution(generator=SRResNet(3, 3, 2, num_features=8, num_blocks=2, start_at_skip=False), critic=None, objective="supervised", num_panels=0)
    m.input_norm.set(torch.full((3,), 0.3), torch.full((3,), 0.1))
    m.target_norm.set(torch.full((3,), 0.3), torch.full((3,), 0.1))
    m.metadata = {"scale": 2}
    return m.eval()


def test_measured_overlap_covers_the_receptive_radius() -> None:
    """The measured radius of a conv stack is exact, and the default overlap makes tiling seamless."""
    torch.manual_seed(0)
    stack = torch.nn.Sequential(*[torch.nn.Conv2d(2, 2, 3, padding=1) for _ in range(5)])
    assert receptive_radius(stack, in_channels=2, scale=1) == 5  # five 3x3 convs
    net = SRResNet(3, 3, 2, num_features=8, num_blocks=4, start_at_skip=False)  # head, 8 block convs, body = 10 convs before the x2 upsampler
    radius = receptive_radius(net, in_channels=3, scale=2)
    assert 11 <= radius <= 13
    overlap = seamless_overlap(net, 3, 2, tile=128)
    assert overlap // 4 >= radius and overlap % 8 == 0
    with pytest.warns(UserWarning, match="receptive radius"):
        assert seamless_overlap(net, 3, 2, tile=32) == 16

    with torch.no_grad():  # a net whose far pixels matter (the 0.1-scaled init hides seams behind the skip)
        for p in net.parameters():
            p.mul_(12.0)
    model = _model()
    model.generator = net.eval()
    x = np.random.default_rng(0).random((3, 200, 180), dtype=np.float32)
    whole = model.super_resolve(torch.from_numpy(x)[None]).detach()[0].numpy()
    tiled = super_resolve_array(model, x, tile=128)  # default overlap: measured (48 px: 12 dropped per edge)
    scale = np.abs(whole).max()
    assert np.abs(tiled - whole).max() < 1e-5 * scale
    too_small = super_resolve_array(model, x, tile=128, overlap=8)  # 2 px dropped: a seam (negative control)
    assert np.abs(too_small - whole).max() > 1e-3 * scale
