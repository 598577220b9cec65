"""Shape, skip and validation tests for the generators, upsampler and critics (tiny nets, CPU)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from aerogan.nets import DSen2, MLPCritic, PatchCritic, RDNGenerator, SRResNet, Upsampler
from aerogan.nets.upsample import prime_factors, upsample_bicubic

GenFactory = Callable[..., nn.Module]


def _srresnet(in_ch: int, out_ch: int, scale: int, skip_bands: list[int] | None = None) -> nn.Module:
    return SRResNet(in_ch, out_ch, scale, num_features=8, num_blocks=1, skip_bands=skip_bands)


def _dsen2(in_ch: int, out_ch: int, scale: int, skip_bands: list[int] | None = None) -> nn.Module:
    return DSen2(in_ch, out_ch, scale, num_features=8, num_blocks=1, skip_bands=skip_bands)


def _rdn(in_ch: int, out_ch: int, scale: int, skip_bands: list[int] | None = None) -> nn.Module:
    return RDNGenerator(
        in_ch, out_ch, scale, num_features=8, num_blocks=1, num_layers=2, growth=4, skip_bands=skip_bands
    )


GENERATORS: list[GenFactory] = [_srresnet, _dsen2, _rdn]
GEN_IDS = ["srresnet", "dsen2", "rdn"]
BAND_PAIRS = [(1, 1), (3, 3), (4, 4), (13, 13), (13, 4), (4, 13), (3, 1)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- upsampler


@pytest.mark.parametrize(
    ("n", "expected"), [(1, []), (2, [2]), (4, [2, 2]), (6, [2, 3]), (7, [7]), (12, [2, 2, 3])]
)
def test_prime_factors(n: int, expected: list[int]) -> None:
    assert prime_factors(n) == expected


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5, 6, 8])
def test_upsampler_shape(scale: int) -> None:
    up = Upsampler(4, scale)
    y = up(torch.randn(2, 4, 5, 3))
    assert y.shape == (2, 4, 5 * scale, 3 * scale)
    assert len(up.body) == 2 * len(prime_factors(scale))


def test_upsampler_scale_one_is_identity() -> None:
    up = Upsampler(4, 1)
    x = torch.randn(1, 4, 3, 3)
    assert torch.equal(up(x), x)
    assert sum(p.numel() for p in up.parameters()) == 0


@pytest.mark.parametrize("scale", [0, -2, 2.5, "2", True])
def test_upsampler_bad_scale(scale: object) -> None:
    with pytest.raises(ValueError, match="scale"):
        Upsampler(4, scale)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        upsample_bicubic(torch.zeros(1, 1, 2, 2), scale)  # type: ignore[arg-type]


def test_upsample_bicubic() -> None:
    x = torch.randn(2, 3, 4, 5)
    assert upsample_bicubic(x, 1) is x
    y = upsample_bicubic(x, 3)
    expected = torch.nn.functional.interpolate(x, scale_factor=3, mode="bicubic", align_corners=False)
    torch.testing.assert_close(y, expected)
    # a constant image stays constant under bicubic interpolation
    c = torch.full((1, 1, 4, 4), 2.5)
    torch.testing.assert_close(upsample_bicubic(c, 2), torch.full((1, 1, 8, 8), 2.5))


# --------------------------------------------------------------------------- generators


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
@pytest.mark.parametrize(("in_ch", "out_ch"), BAND_PAIRS)
@pytest.mark.parametrize("scale", [1, 2, 3, 4, 6])
def test_generator_shape(factory: GenFactory, in_ch: int, out_ch: int, scale: int) -> None:
    net = factory(in_ch, out_ch, scale)
    with torch.no_grad():
        y = net(torch.randn(2, in_ch, 8, 6))
    assert y.shape == (2, out_ch, 8 * scale, 6 * scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
def test_band_synthesis_scale_one(factory: GenFactory) -> None:
    net = factory(3, 2, 1)
    assert net.skip_bands is None  # type: ignore[attr-defined]
    y = net(torch.randn(2, 3, 8, 8))
    assert y.shape == (2, 2, 8, 8)
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def _zero_last_conv(net: nn.Module) -> None:
    conv = net.conv_out  # type: ignore[attr-defined]
    assert isinstance(conv, nn.Conv2d)
    with torch.no_grad():
        conv.weight.zero_()
        assert conv.bias is not None
        conv.bias.zero_()


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
@pytest.mark.parametrize(
    ("in_ch", "out_ch", "scale", "skip_bands", "expected_bands"),
    [
        (3, 3, 2, None, [0, 1, 2]),  # default identity skip
        (4, 2, 3, [3, 1], [3, 1]),  # explicit band selection
        (4, 3, 1, [0, 0, 2], [0, 0, 2]),  # repeated band, band synthesis
        (3, 2, 2, None, None),  # in != out and no skip given: no skip
    ],
)
def test_generator_skip_exact(
    factory: GenFactory,
    in_ch: int,
    out_ch: int,
    scale: int,
    skip_bands: list[int] | None,
    expected_bands: list[int] | None,
) -> None:
    net = factory(in_ch, out_ch, scale, skip_bands=skip_bands)
    _zero_last_conv(net)
    x = torch.randn(2, in_ch, 6, 6)
    with torch.no_grad():
        y = net(x)
    if expected_bands is None:
        expected = torch.zeros(2, out_ch, 6 * scale, 6 * scale)
    else:
        expected = upsample_bicubic(x[:, expected_bands], scale)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
@pytest.mark.parametrize("scale", [0, -1, 2.5])
def test_generator_bad_scale(factory: GenFactory, scale: object) -> None:
    with pytest.raises(ValueError, match="scale"):
        factory(3, 3, scale)


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
@pytest.mark.parametrize("skip_bands", [[0, 1], [0, 1, 3], [0, 1, -1], [0, 1, 2, 0]])
def test_generator_bad_skip_bands(factory: GenFactory, skip_bands: list[int]) -> None:
    with pytest.raises(ValueError, match="skip_bands"):
        factory(3, 3, 2, skip_bands=skip_bands)


def test_srresnet_init_is_scaled_like_msrresnet() -> None:
    """Every conv is Kaiming-normal x 0.1 (BasicSR MSRResNet), so the net starts near its bicubic skip."""
    net = SRResNet(4, 4, 2, num_features=16, num_blocks=2)
    kaiming_std = (2.0 / (16 * 9)) ** 0.5  # fan_in of a 3x3 conv with 16 input channels
    for conv in (net.blocks[0].conv1, net.conv_body):
        assert conv.weight.std().item() == pytest.approx(0.1 * kaiming_std, rel=0.3)
    x = torch.rand(2, 4, 8, 8)
    assert (net(x) - F.interpolate(x, scale_factor=2, mode="bicubic")).abs().mean() < 0.05


# --------------------------------------------------------------------------- critics


@pytest.mark.parametrize("size", [16, 24])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_patch_critic_shape(size: int, spectral_norm: bool) -> None:
    critic = PatchCritic(3, num_features=4, num_layers=4, spectral_norm=spectral_norm)
    scores = critic(torch.randn(3, 3, size, size))
    assert scores.shape == (3,)
    assert torch.isfinite(scores).all()


def test_patch_critic_non_square_and_minimum_size() -> None:
    critic = PatchCritic(2, num_features=4, num_layers=4)
    assert critic.min_input_size == 8
    assert critic(torch.randn(2, 2, 8, 20)).shape == (2,)
    with pytest.raises(ValueError, match=r"7x16.*minimum 8"):
        critic(torch.randn(2, 2, 7, 16))


def test_patch_critic_spectral_norm_applied() -> None:
    critic = PatchCritic(3, num_features=4, num_layers=3, spectral_norm=True)
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4
    for conv in convs:
        assert parametrize.is_parametrized(conv, "weight")
    critic.train()
    for _ in range(10):  # a few power iterations
        critic(torch.randn(1, 3, 8, 8))
    critic.eval()
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_patch_critic_channel_cap() -> None:
    critic = PatchCritic(1, num_features=2, num_layers=6)
    widths = [m.out_channels for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [2, 4, 8, 16, 16, 16, 1]


def test_patch_critic_per_sample_independence() -> None:
    critic = PatchCritic(3, num_features=4, num_layers=3)
    x = torch.randn(2, 3, 16, 16)
    before = critic(x)
    x2 = x.clone()
    x2[1] = torch.randn(3, 16, 16) * 5
    after = critic(x2)
    assert torch.equal(before[0], after[0])
    assert not torch.equal(before[1], after[1])


def test_mlp_critic() -> None:
    critic = MLPCritic(5, hidden=8, num_layers=2)
    x = torch.randn(4, 5)
    scores = critic(x)
    assert scores.shape == (4,)
    x2 = x.clone()
    x2[3] += 1.0
    assert torch.equal(critic(x2)[:3], scores[:3])
    assert MLPCritic(6, hidden=4, num_layers=1)(torch.randn(2, 2, 3)).shape == (2,)
