"""Losses: pixel fidelity, GAN losses (one class each), critic gradient penalties, the spectral-angle and
total-variation terms, and the schedule of the adversarial weight."""

from aerogan.losses.gan import (
    GAN_LOSSES,
    LSGAN,
    WGAN,
    WGANGP,
    GANLoss,
    GANLossName,
    Hinge,
    NonSaturating,
    RaGAN,
    RaLSGAN,
    RelativisticAverage,
    make_gan_loss,
)
from aerogan.losses.penalty import gradient_penalty, r1_penalty
from aerogan.losses.pixel import (
    PIXEL_LOSSES,
    CharbonnierLoss,
    HalfSumSquaredError,
    PixelLossName,
    make_pixel_loss,
)
from aerogan.losses.regularizers import SpectralAngleLoss, TotalVariationLoss
from aerogan.losses.schedule import LAMBDA_SCHEDULES, AdversarialWeightSchedule, LambdaScheduleName

__all__ = [
    "GAN_LOSSES",
    "LAMBDA_SCHEDULES",
    "LSGAN",
    "PIXEL_LOSSES",
    "WGAN",
    "WGANGP",
    "AdversarialWeightSchedule",
    "CharbonnierLoss",
    "GANLoss",
    "GANLossName",
    "HalfSumSquaredError",
    "Hinge",
    "LambdaScheduleName",
    "NonSaturating",
    "PixelLossName",
    "RaGAN",
    "RaLSGAN",
    "RelativisticAverage",
    "SpectralAngleLoss",
    "TotalVariationLoss",
    "gradient_penalty",
    "make_gan_loss",
    "make_pixel_loss",
    "r1_penalty",
]
