"""Value tests for pixel losses, adversarial objectives and the WGAN-GP gradient penalty."""

from __future__ import annotations

import math
from typing import get_args

import pytest
import torch
from torch import Tensor, nn

import aerogan.losses as losses
from aerogan import AdversarialRegularization
from aerogan.losses import (
    GAN_LOSSES,
    PIXEL_LOSSES,
    CharbonnierLoss,
    GANLoss,
    GANLossName,
    HalfSumSquaredError,
    PixelLossName,
    gradient_penalty,
    make_gan_loss,
    make_pixel_loss,
)
from aerogan.nets import MLPCritic, PatchCritic

REAL = torch.tensor([1.0, 3.0])
FAKE = torch.tensor([-1.0, 0.5])


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


# --------------------------------------------------------------------------- pixel


def test_charbonnier_value() -> None:
    pred = torch.tensor([0.0, 1.0, 3.0])
    target = torch.tensor([0.0, 0.0, -1.0])
    eps = 0.5
    expected = (math.sqrt(0 + 0.25) + math.sqrt(1 + 0.25) + math.sqrt(16 + 0.25)) / 3
    assert CharbonnierLoss(eps)(pred, target).item() == pytest.approx(expected)
    # default eps: close to L1 away from zero
    assert CharbonnierLoss()(pred, target).item() == pytest.approx(5 / 3, abs=1e-3)


def test_charbonnier_bad_eps() -> None:
    with pytest.raises(ValueError, match="eps"):
        CharbonnierLoss(0.0)


def test_make_pixel_loss() -> None:
    assert isinstance(make_pixel_loss("l1"), nn.L1Loss)
    assert isinstance(make_pixel_loss("mse"), nn.MSELoss)
    assert isinstance(make_pixel_loss("charbonnier"), CharbonnierLoss)
    assert isinstance(make_pixel_loss("half_sse"), HalfSumSquaredError)
    custom = CharbonnierLoss(0.1)
    assert make_pixel_loss(custom) is custom
    with pytest.raises(ValueError, match=r"'huber'.*l1, mse, charbonnier, half_sse"):
        make_pixel_loss("huber")


def test_pixel_loss_names_are_defined_once() -> None:
    assert tuple(PIXEL_LOSSES) == get_args(PixelLossName)


# --------------------------------------------------------------------------- adversarial

# (critic_loss, generator_loss) computed by hand for REAL=[1, 3], FAKE=[-1, 0.5].
_HAND = {
    "wgan": ((-1.0 + 0.5) / 2 - (1.0 + 3.0) / 2, -(-1.0 + 0.5) / 2),
    "wgan-gp": (-2.25, 0.25),
    "hinge": ((max(0.0, 1 - 1) + max(0.0, 1 - 3)) / 2 + (max(0.0, 1 - 1) + max(0.0, 1 + 0.5)) / 2, 0.25),
    "nonsaturating": (
        (_softplus(-1.0) + _softplus(-3.0)) / 2 + (_softplus(-1.0) + _softplus(0.5)) / 2,
        (_softplus(1.0) + _softplus(-0.5)) / 2,
    ),
    "lsgan": (
        0.5 * ((1 - 1) ** 2 + (3 - 1) ** 2) / 2 + 0.5 * ((-1.0) ** 2 + 0.5**2) / 2,
        0.5 * ((-1 - 1) ** 2 + (0.5 - 1) ** 2) / 2,
    ),
}


@pytest.mark.parametrize("kind", list(_HAND))
def test_adversarial_values(kind: str) -> None:
    loss = make_gan_loss(kind)
    critic_expected, gen_expected = _HAND[kind]
    assert loss.critic_loss(REAL, FAKE).item() == pytest.approx(critic_expected, rel=1e-6)
    assert loss.generator_loss(FAKE).item() == pytest.approx(gen_expected, rel=1e-6)
    assert loss.uses_gradient_penalty == (kind == "wgan-gp")


def test_lsgan_labels() -> None:
    """Targets real_label / fake_label; the defaults (1, 0) are the values above."""
    loss = losses.LSGAN(real_label=1.0, fake_label=-1.0)
    assert loss.critic_loss(REAL, FAKE).item() == pytest.approx(0.5 * (0 + 4) / 2 + 0.5 * (0 + 1.5**2) / 2)
    assert loss.generator_loss(FAKE).item() == pytest.approx(_HAND["lsgan"][1])


def test_adversarial_hand_values_literal() -> None:
    """Guard the table above with plain numbers."""
    assert _HAND["wgan"] == (-2.25, 0.25)
    assert _HAND["hinge"] == (0.75, 0.25)
    assert _HAND["lsgan"] == (1.3125, 1.0625)
    assert _HAND["nonsaturating"][0] == pytest.approx(0.8245942, abs=1e-6)
    assert _HAND["nonsaturating"][1] == pytest.approx(0.8936694, abs=1e-6)


