"""ConsistencyProjection: exact LR consistency, minimum-norm correction, gradients, clear errors (CPU, tiny)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser
from kornia.filters import gaussian_blur2d
from torch import Tensor, nn

from aerogan.nets import ConsistencyProjection, DSen2


class BlurBlockMean(nn.Module):
    """Stand-in for the training degradation: Gaussian blur (HR pixels, reflect border), then s x s block mean."""

    def __init__(self, scale: int, sigma: float, kernel_size: int | None = None) -> None:
        super().__init__()
        self.scale = scale
        self.sigma = sigma
        self.kernel_size = kernel_size or 2 * max(1, math.ceil(3 * sigma)) + 1

    def forward(self, x: Tensor) -> Tensor:
        if self.sigma > 0:
            k = self.kernel_size
            x = gaussian_blur2d(x, (k, k), (self.sigma, self.sigma), border_type="reflect")
        return F.avg_pool2d(x, self.scale)


def _relative_error(degrade: nn.Module, y: Tensor, x: Tensor) -> float:
    return float((degrade(y.detach()) - x).norm() / x.norm())


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("sigma_of", [lambda s: 0.0, lambda s: 0.5 * s, lambda s: 1.0], ids=["sigma0", "half_s", "one"])
def test_projected_output_degrades_to_the_lr_input(scale: int, sigma_of) -> None:
    g = torch.Generator().manual_seed(scale)
    degrade = BlurBlockMean(scale, sigma_of(scale))
    y = torch.randn(2, 3, 8 * scale, 8 * scale, generator=g)
    x = torch.randn(2, 3, 8, 8, generator=g)
    assert _relative_error(degrade, y, x) > 0.5  # far from consistent before
    out = ConsistencyProjection(degrade)(y, x)
    assert out.dtype == torch.float32 and out.shape == y.shape
    assert _relative_error(degrade, out, x) < 1e-5


def test_block_mean_closed_form_by_hand() -> None:
    """D = 2x2 block mean: the block's mismatch is added to each of its pixels (nearest upsampling)."""
    y = torch.tensor([[1.0, 2.0], [3.0, 6.0]]).reshape(1, 1, 2, 2)
    x = torch.tensor([[[[5.0]]]])
    out = ConsistencyProjection()(y, x)  # block mean 3, target 5: +2 everywhere
    torch.testing.assert_close(out, torch.tensor([[3.0, 4.0], [5.0, 8.0]]).reshape(1, 1, 2, 2))


class _Forbidden(nn.Module):
    """A block-mean degradation (sigma 0) that must never be evaluated: the fast path needs no call."""

    sigma = 0.0

    def forward(self, x: Tensor) -> Tensor:
        raise AssertionError("the closed form should have been used")


def test_fast_path_equals_conjugate_gradients() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 2, 12, 12, generator=g)
    x = torch.randn(2, 2, 4, 4, generator=g)
    solved = ConsistencyProjection(lambda t: F.avg_pool2d(t, 3))(y, x)  # a plain callable: CG
    assert not ConsistencyProjection(lambda t: F.avg_pool2d(t, 3)).is_block_mean()
    for fast in (ConsistencyProjection(), ConsistencyProjection(_Forbidden())):
        assert fast.is_block_mean()
        torch.testing.assert_close(fast(y, x), solved, atol=1e-5, rtol=0)


