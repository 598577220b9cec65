"""``model.consistency_projection``: the module's outputs, degraded by the data's degradation, give back
the input bands, in training, evaluation and prediction, for single-input and guided models."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from aerogan import SuperResolution
from aerogan.degradation import GaussianBlockMean
from aerogan.nets import SRResNet
from datamodules import SyntheticDataModule
from tests.test_guided_training import datamodule, guided_model

TINY = Path(__file__).parent / "conf" / "tiny.yaml"


def fit(model: SuperResolution, dm: L.LightningDataModule, tmp_path: Path) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    return trainer


def test_quickstart_with_projection_reads_zero_consistency(run_cli) -> None:
    base = run_cli("fit", "--config", TINY, "--monitors.topology.enabled", "false")
    cli = run_cli("fit", "--config", TINY, "--monitors.topology.enabled", "false",
                  "--model.init_args.consistency_projection", "true")
    data_range = cli.model.metadata["data_range"]
    without = float(base.trainer.callback_metrics["val/consistency/rmse"])
    with_projection = float(cli.trainer.callback_metrics["val/consistency/rmse"])
    assert with_projection < 1e-4 * data_range < without  # the projection is what makes it vanish
    assert float(cli.trainer.callback_metrics["val/consistency/sam"]) < 1e-2  # degrees


@pytest.mark.parametrize("scale", [2, 3])
def test_super_resolve_is_consistent_at_any_scale(scale: int, tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = SyntheticDataModule(num_bands=3, scene_size=48, num_train_scenes=2, num_val_scenes=1, num_test_scenes=1,
                             samples_per_epoch=4, scale=scale, patch_size=12 * scale, batch_size=2)
    model = SuperResolution(SRResNet(3, 3, scale, num_features=8, num_blocks=1), None, objective="supervised",
                            num_panels=0, consistency_projection=True)
    fit(model, dm, tmp_path)
    spec = model.metadata["degradation"]
    lr = torch.rand(2, 3, 8, 8) * 0.8 + 0.1
    with torch.no_grad():
        sr = model.eval().super_resolve(lr)
    back = GaussianBlockMean(spec["scale"], spec["sigma"])(sr.double())
    assert (back - lr.double()).abs().max() < 1e-4


def test_guided_model_with_projection_is_consistent(tmp_path: Path) -> None:
    from tests.data.multires import write_group_rasters

    files = write_group_rasters(tmp_path / "scene", crs=None)[:2]
    dm = datamodule(files, tmp_path)
    model = guided_model(objective="supervised")
    model.consistency_projection = True
    fit(model, dm, tmp_path)
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    with torch.no_grad():
        sr = model.eval().super_resolve(batch["input"], batch["guides"])
    spec = model.metadata["degradation"]
    back = GaussianBlockMean(spec["scale"], spec["sigma"])(sr.double())
    rel = (back - batch["input"].double()).norm() / batch["input"].double().norm()
    assert rel < 1e-5


def test_projection_refuses_band_synthesis(tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_bands=5, scene_size=32, num_val_scenes=1, num_test_scenes=1, patch_size=16, batch_size=2,
                             scale=1, input_bands=[0, 1, 2], target_bands=[3, 4])
    model = SuperResolution(SRResNet(3, 2, 1, num_features=8, num_blocks=1), None, objective="supervised",
                            num_panels=0, consistency_projection=True)
    with pytest.raises(ValueError, match="model.consistency_projection.*band synthesis"):
        fit(model, dm, tmp_path)


def test_projection_refuses_a_degradation_it_cannot_invert(tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_bands=3, scene_size=64, num_val_scenes=1, num_test_scenes=1, patch_size=32, batch_size=2,
                             scale=2, blur_sigma=1.5)  # sigma of 1.5 LR pixels: the finest LR detail is gone
    model = SuperResolution(SRResNet(3, 3, 2, num_features=8, num_blocks=1), None, objective="supervised",
                            num_panels=0, consistency_projection=True)
    with pytest.raises(ValueError, match="model.consistency_projection"):
        fit(model, dm, tmp_path)


def test_spectral_angle_term_compares_physical_spectra() -> None:
    """In SR, the SAM term sees de-normalised spectra: per-band standardisation would change the angles."""
    from aerogan.losses.regularizers import SpectralAngleLoss

    torch.manual_seed(0)
    model = SuperResolution(SRResNet(3, 3, 2, num_features=8, num_blocks=1), None, objective="supervised",
                            num_panels=0, sam_weight=0.5)
    model.target_norm.set(torch.tensor([0.1, 0.3, 0.5]), torch.tensor([0.02, 0.05, 0.1]))
    pred, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    terms = model.generator_terms(pred, target)
    physical = SpectralAngleLoss()(model.target_norm.inverse(pred), model.target_norm.inverse(target))
    torch.testing.assert_close(terms["spectral_angle"], 0.5 * physical)
    assert not torch.isclose(physical, SpectralAngleLoss()(pred, target))
