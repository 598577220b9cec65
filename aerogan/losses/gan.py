"""GAN losses on raw critic scores (logits), one small class per loss, following BasicSR ``gan_loss.py``.

Each loss gives the critic's objective and the generator's, both minimised, and optionally a penalty
on the critic (WGAN-GP's gradient penalty). A module takes either a loss object (``class_path`` in
configs, e.g. ``adversarial_loss: {class_path: aerogan.losses.Hinge}``) or one of the shortcut names of
:data:`GANLossName`; :func:`make_gan_loss` is the one place that turns a name into an object.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch.nn.functional as F
from torch import Tensor, nn

from aerogan.losses.penalty import gradient_penalty

__all__ = ["GAN_LOSSES", "GANLoss", "GANLossName", "Hinge", "LSGAN", "NonSaturating", "WGAN", "WGANGP", "make_gan_loss"]

#: The shortcut names, the one definition of them (the registry below follows this order).
GANLossName = Literal["wgan-gp", "wgan", "hinge", "nonsaturating", "lsgan"]


class GANLoss(nn.Module):
    """Base of the GAN losses: scores are raw critic outputs of shape ``(B,)``; every loss is minimised."""

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        """Loss the critic minimises, given its scores on real and (detached) generated samples."""
        raise NotImplementedError

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        """Loss the generator minimises, given the critic's scores on generated samples."""
        raise NotImplementedError

    def penalty(self, critic: nn.Module, real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor | None:
        """A penalty on the critic added (weighted by the module's ``gp_weight``) to its loss; ``None``: none."""
        return None

    @property
    def uses_gradient_penalty(self) -> bool:
        """True when :meth:`penalty` adds a term (WGAN-GP)."""
        return type(self).penalty is not GANLoss.penalty


class WGAN(GANLoss):
    """Wasserstein loss: the critic maximises ``mean g(y) - mean g(f(x))``, the generator ``mean g(f(x))``."""

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        return -fake_scores.mean()


class WGANGP(WGAN):
    """WGAN plus the per-sample gradient penalty of Gulrajani et al. (2017) on the critic.

    Args:
        target: the gradient norm the penalty pulls towards (1: the 1-Lipschitz constraint).
    """

    def __init__(self, target: float = 1.0) -> None:
        super().__init__()
        self.target = float(target)

    def penalty(self, critic: nn.Module, real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor:
        return gradient_penalty(critic, real, fake, target=self.target, eps=eps)

    def extra_repr(self) -> str:
        return f"target={self.target:g}"


class Hinge(GANLoss):
    """Hinge loss: ``relu(1 - g(y)) + relu(1 + g(f(x)))`` for the critic, ``-g(f(x))`` for the generator."""

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        return -fake_scores.mean()


class NonSaturating(GANLoss):
    """The original GAN loss with the non-saturating generator objective ``softplus(-g(f(x)))``."""

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        return F.softplus(-fake_scores).mean()


class LSGAN(GANLoss):
    """Least-squares GAN: targets 1 for real and 0 for fake scores, halved squared errors."""

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return 0.5 * ((real_scores - 1.0) ** 2).mean() + 0.5 * (fake_scores**2).mean()

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        return 0.5 * ((fake_scores - 1.0) ** 2).mean()


#: Shortcut name -> loss class, in the order of :data:`GANLossName`.
GAN_LOSSES: dict[str, type[GANLoss]] = dict(zip(get_args(GANLossName), (WGANGP, WGAN, Hinge, NonSaturating, LSGAN), strict=True))


def make_gan_loss(loss: str | GANLoss, parameter: str = "adversarial_loss") -> GANLoss:
    """The loss object for ``loss``: a :class:`GANLoss` is returned as is, a shortcut name is built.

    ``parameter`` names the setting in the error raised for an unknown name or a wrong type.
    """
    if isinstance(loss, GANLoss):
        return loss
    if isinstance(loss, str) and loss in GAN_LOSSES:
        return GAN_LOSSES[loss]()
    raise ValueError(
        f"{parameter}={loss!r} is not a GAN loss: expected one of the names {', '.join(GAN_LOSSES)} "
        "or an aerogan.losses.GANLoss (class_path: aerogan.losses.Hinge, ...)"
    )
