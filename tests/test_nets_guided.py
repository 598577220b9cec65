"""Guided (multi-resolution) generators, the shared guide fusion and the guide-conditioned critic (CPU, tiny)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser
from torch import Tensor, nn

from aerogan.nets import DSen2, GuideFusion, PatchCritic, RDNGenerator, SRResNet
from aerogan.nets.guidance import check_guide_config
from aerogan.nets.upsample import upsample, upsample_bicubic

GenFactory = Callable[..., nn.Module]

# The two DSen2 tasks on Sentinel-2: (target bands, scale, guide channels, guide ratios).
T2 = (6, 2, [4], [1])  # 10 m guide + 20 m target -> 20 m bands at 10 m
S6 = (2, 6, [4, 6], [1, 2])  # 10 m and 20 m guides + 60 m target -> 60 m bands at 10 m
TASKS = {"T2": T2, "S6": S6}


# The architecture tests use live output layers (start_at_skip=False): a zeroed one hides the guides' path.
def _dsen2(c: int, scale: int, gc: Sequence[int] = (), gr: Sequence[int] = (), **kw: object) -> nn.Module:
    kw.setdefault("start_at_skip", False)
    return DSen2(c, c, scale, num_features=8, num_blocks=2, guide_channels=gc, guide_ratios=gr, **kw)


def _srresnet(c: int, scale: int, gc: Sequence[int] = (), gr: Sequence[int] = (), **kw: object) -> nn.Module:
    kw.setdefault("start_at_skip", False)
    return SRResNet(c, c, scale, num_features=8, num_blocks=1, guide_channels=gc, guide_ratios=gr, **kw)


def _rdn(c: int, scale: int, gc: Sequence[int] = (), gr: Sequence[int] = (), **kw: object) -> nn.Module:
    kw.setdefault("start_at_skip", False)
    return RDNGenerator(
        c,
        c,
        scale,
        num_features=8,
        num_blocks=1,
        num_layers=2,
        growth=4,
        guide_channels=gc,
        guide_ratios=gr,
        **kw,
    )


GENERATORS: list[GenFactory] = [_dsen2, _srresnet, _rdn]
GEN_IDS = ["dsen2", "srresnet", "rdn"]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _batch(
    task: tuple[int, int, list[int], list[int]], b: int = 2, h: int = 4, w: int = 5
) -> tuple[Tensor, list[Tensor]]:
    """Seeded coarse target bands and guides of one task, on the grids the data contract promises."""
    c, scale, gc, gr = task
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(b, c, h, w, generator=gen)
    guides = [
        torch.rand(b, ck, h * scale // rk, w * scale // rk, generator=gen)
        for ck, rk in zip(gc, gr, strict=True)
    ]
    return x, guides


def _zero_last_conv(net: nn.Module) -> None:
    conv = net.conv_out  # type: ignore[attr-defined]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()


# --------------------------------------------------------------------------- shapes and skip


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
@pytest.mark.parametrize("task", list(TASKS), ids=list(TASKS))
def test_guided_shapes(factory: GenFactory, task: str) -> None:
    c, scale, gc, gr = TASKS[task]
    net = factory(c, scale, gc, gr)
    x, guides = _batch(TASKS[task])
    with torch.no_grad():
        y = net(x, guides)
    assert y.shape == (2, c, 4 * scale, 5 * scale)
    assert torch.isfinite(y).all()
    assert net.guide_channels == tuple(gc) and net.guide_ratios == tuple(gr)  # type: ignore[attr-defined]


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("task", ["none", "T2", "S6"])
def test_dsen2_output_is_its_skip_when_last_conv_is_zero(task: str, interpolation: str) -> None:
    """DSen2 predicts a residual over the interpolated coarse bands: with a zero last conv it returns exactly them."""
    c, scale, gc, gr = TASKS.get(task, (3, 3, [], []))
    net = _dsen2(c, scale, gc, gr, interpolation=interpolation)
    _zero_last_conv(net)
    x, guides = _batch((c, scale, gc, gr))
    with torch.no_grad():
        y = net(x, guides)
    expected = F.interpolate(x, scale_factor=scale, mode=interpolation, align_corners=False)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)
    # ... and the guides did feed the body: with the last conv restored, a guide change moves the output
    if guides:
        torch.manual_seed(0)
        live = _dsen2(c, scale, gc, gr, interpolation=interpolation)
        with torch.no_grad():
            assert not torch.allclose(live(x, guides), live(x, [g + 1.0 for g in guides]))


@pytest.mark.parametrize("factory", [_srresnet, _rdn], ids=["srresnet", "rdn"])
@pytest.mark.parametrize("task", list(TASKS), ids=list(TASKS))
def test_post_upsampling_guided_nets_keep_the_bicubic_skip(factory: GenFactory, task: str) -> None:
    c, scale, gc, gr = TASKS[task]
    net = factory(c, scale, gc, gr)
    _zero_last_conv(net)
    x, guides = _batch(TASKS[task])
    with torch.no_grad():
        y = net(x, guides)
    torch.testing.assert_close(y, upsample_bicubic(x, scale), rtol=0, atol=0)


# --------------------------------------------------------------------------- the guide branch is live


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
@pytest.mark.parametrize("task", list(TASKS), ids=list(TASKS))
def test_gradients_reach_every_guide(factory: GenFactory, task: str) -> None:
    c, scale, gc, gr = TASKS[task]
    net = factory(c, scale, gc, gr)
    x, guides = _batch(TASKS[task])
    guides = [g.requires_grad_(True) for g in guides]
    net(x, guides).square().mean().backward()
    for k, g in enumerate(guides):
        assert g.grad is not None and g.grad.abs().sum() > 0, f"no gradient reaches guides[{k}]"
    # a local perturbation of the finest guide changes the output near it, and only there
    x, guides = _batch(TASKS[task], h=16, w=16)  # wider than the receptive field of these tiny nets
    bumped = [g.clone() for g in guides]
    bumped[0][:, :, 0, 0] += 1.0
    with torch.no_grad():
        diff = (net(x, bumped) - net(x, guides)).abs().sum(dim=(0, 1))
    assert diff.max() > 0
    assert diff[-1, -1] == 0  # far corner is outside the receptive field of a tiny net


def test_space_to_depth_keeps_every_guide_pixel() -> None:
    """The post-upsampling fusion is lossless: pixel-shuffling its guide channels back returns the guide."""
    c, scale, gc, gr = S6
    fusion = GuideFusion(c, scale, gc, gr, grid="input")
    x, guides = _batch(S6)
    fused = fusion(x, guides)
    factors = [scale // r for r in gr]
    assert fusion.out_channels == c + sum(ck * f * f for ck, f in zip(gc, factors, strict=True)) == 200
    assert fused.shape == (2, 200, 4, 5)
    start = 0
    for g, ck, f in zip(guides, gc, factors, strict=True):
        n = ck * f * f
        torch.testing.assert_close(F.pixel_shuffle(fused[:, start : start + n], f), g, rtol=0, atol=0)
        start += n
    torch.testing.assert_close(fused[:, start:], x, rtol=0, atol=0)


def test_output_grid_fusion_interpolates_each_guide_by_its_ratio() -> None:
    c, scale, gc, gr = S6
    fusion = GuideFusion(c, scale, gc, gr, grid="output", interpolation="bilinear")
    x, guides = _batch(S6)
    fused = fusion(x, guides)
    assert fusion.out_channels == c + sum(gc) == fused.shape[1]
    torch.testing.assert_close(fused[:, :4], guides[0], rtol=0, atol=0)  # ratio 1: unchanged
    torch.testing.assert_close(fused[:, 4:10], upsample(guides[1], 2, "bilinear"), rtol=0, atol=0)
    torch.testing.assert_close(fused[:, 10:], upsample(x, 6, "bilinear"), rtol=0, atol=0)


# --------------------------------------------------------------------------- DSen2 as published


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _keras_s2model_count(c_in: int, c_out: int, d: int, f: int) -> int:
    """Parameters of the published Keras ``s2model``: 3x3 conv c_in->f, d x (two 3x3 f->f), 3x3 f->c_out, biases."""
    return (9 * c_in * f + f) + d * 2 * (9 * f * f + f) + (9 * f * c_out + c_out)


@pytest.mark.parametrize(
    ("task", "d", "f", "expected"),
    [
        ("T2", 6, 128, 1_789_574),  # DSen2, 20 m bands
        ("T2", 32, 256, 37_802_246),  # VDSen2, 20 m bands
        ("S6", 6, 128, 1_787_266),  # DSen2, 60 m bands
        ("S6", 32, 256, 37_797_634),  # VDSen2, 60 m bands
    ],
)
def test_dsen2_parameter_counts_match_the_published_model(task: str, d: int, f: int, expected: int) -> None:
    c, scale, gc, gr = TASKS[task]
    with torch.device("meta"):  # no memory for the 37.8 M weights of VDSen2
        net = DSen2(c, c, scale, num_features=f, num_blocks=d, guide_channels=gc, guide_ratios=gr)
    assert _count(net) == expected == _keras_s2model_count(c + sum(gc), c, d, f)


def test_dsen2_default_is_the_published_dsen2_and_he_uniform_initialised() -> None:
    """Published sizes and He-uniform weights; the output layer is zeroed unless start_at_skip=False (as published)."""
    net = DSen2(6, 6, 2, guide_channels=[4], guide_ratios=[1])
    assert len(net.blocks) == 6 and net.conv_head.out_channels == 128
    assert torch.count_nonzero(net.conv_out.weight) == 0 and torch.count_nonzero(net.conv_out.bias) == 0
    published = DSen2(6, 6, 2, guide_channels=[4], guide_ratios=[1], start_at_skip=False)
    for conv in (net.conv_head, net.blocks[0].conv1, published.conv_out):
        bound = math.sqrt(6.0 / (conv.in_channels * 9))
        assert conv.weight.abs().max() <= bound
        assert conv.weight.abs().max() > 0.9 * bound  # uniform over the whole range, not the torch default
        assert torch.count_nonzero(conv.bias) == 0


def test_guided_nets_are_configurable_from_a_cli_config() -> None:
    """The typed ``__init__`` arguments are what LightningCLI validates: lists from YAML must be accepted."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(DSen2, "model")
    cfg = parser.parse_args(
        ["--model.in_channels=2", "--model.out_channels=2", "--model.scale=6", "--model.num_features=8",
         "--model.num_blocks=1", "--model.guide_channels=[4, 6]", "--model.guide_ratios=[1, 2]"]
    )  # fmt: skip
    net = parser.instantiate(cfg).model
    assert net.guide_channels == (4, 6) and net.guide_ratios == (1, 2)
    x, guides = _batch(S6)
    assert net(x, guides).shape == (2, 2, 24, 30)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
