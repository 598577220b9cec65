"""GAN losses on raw critic scores (logits), one small class per loss, following BasicSR ``gan_loss.py``.

Each loss gives the critic's objective and the generator's, both minimised, and optionally a penalty
on the critic (WGAN-GP's gradient penalty). A module takes either a loss object (``class_path`` in
configs, e.g. ``adversarial_loss: {class_path: aerogan.losses.Hinge}``) or one of the shortcut names of
:data:`GANLossName`; :func:`make_gan_loss` is the one place that turns a name into an object.

A relativistic loss (:class:`RelativisticAverage`, ``ragan``, ``ralsgan``) also needs the critic's scores on
real samples for the generator's objective: it says so with ``needs_real_scores``, and the module then calls
``generator_loss(fake_scores, real_scores)`` (the other losses are called with the fake scores only).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch.nn.functional as F
from torch import Tensor, nn

from aerogan.losses.penalty import gradient_penalty

__all__ = [
    "GAN_LOSSES",
    "LSGAN",
    "WGAN",
    "WGANGP",
    "GANLoss",
    "GANLossName",
    "Hinge",
    "NonSaturating",
    "RaGAN",
    "RaLSGAN",
    "RelativisticAverage",
    "make_gan_loss",
]

#: The shortcut names, the one definition of them (the registry below follows this order).
GANLossName = Literal["wgan-gp", "wgan", "hinge", "nonsaturating", "lsgan", "ragan", "ralsgan"]


class GANLoss(nn.Module):
    """Base of the GAN losses: scores are raw critic outputs of shape ``(B,)``; every loss is minimised."""

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        """Loss the critic minimises, given its scores on real and (detached) generated samples."""
        raise NotImplementedError

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor | None = None) -> Tensor:
        """Loss the generator minimises, given the critic's scores on generated samples (and, for a loss that
        :attr:`needs_real_scores`, on the real samples of the batch; other losses ignore them)."""
        raise NotImplementedError

    @property
    def needs_real_scores(self) -> bool:
        """True when :meth:`generator_loss` needs the critic's scores on real samples (relativistic losses)."""
        return False

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

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor | None = None) -> Tensor:
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

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor | None = None) -> Tensor:
        return -fake_scores.mean()


class NonSaturating(GANLoss):
    """The original GAN loss with the non-saturating generator objective ``softplus(-g(f(x)))``."""

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor | None = None) -> Tensor:
        return F.softplus(-fake_scores).mean()


class LSGAN(GANLoss):
    """Least-squares GAN: halved squared errors to the targets ``real_label`` (1) and ``fake_label`` (0).

    The generator pulls its scores towards ``real_label``. ``fake_label=-1`` gives the symmetric targets of
    the relativistic least-squares loss (:class:`RaLSGAN`).
    """

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if real_label == fake_label:
            raise ValueError(f"LSGAN real_label and fake_label must differ, both are {real_label!r}")
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return 0.5 * ((real_scores - self.real_label) ** 2).mean() + 0.5 * ((fake_scores - self.fake_label) ** 2).mean()

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor | None = None) -> Tensor:
        return 0.5 * ((fake_scores - self.real_label) ** 2).mean()

    def extra_repr(self) -> str:
        return f"real_label={self.real_label:g}, fake_label={self.fake_label:g}"


class RelativisticAverage(GANLoss):
    """Relativistic-average GAN (Jolicoeur-Martineau 2018; ESRGAN's discriminator) around an absolute ``base`` loss.

    The critic judges whether a real sample is more realistic than the average fake, and a fake less than the
    average real: with ``r~ = g(y) - mean g(f(x))`` and ``f~ = g(f(x)) - mean g(y)``, the critic minimises
    ``base.critic_loss(r~, f~)`` and the generator the same loss with the roles swapped,
    ``base.critic_loss(f~, r~)``, so the generator gets gradients from the real samples' scores as well.
    With the default :class:`NonSaturating` base this is RaGAN (ESRGAN), with :class:`Hinge` RaHinge, with
    ``LSGAN(fake_label=-1)`` RaLSGAN (halved). The real scores the generator needs are the critic's on the
    batch's targets, taken without gradient (the critic is not trained by the generator step).

    Args:
        base: the absolute GAN loss applied to the relativistic scores (``class_path`` in configs);
            ``None``: :class:`NonSaturating`. Its penalty, if any, is this loss's penalty.
    """

    def __init__(self, base: GANLoss | None = None) -> None:
        super().__init__()
        base = NonSaturating() if base is None else base
        if not isinstance(base, GANLoss) or base.needs_real_scores:
            raise ValueError(
                f"RelativisticAverage base={base!r}: expected an absolute aerogan.losses.GANLoss "
                "(NonSaturating, LSGAN, Hinge, ...), not a relativistic one"
            )
        self.base = base

    @property
    def needs_real_scores(self) -> bool:
        return True

    @staticmethod
    def _relative(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
        return first - second.mean(), second - first.mean()

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return self.base.critic_loss(*self._relative(real_scores, fake_scores))

    def generator_loss(self, fake_scores: Tensor, real_scores: Tensor | None = None) -> Tensor:
        if real_scores is None:
            raise ValueError(
                f"{type(self).__name__}.generator_loss needs the critic's scores on real samples: "
                "call generator_loss(fake_scores, real_scores)"
            )
        return self.base.critic_loss(*self._relative(fake_scores, real_scores))

    def penalty(self, critic: nn.Module, real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor | None:
        return self.base.penalty(critic, real, fake, eps=eps)

    @property
    def uses_gradient_penalty(self) -> bool:
        return self.base.uses_gradient_penalty


class RaGAN(RelativisticAverage):
    """RaGAN, ESRGAN's adversarial loss: :class:`RelativisticAverage` with the non-saturating (logistic) base."""

    def __init__(self) -> None:
        super().__init__(NonSaturating())


class RaLSGAN(RelativisticAverage):
    """RaLSGAN: :class:`RelativisticAverage` with least-squares targets +1 (real) and -1 (fake), halved as :class:`LSGAN`.

    Critic: ``0.5 mean (r~ - 1)^2 + 0.5 mean (f~ + 1)^2``; generator: ``0.5 mean (f~ - 1)^2 + 0.5 mean (r~ + 1)^2``.
    """

    def __init__(self) -> None:
        super().__init__(LSGAN(real_label=1.0, fake_label=-1.0))


#: Shortcut name -> loss class, in the order of :data:`GANLossName`.
GAN_LOSSES: dict[str, type[GANLoss]] = dict(
    zip(get_args(GANLossName), (WGANGP, WGAN, Hinge, NonSaturating, LSGAN, RaGAN, RaLSGAN), strict=True)
)


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
