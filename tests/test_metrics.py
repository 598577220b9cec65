"""Metrics against hand computations, on physical values."""

from __future__ import annotations

import math

import torch

from aerogan.metrics import BandRMSE, SpectralAngle, ergas, image_metrics, psnr_from_mse


def test_psnr_is_averaged_per_image_with_fixed_range() -> None:
    target = torch.zeros(2, 1, 16, 16)
    preds = target.clone()
    preds[0] += 0.1  # mse 0.01
    preds[1] += 0.01  # mse 0.0001
    m = image_metrics(data_range=1.0, num_bands=1)
    m.update(preds, target)
    psnr = m.compute()["psnr"]
    expected = (psnr_from_mse(0.01, 1.0) + psnr_from_mse(1e-4, 1.0)) / 2  # 20 dB and 40 dB -> 30
    assert math.isclose(psnr.item(), expected, rel_tol=1e-5)
    assert math.isclose(expected, 30.0, rel_tol=1e-9)  # not 23 dB, the PSNR of the pooled MSE
    assert "sam" not in m.compute()  # one band: no spectral angle


def test_ssim_uses_the_fixed_range() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 16, 16, generator=g) * 0.1
    preds = target + 0.01 * torch.randn(1, 3, 16, 16, generator=g)
    narrow = image_metrics(0.1, 3)
    wide = image_metrics(10.0, 3)
    narrow.update(preds, target)
    wide.update(preds, target)
    assert wide.compute()["ssim"] > narrow.compute()["ssim"]  # a fixed, larger range hides the same error


def test_spectral_angle_skips_zero_pixels_and_matches_hand_value() -> None:
    target = torch.zeros(1, 2, 1, 3)
    preds = torch.zeros(1, 2, 1, 3)
    target[0, :, 0, 0] = torch.tensor([1.0, 0.0])
    preds[0, :, 0, 0] = torch.tensor([1.0, 1.0])  # 45 degrees
    target[0, :, 0, 1] = torch.tensor([0.0, 2.0])
    preds[0, :, 0, 1] = torch.tensor([0.0, 3.0])  # 0 degrees
    # pixel 2 is all-zero in both: torchmetrics would return NaN for the whole set
    sam = SpectralAngle()
    sam.update(preds, target)
    assert math.isclose(sam.compute().item(), 22.5, rel_tol=1e-9)


def test_band_rmse_per_band() -> None:
    target = torch.zeros(2, 2, 2, 2)
    preds = target.clone()
    preds[:, 0] = 3.0
    preds[0, 1] = 1.0  # band 1: half the pixels off by 1 -> sqrt(0.5)
    m = BandRMSE(2)
    m.update(preds[:1], target[:1])
    m.update(preds[1:], target[1:])
    torch.testing.assert_close(m.compute(), torch.tensor([3.0, math.sqrt(0.5)], dtype=torch.float64))


def test_ergas_uses_resolution_ratio() -> None:
    target = torch.full((1, 2, 4, 4), 2.0)
    preds = target.clone()
    preds[:, 0] += 0.2  # RMSE_0 / mu_0 = 0.1
    preds[:, 1] += 0.4  # RMSE_1 / mu_1 = 0.2
    m = ergas(scale=4)
    m.update(preds, target)
    expected = 100 * (1 / 4) * math.sqrt((0.1**2 + 0.2**2) / 2)
    assert math.isclose(m.compute().item(), expected, rel_tol=1e-4)