@pytest.mark.parametrize("degrade", [BlurBlockMean(2, 1.0), None], ids=["blur", "block_mean"])
def test_consistent_output_is_left_unchanged(degrade: nn.Module | None) -> None:
    g = torch.Generator().manual_seed(1)
    y = torch.randn(2, 3, 16, 16, generator=g)
    x = (degrade or BlurBlockMean(2, 0.0))(y)
    torch.testing.assert_close(ConsistencyProjection(degrade)(y, x), y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("scale", [2, 3])
def test_correction_is_minimum_norm(scale: int) -> None:
    """Same result as the dense minimum-norm least-squares solution of D d = x - D y (6x6 HR grid)."""
    g = torch.Generator().manual_seed(scale)
    degrade = BlurBlockMean(scale, 1.0, kernel_size=5)
    n, m = 36, (6 // scale) ** 2
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, 6, 6)
    matrix = degrade(basis).reshape(n, m).T  # D as an (m, n) matrix
    y = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64)
    x = torch.randn(1, 1, 6 // scale, 6 // scale, generator=g, dtype=torch.float64)

    out = ConsistencyProjection(degrade, tol=1e-12)(y, x)
    correction = (out - y).reshape(n)
    dense = torch.linalg.lstsq(matrix, (x.reshape(m) - matrix @ y.reshape(n)).unsqueeze(1), driver="gelsd")
    torch.testing.assert_close(correction, dense.solution.squeeze(1), atol=1e-9, rtol=0)
    # orthogonal to the null space of D: no component along the right singular vectors beyond rank m
    null_space = torch.linalg.svd(matrix).Vh[m:]
    assert float((null_space @ correction).abs().max()) < 1e-6 * float(correction.norm())


def test_gradients_are_exact() -> None:
    g = torch.Generator().manual_seed(2)
    projection = ConsistencyProjection(BlurBlockMean(2, 1.0, kernel_size=5), tol=1e-12, max_iter=200)
    y = torch.randn(1, 2, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(1, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(projection, (y, x))
    assert torch.autograd.gradgradcheck(projection, (y, x))


def test_gradient_with_respect_to_the_output_is_the_null_space_projector() -> None:
    """y' = (I - A D) y + A x, so dL/dy = g - Dᵀ(D Dᵀ)⁻¹ D g: its degradation vanishes."""
    g = torch.Generator().manual_seed(3)
    degrade = BlurBlockMean(2, 1.0)
    y = torch.randn(1, 2, 16, 16, generator=g, requires_grad=True)
    x = torch.randn(1, 2, 8, 8, generator=g)
    weight = torch.randn(1, 2, 16, 16, generator=g)
    (ConsistencyProjection(degrade)(y, x) * weight).sum().backward()
    assert float(degrade(y.grad).norm() / degrade(weight).norm()) < 1e-5


def test_degradation_that_cannot_be_inverted_raises() -> None:
    """sigma 5 HR pixels at scale 2 attenuates the LR grid's Nyquist frequency by ~1e-14: D Dᵀ is singular."""
    g = torch.Generator().manual_seed(4)
    projection = ConsistencyProjection(BlurBlockMean(2, 5.0))
    y = torch.randn(1, 1, 32, 32, generator=g)
    x = torch.randn(1, 1, 16, 16, generator=g)
    with pytest.raises(ValueError, match=r"model\.consistency_projection.*sigma=5, scale=2") as info:
        projection(y, x)
    assert "smaller blur sigma" in str(info.value)


def test_shape_mismatches_name_the_shapes() -> None:
    projection = ConsistencyProjection(BlurBlockMean(2, 1.0))
    with pytest.raises(ValueError, match=r"\(1, 2, 8, 8\) and LR target bands \(1, 2, 3, 3\)"):
        projection(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"same B and C, got \(1, 2, 8, 8\) and \(1, 3, 4, 4\)"):
        projection(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"degrades to \(1, 2, 4, 4\) but the LR target bands are \(1, 2, 2, 2\)"):
        projection(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 2, 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_iter": 0}, "max_iter"), ({"tol": 0.0}, "tol"), ({"precision": "half"}, "precision"), ({"degrade": 3}, "degrade")],
)
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConsistencyProjection(**kwargs)


def test_guided_generator_output_is_made_exact_and_trainable() -> None:
    torch.manual_seed(5)
    net = DSen2(in_channels=2, out_channels=2, scale=2, num_features=4, num_blocks=1, guide_channels=[3], guide_ratios=[1],
                start_at_skip=False)
    degrade = BlurBlockMean(2, 1.0)
    projection = ConsistencyProjection(degrade)
    x = torch.randn(2, 2, 8, 8)
    guide = torch.randn(2, 3, 16, 16)
    out = projection(net(x, (guide,)), x)
    assert _relative_error(degrade, out, x) < 1e-5
    out.square().mean().backward()
    grad = net.conv_head.weight.grad
    assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_cli_builds_it_from_a_class_path() -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(ConsistencyProjection, "projection")
    cfg = parser.parse_args(
        ["--projection.degrade", '{"class_path": "torch.nn.AvgPool2d", "init_args": {"kernel_size": 2}}',
         "--projection.max_iter", "20"]
    )
    projection = parser.instantiate(cfg).projection
    assert isinstance(projection.degrade, nn.AvgPool2d) and projection.max_iter == 20
    out = projection(torch.randn(1, 1, 4, 4), torch.ones(1, 1, 2, 2))
    torch.testing.assert_close(F.avg_pool2d(out, 2), torch.ones(1, 1, 2, 2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("precision", ["float64", "input"])
def test_exact_under_mixed_precision_autocast(precision: str) -> None:
    """Autocast would run the blur in bfloat16 (rel. error ~1e-3): the layer turns it off for its solve."""
    g = torch.Generator().manual_seed(6)
    degrade = BlurBlockMean(2, 1.0)
    y = torch.randn(1, 2, 16, 16, generator=g)
    x = torch.randn(1, 2, 8, 8, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert degrade(y).dtype == torch.bfloat16  # the blur really runs in low precision here
        out = ConsistencyProjection(degrade, precision=precision)(y, x)
    assert out.dtype == torch.float32
    assert _relative_error(degrade, out, x) < 1e-5
