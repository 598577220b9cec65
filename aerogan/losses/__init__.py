"""Losses: pixel fidelity, adversarial objectives and the WGAN-GP gradient penalty."""

from aerogan.losses.adversarial import AdversarialLoss, AdversarialLossName
from aerogan.losses.penalty import gradient_penalty
from aerogan.losses.pixel import CharbonnierLoss, PixelLossName, make_pixel_loss

__all__ = [
    "AdversarialLoss",
    "AdversarialLossName",
    "CharbonnierLoss",
    "PixelLossName",
    "gradient_penalty",
    "make_pixel_loss",
]