@pytest.mark.parametrize("kind", list(_HAND))
def test_adversarial_signs(kind: str) -> None:
    """Critic loss falls when real scores rise / fake fall; generator loss falls when fake scores rise.

    Scores are chosen inside every loss's active region (hinge margins and LSGAN targets not
    yet reached), where each per-sample gradient must have a strict sign.
    """
    real = torch.tensor([-0.5, 0.2], requires_grad=True)
    fake = torch.tensor([0.1, 0.4], requires_grad=True)
    loss = make_gan_loss(kind)
    g_real, g_fake = torch.autograd.grad(loss.critic_loss(real, fake), (real, fake))
    assert (g_real < 0).all() and (g_fake > 0).all()
    (g_gen,) = torch.autograd.grad(loss.generator_loss(fake), (fake,))
    assert (g_gen < 0).all()


def test_adversarial_bad_kind() -> None:
    with pytest.raises(ValueError, match=r"'vanilla'.*wgan-gp, wgan, hinge, nonsaturating, lsgan, ragan, ralsgan"):
        make_gan_loss("vanilla")
    with pytest.raises(ValueError, match=r"model.adversarial_loss='vanilla'.*wgan-gp, wgan, hinge, nonsaturating, lsgan"):
        AdversarialRegularization(nn.Linear(2, 2), nn.Linear(2, 1), adversarial_loss="vanilla")


_CLASSES = {"wgan-gp": "WGANGP", "wgan": "WGAN", "hinge": "Hinge", "nonsaturating": "NonSaturating", "lsgan": "LSGAN",
            "ragan": "RaGAN", "ralsgan": "RaLSGAN"}


def test_gan_loss_names_are_defined_once_and_map_to_their_classes() -> None:
    assert tuple(GAN_LOSSES) == get_args(GANLossName) == tuple(_CLASSES)
    for name, cls in _CLASSES.items():
        loss = make_gan_loss(name)
        assert type(loss) is getattr(losses, cls) and isinstance(loss, GANLoss)
    hinge = losses.Hinge()
    assert make_gan_loss(hinge) is hinge


def _module_step_grads(adversarial_loss: str | GANLoss, supervised_loss: str | nn.Module) -> dict[str, Tensor]:
    """Critic loss, generator loss and their gradients for one module built with the given losses."""
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    critic = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0))
    m = AdversarialRegularization(gen, critic, adversarial_loss=adversarial_loss, supervised_loss=supervised_loss, lambda_adv=0.3)
    data = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 5, generator=data), torch.randn(4, 3, generator=data)
    out = m.critic_step(y, m.generator(x).detach(), eps=torch.linspace(0.1, 0.9, 4))
    critic_grads = torch.autograd.grad(out["critic_loss"], list(m.critic.parameters()))
    terms = m.loss_terms({"input": x, "target": y})
    gen_grads = torch.autograd.grad(sum(terms.values()), list(m.generator.parameters()))
    return {"critic_loss": out["critic_loss"].detach(), **{k: v.detach() for k, v in terms.items()},
            **{f"critic_grad{i}": g for i, g in enumerate(critic_grads)}, **{f"gen_grad{i}": g for i, g in enumerate(gen_grads)},
            "has_penalty": torch.tensor("gradient_penalty" in out)}


@pytest.mark.parametrize("name", list(_CLASSES))
def test_class_and_name_give_identical_losses_and_gradients(name: str) -> None:
    by_name = _module_step_grads(name, "charbonnier")
    by_class = _module_step_grads(getattr(losses, _CLASSES[name])(), CharbonnierLoss())
    assert by_name.keys() == by_class.keys()
    for key in by_name:
        torch.testing.assert_close(by_class[key], by_name[key], rtol=0, atol=0, msg=key)
    assert bool(by_name["has_penalty"]) == (name == "wgan-gp")


def test_wgan_gp_differs_from_wgan_by_the_weighted_penalty() -> None:
    wgan, wgan_gp = _module_step_grads("wgan", "l1"), _module_step_grads("wgan-gp", "l1")
    assert not torch.equal(wgan["critic_loss"], wgan_gp["critic_loss"])
    torch.testing.assert_close(wgan["adversarial"], wgan_gp["adversarial"])


def test_loss_classes_through_the_config_parser() -> None:
    """``class_path`` and the string shortcut both parse for the module's loss arguments (LightningCLI's parser)."""
    from jsonargparse import ArgumentParser

    nets = {"generator": {"class_path": "torch.nn.Linear", "init_args": {"in_features": 5, "out_features": 3}},
            "critic": {"class_path": "torch.nn.Linear", "init_args": {"in_features": 3, "out_features": 1}}}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(AdversarialRegularization, "model")
    cfg = parser.parse_object({"model": {**nets, "adversarial_loss": {"class_path": "aerogan.losses.Hinge"},
                                         "supervised_loss": {"class_path": "aerogan.losses.CharbonnierLoss",
                                                             "init_args": {"eps": 0.01}}}})
    model = parser.instantiate(cfg).model
    assert isinstance(model.adversarial, losses.Hinge)
    assert isinstance(model.pixel_loss, CharbonnierLoss) and model.pixel_loss.eps == 0.01
    model = parser.instantiate(parser.parse_object({"model": {**nets, "adversarial_loss": "lsgan", "supervised_loss": "half_sse"}})).model
    assert isinstance(model.adversarial, losses.LSGAN) and isinstance(model.pixel_loss, HalfSumSquaredError)
    with pytest.raises(Exception, match="adversarial_loss"):
        parser.parse_object({"model": {**nets, "adversarial_loss": "vanilla"}})


