"""Adversarial losses on raw critic scores (logits), following BasicSR ``gan_loss.py`` semantics."""

from __future__ import annotations

from typing import Literal, get_args

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AdversarialLoss", "AdversarialLossName"]

AdversarialLossName = Literal["wgan-gp", "wgan", "hinge", "nonsaturating", "lsgan"]


class AdversarialLoss(nn.Module):
    """Critic and generator objectives for one GAN flavour; both are minimised.

    Scores are raw critic outputs of shape ``(B,)``. ``wgan-gp`` and ``wgan`` share the same
    objective; ``wgan-gp`` only signals (via :attr:`uses_gradient_penalty`) that the training
    loop must add :func:`aerogan.losses.penalty.gradient_penalty` to the critic loss.
    """

    def __init__(self, kind: str = "wgan-gp") -> None:
        super().__init__()
        allowed = get_args(AdversarialLossName)
        if kind not in allowed:
            raise ValueError(f"unknown adversarial loss kind {kind!r}; allowed values: {', '.join(allowed)}")
        self.kind: str = kind

    @property
    def uses_gradient_penalty(self) -> bool:
        """True only for ``wgan-gp``."""
        return self.kind == "wgan-gp"

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        """Loss the critic minimises, given scores on real and (detached) generated samples."""
        if self.kind in ("wgan", "wgan-gp"):
            return fake_scores.mean() - real_scores.mean()
        if self.kind == "hinge":
            return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()
        if self.kind == "nonsaturating":
            return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        # lsgan
        return 0.5 * ((real_scores - 1.0) ** 2).mean() + 0.5 * (fake_scores**2).mean()

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        """Loss the generator minimises, given the critic's scores on generated samples."""
        if self.kind in ("wgan", "wgan-gp", "hinge"):
            return -fake_scores.mean()
        if self.kind == "nonsaturating":
            return F.softplus(-fake_scores).mean()
        # lsgan
        return 0.5 * ((fake_scores - 1.0) ** 2).mean()

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