@pytest.mark.parametrize(
    ("gc", "gr", "match"),
    [
        ([4], [1, 2], r"guide_channels=\[4\] \(1 entries\) and guide_ratios=\[1, 2\] \(2 entries\)"),
        ([4, 6], [1, 4], r"guide_ratios\[1\]=4 does not divide scale=6.*\[1, 2, 3, 6\]"),
        ([4, 0], [1, 2], r"guide_channels\[1\] must be an integer >= 1, got 0"),
        ([4], [0], r"guide_ratios\[0\] must be an integer >= 1, got 0"),
        ("4", [1], r"guide_channels must be a list of integers"),
    ],
)
def test_bad_guide_config(factory: GenFactory, gc: object, gr: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory(2, 6, gc, gr)


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
def test_bad_guide_tensors(factory: GenFactory) -> None:
    c, scale, gc, gr = S6
    net = factory(c, scale, gc, gr)
    x, guides = _batch(S6)
    wrong_channels = [guides[0], guides[1][:, :5]]
    with pytest.raises(
        ValueError, match=r"guides\[1\] must have shape \(2, 6, 12, 15\).*got \(2, 5, 12, 15\)"
    ):
        net(x, wrong_channels)
    wrong_size = [guides[0][..., :-1], guides[1]]
    with pytest.raises(
        ValueError, match=r"guides\[0\] must have shape \(2, 4, 24, 30\).*got \(2, 4, 24, 29\)"
    ):
        net(x, wrong_size)
    with pytest.raises(ValueError, match=r"expects 2 guide tensor\(s\).*got 1"):
        net(x, guides[:1])
    with pytest.raises(ValueError, match="expects 2 guide tensor"):
        net(x)
    with pytest.raises(ValueError, match="list of tensors"):
        net(x, guides[0])


@pytest.mark.parametrize("factory", GENERATORS, ids=GEN_IDS)
def test_guides_given_to_a_model_built_without_them(factory: GenFactory) -> None:
    net = factory(6, 2)
    x, guides = _batch(T2)
    assert net(x).shape == (2, 6, 8, 10)  # single-input behaviour unchanged
    with pytest.raises(ValueError, match=r"built without guides \(guide_channels=\[\].*received 1 guide"):
        net(x, guides)


def test_check_guide_config_returns_tuples() -> None:
    assert check_guide_config([4, 6], [1, 2], 6) == ((4, 6), (1, 2))
    assert check_guide_config((), (), 3) == ((), ())


def test_bad_interpolation() -> None:
    with pytest.raises(
        ValueError, match=r"interpolation must be one of \['bicubic', 'bilinear'\], got 'nearest'"
    ):
        DSen2(2, 2, 2, interpolation="nearest")


# --------------------------------------------------------------------------- conditioned critic


def test_unconditioned_critic_is_unchanged_and_refuses_guides() -> None:
    critic = PatchCritic(None, num_features=4, num_layers=3)
    y = torch.randn(2, 2, 24, 24)
    scores = critic(y)
    assert critic.body[0].in_channels == 2
    torch.testing.assert_close(scores, critic.patch_scores(y).mean(dim=(1, 2, 3)))
    with pytest.raises(ValueError, match="condition=False but received 2 guide"):
        critic(y, [torch.randn(2, 4, 24, 24), torch.randn(2, 6, 12, 12)])


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_conditioned_critic_infers_bands_and_sees_the_guides(spectral_norm: bool) -> None:
    critic = PatchCritic(None, num_features=4, num_layers=3, spectral_norm=spectral_norm, condition=True)
    y = torch.randn(2, 2, 24, 24)
    guides = [torch.randn(2, 4, 24, 24), torch.randn(2, 6, 12, 12)]
    scores = critic(y, guides)
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    first = critic.body[0]
    weight = first.parametrizations.weight.original if spectral_norm else first.weight
    assert weight.shape[1] == 2 + 4 + 6
    critic.eval()
    base = critic(y, guides)
    bumped = [guides[0], guides[1].clone()]
    bumped[1][1] += 1.0  # changes sample 1's coarse guide only
    after = critic(y, bumped)
    assert torch.equal(base[0], after[0])
    assert not torch.equal(base[1], after[1])
    # the guide is interpolated onto y's grid and stacked before y
    expected_input = torch.cat([guides[0], F.interpolate(guides[1], size=(24, 24), mode="bicubic"), y], dim=1)
    torch.testing.assert_close(critic.conditioned(y, guides), expected_input)


def test_conditioned_critic_errors() -> None:
    critic = PatchCritic(None, num_features=4, num_layers=3, condition=True)
    y = torch.randn(2, 2, 24, 24)
    with pytest.raises(ValueError, match="condition=True but received no guides"):
        critic(y)
    with pytest.raises(
        ValueError, match=r"guides\[0\] must be \(B=2, C_k, 24/r, 24/r\).*got shape \(2, 4, 10, 10\)"
    ):
        critic(y, [torch.randn(2, 4, 10, 10)])
    with pytest.raises(ValueError, match=r"guides\[0\].*got shape \(1, 4, 12, 12\)"):
        critic(y, [torch.randn(1, 4, 12, 12)])