# --------------------------------------------------------------------------- gradient penalty


class LinearCritic(nn.Module):
    """g(x) = <w, x> per sample; its input gradient is w for every sample."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("shape", [(3, 4, 5), (7,)])
@pytest.mark.parametrize("target", [1.0, 0.0])
def test_gradient_penalty_linear_critic(shape: tuple[int, ...], target: float) -> None:
    torch.manual_seed(0)
    critic = LinearCritic(shape)
    real, fake = torch.randn(4, *shape), torch.randn(4, *shape)
    gp = gradient_penalty(critic, real, fake, target=target)
    expected = (critic.w.detach().norm() - target) ** 2
    torch.testing.assert_close(gp, expected)
    # gradient w.r.t. w: d/dw (||w|| - t)^2 = 2 (||w|| - t) w / ||w||
    (g,) = torch.autograd.grad(gp, critic.w)
    w = critic.w.detach()
    torch.testing.assert_close(g, 2 * (w.norm() - target) * w / w.norm())


def _per_sample_reference(critic: nn.Module, real: Tensor, fake: Tensor, eps: Tensor) -> Tensor:
    penalties = []
    for i in range(real.shape[0]):
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
        penalties.append((g.flatten().norm() - 1.0) ** 2)
    return torch.stack(penalties).mean()


def test_gradient_penalty_nonlinear_image_critic() -> None:
    torch.manual_seed(1)
    critic = PatchCritic(2, num_features=4, num_layers=2)
    real, fake = torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8)
    torch.manual_seed(123)
    gp = gradient_penalty(critic, real, fake)
    torch.manual_seed(123)
    eps = torch.rand(3, 1, 1, 1)
    torch.testing.assert_close(gp, _per_sample_reference(critic, real, fake, eps))


def test_gradient_penalty_nonlinear_vector_critic() -> None:
    torch.manual_seed(2)
    critic = MLPCritic(6, hidden=8, num_layers=2)
    real, fake = torch.randn(5, 6), torch.randn(5, 6)
    torch.manual_seed(7)
    gp = gradient_penalty(critic, real, fake)
    torch.manual_seed(7)
    eps = torch.rand(5, 1)
    torch.testing.assert_close(gp, _per_sample_reference(critic, real, fake, eps))


def test_gradient_penalty_no_generator_gradient() -> None:
    torch.manual_seed(3)
    generator = nn.Conv2d(2, 2, 3, padding=1)
    critic = PatchCritic(2, num_features=4, num_layers=2)
    real = torch.randn(2, 2, 8, 8)
    fake = generator(torch.randn(2, 2, 8, 8)).detach()
    gp = gradient_penalty(critic, real, fake)
    gp.backward()
    assert generator.weight.grad is None and generator.bias.grad is None
    # Every conv weight gets a finite, non-zero gradient. (Biases only reach the input gradient
    # through piecewise-constant LeakyReLU slopes, so theirs is zero or None.)
    weights = [p for name, p in critic.named_parameters() if name.endswith("weight")]
    assert len(weights) == 3
    for w in weights:
        assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_gradient_penalty_bf16_autocast_cpu() -> None:
    torch.manual_seed(4)
    critic = PatchCritic(2, num_features=4, num_layers=2)
    real, fake = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 8, 8)
    torch.manual_seed(5)
    reference = gradient_penalty(critic, real, fake)
    torch.manual_seed(5)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(critic, real.bfloat16(), fake.bfloat16())
    assert gp.dtype == torch.float32
    assert torch.isfinite(gp)
    # the only bf16 effect left is the rounding of the inputs themselves
    torch.testing.assert_close(gp, reference, rtol=5e-2, atol=1e-3)
    gp.backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters() if p.grad is not None)


class _SpyCritic(nn.Module):
    """Records the input dtype and the autocast state seen by the critic call."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = MLPCritic(4, hidden=4, num_layers=1)
        self.seen: list[tuple[torch.dtype, bool]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append((x.dtype, torch.is_autocast_enabled("cpu")))
        return self.inner(x)


def test_gradient_penalty_runs_critic_in_float32_without_autocast() -> None:
    """On CPU a naive bf16 penalty happens to be close (norms autocast to fp32), so check the mechanism."""
    critic = _SpyCritic()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        gp = gradient_penalty(critic, torch.randn(3, 4).bfloat16(), torch.randn(3, 4).bfloat16())
    assert critic.seen == [(torch.float32, False)]
    assert gp.dtype == torch.float32 and torch.isfinite(gp)
