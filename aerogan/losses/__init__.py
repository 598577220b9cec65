"""Losses: pixel fidelity, GAN losses (one class each) and the WGAN-GP gradient penalty."""

from aerogan.losses.gan import (
    GAN_LOSSES,
    LSGAN,
    WGAN,
    WGANGP,
    GANLoss,
    GANLossName,
    Hinge,
    NonSaturating,
    make_gan_loss,
)
from aerogan.losses.penalty import gradient_penalty
from aerogan.losses.pixel import (
    PIXEL_LOSSES,
    CharbonnierLoss,
    HalfSumSquaredError,
    PixelLossName,
    make_pixel_loss,
)

__all__ = [
    "GAN_LOSSES",
    "LSGAN",
    "PIXEL_LOSSES",
    "WGAN",
    "WGANGP",
    "CharbonnierLoss",
    "GANLoss",
    "GANLossName",
    "HalfSumSquaredError",
    "Hinge",
    "NonSaturating",
    "PixelLossName",
    "gradient_penalty",
    "make_gan_loss",
    "make_pixel_loss",
]
