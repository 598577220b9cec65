"""Every residual generator starts at its baseline: the untrained net returns the interpolated bands, and a
validation pass before any training step scores exactly what bicubic scores."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from aerogan import SuperResolution
from aerogan.nets import DSen2, RDNGenerator, SRResNet
from datamodules import SyntheticDataModule
from datamodules.multires import MultiResolutionDataModule
from tests.data.multires import GROUPS, write_group_rasters

NETS = {
    "DSen2": lambda **kw: DSen2(num_features=8, num_blocks=1, **kw),
    "SRResNet": lambda **kw: SRResNet(num_features=8, num_blocks=1, **kw),
    "RDN": lambda **kw: RDNGenerator(num_features=8, num_blocks=1, num_layers=2, growth=4, **kw),
}


def _trainer(tmp_path: Path) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                     enable_checkpointing=False, default_root_dir=str(tmp_path))


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("guided", [False, True])
def test_untrained_generator_returns_its_skip(name: str, guided: bool) -> None:
    torch.manual_seed(0)
    guides = {"guide_channels": [4], "guide_ratios": [1]} if guided else {}
    net = NETS[name](in_channels=3, out_channels=3, scale=2, **guides)
    x = torch.randn(2, 3, 8, 8)
    y = net(x, [torch.randn(2, 4, 16, 16)] if guided else [])
    torch.testing.assert_close(y, F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False), rtol=0, atol=1e-6)
    # opting out restores the random residual (the published DSen2 initialisation, BasicSR's scaled Kaiming)
    off = NETS[name](in_channels=3, out_channels=3, scale=2, start_at_skip=False, **guides)
    y_off = off(x, [torch.randn(2, 4, 16, 16)] if guided else [])
    assert (y_off - F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(NETS))
def test_zeroed_output_layer_still_learns(name: str) -> None:
    """The zero layer gets a gradient at step 0 (its input features are not zero), so training moves it."""
    torch.manual_seed(0)
    net = NETS[name](in_channels=3, out_channels=3, scale=2)
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 16, 16)
    F.l1_loss(net(x), y).backward()
    assert net.conv_out.weight.grad.abs().sum() > 0


def test_no_skip_keeps_the_initialisation() -> None:
    """Band synthesis (no skip) keeps a live output layer: a zero output would carry no information."""
    net = SRResNet(in_channels=3, out_channels=2, scale=1, num_features=8, num_blocks=1)
    assert not net.skip.enabled and net.conv_out.weight.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(NETS))
def test_epoch0_validation_rmse_equals_bicubic_guided(name: str, tmp_path: Path) -> None:
    files = write_group_rasters(tmp_path / "scene", crs=None)[:2]
    dm = MultiResolutionDataModule([str(f) for f in files], target_bands=GROUPS[20], guide_bands=[GROUPS[10]], patch_size=8,
                                   batch_size=2, val_fraction=0.25, test_fraction=0.25, split_gap=2, samples_per_epoch=4,
                                   stats_cache_dir=str(tmp_path / "cache"))
    torch.manual_seed(0)
    net = NETS[name](in_channels=6, out_channels=6, scale=2, guide_channels=[4], guide_ratios=[1])
    model = SuperResolution(net, None, objective="supervised", num_panels=0)
    (metrics,) = _trainer(tmp_path).validate(model, datamodule=dm, verbose=False)
    assert metrics["val/psnr"] == pytest.approx(metrics["val/psnr_bicubic"], abs=0.05)
    (tested,) = _trainer(tmp_path).test(model, datamodule=dm, verbose=False)
    assert tested["test/rmse"] == pytest.approx(tested["test/rmse_bicubic"], rel=0.01)


@pytest.mark.parametrize("name", sorted(NETS))
def test_epoch0_validation_rmse_equals_bicubic_single_input(name: str, tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_bands=3, scene_size=32, num_train_scenes=1, num_val_scenes=1, num_test_scenes=1,
                             samples_per_epoch=4, patch_size=16, batch_size=2)
    torch.manual_seed(0)
    model = SuperResolution(NETS[name](in_channels=3, out_channels=3, scale=2), None, objective="supervised", num_panels=0)
    (metrics,) = _trainer(tmp_path).validate(model, datamodule=dm, verbose=False)
    assert metrics["val/psnr"] == pytest.approx(metrics["val/psnr_bicubic"], abs=0.05)
    assert metrics["val/sre"] == pytest.approx(metrics["val/sre_bicubic"], abs=0.05)
