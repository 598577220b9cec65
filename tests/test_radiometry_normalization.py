"""Normalisation that transfers (reflectance vs z-score, stored in checkpoints) and radiometric augmentation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import rasterio
import torch

from aerogan import SuperResolution
from aerogan.nets import DSen2
from datamodules.multires import DN_REFLECTANCE_SCALE, MultiResolutionDataModule
from datamodules.radiometry import RadiometricJitter
from tests.data.multires import GROUPS, write_group_rasters

T2 = {"target_bands": GROUPS[20], "guide_bands": [GROUPS[10]]}


def datamodule(files: list[Path], tmp_path: Path, **kw) -> MultiResolutionDataModule:
    args = {"patch_size": 8, "batch_size": 2, "val_fraction": 0.25, "test_fraction": 0.25, "samples_per_epoch": 4,
            "split_gap": 2, "stats_cache_dir": str(tmp_path / "cache"), **T2, **kw}
    return MultiResolutionDataModule([str(f) for f in files], **args)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    return write_group_rasters(tmp_path / "scene", crs=None)[:2]


def test_sentinel2_bands_default_to_a_fixed_reflectance_scale(files: list[Path], tmp_path: Path) -> None:
    dm = datamodule(files, tmp_path)
    assert dm.normalization == {"kind": "reflectance", "scale": DN_REFLECTANCE_SCALE}
    stats = dm.statistics()
    assert torch.equal(stats["input_mean"], torch.zeros(6)) and torch.equal(stats["input_std"], torch.full((6,), 2000.0))
    assert torch.equal(stats["guide_std"][0], torch.full((4,), 2000.0))
    z = datamodule(files, tmp_path, normalization="zscore")
    assert z.normalization == {"kind": "zscore"}
    assert not torch.equal(z.statistics()["input_mean"], torch.zeros(6))
    assert datamodule(files, tmp_path, reflectance_scale=1000.0).statistics()["input_std"][0] == 1000.0


def test_bands_without_a_physical_scale_default_to_zscore(tmp_path: Path) -> None:
    """Renamed bands (another sensor's names) are not known to be reflectance: auto picks the z-score."""
    out = []
    for f in write_group_rasters(tmp_path / "scene", crs=None)[:2]:
        dst = tmp_path / f"renamed_{f.name}"
        with rasterio.open(f) as src:
            profile, data, names = src.profile, src.read(), src.descriptions
        with rasterio.open(dst, "w", **profile) as ds:
            ds.write(data)
            ds.descriptions = tuple(f"band_{n}" for n in names)
        out.append(dst)
    dm = MultiResolutionDataModule([str(p) for p in out], target_bands=[f"band_{b}" for b in GROUPS[20]],
                                   guide_bands=[[f"band_{b}" for b in GROUPS[10]]], patch_size=8, val_fraction=0.25,
                                   test_fraction=0.25, split_gap=2, stats_cache_dir=str(tmp_path / "cache"))
    assert dm.normalization == {"kind": "zscore"}


def test_bad_normalization_settings_name_the_parameter(files: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data.normalization='minmax'"):
        datamodule(files, tmp_path, normalization="minmax")
    with pytest.raises(ValueError, match="data.reflectance_scale=-1"):
        datamodule(files, tmp_path, reflectance_scale=-1.0)
    with pytest.raises(ValueError, match="data.gain_jitter"):
        datamodule(files, tmp_path, gain_jitter=-0.1)


def test_checkpoint_stores_normalization_and_training_summary(files: list[Path], tmp_path: Path) -> None:
    dm = datamodule(files, tmp_path)
    torch.manual_seed(0)
    model = SuperResolution(DSen2(6, 6, 2, num_features=8, num_blocks=1, guide_channels=[4], guide_ratios=[1]), None,
                            objective="supervised", num_panels=0)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = SuperResolution.load_from_checkpoint(ckpt, weights_only=False, generator=DSen2(
        6, 6, 2, num_features=8, num_blocks=1, guide_channels=[4], guide_ratios=[1]))
    assert loaded.metadata["normalization"] == {"kind": "reflectance", "scale": 2000.0}
    summary = loaded.metadata["input_summary"]
    assert set(summary) == set(GROUPS[20]) | set(GROUPS[10])
    # the summary is of the training block only (the left half of the scene): its mean is that block's mean
    with rasterio.open(files[1]) as ds:
        b05 = ds.read(1).astype(np.float64)
    (r0, c0, r1, c1), = dm.split_boxes["train"]
    assert summary["B05"]["mean"] == pytest.approx(b05[r0:r1, c0:c1].mean(), rel=1e-6)
    assert summary["B05"]["p001"] <= summary["B05"]["p50"] <= summary["B05"]["p999"]
    torch.testing.assert_close(loaded.input_norm.std, torch.full((6,), 2000.0))


def _groups(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(8, 6, 12, 12, generator=g) * 3000 + 500, torch.rand(8, 4, 24, 24, generator=g) * 3000 + 500]


def test_jitter_off_is_the_identity() -> None:
    groups = _groups()
    out = RadiometricJitter()(groups)
    assert all(a is b for a, b in zip(out, groups, strict=True))


def test_jitter_is_an_affine_map_per_sample_and_band_within_its_ranges() -> None:
    groups = _groups()
    jitter = RadiometricJitter(gain_jitter=0.4, offset_jitter=300.0, brightness_jitter=0.1)
    out = jitter(groups, generator=torch.Generator().manual_seed(1))
    for x, y in zip(groups, out, strict=True):
        # fit y = a x + b per (sample, band): exact, with a in the gain range and b in the offset range
        xs, ys = x.flatten(2).double(), y.flatten(2).double()
        xc, yc = xs - xs.mean(-1, keepdim=True), ys - ys.mean(-1, keepdim=True)
        a = (xc * yc).sum(-1) / (xc * xc).sum(-1)
        b = ys.mean(-1) - a * xs.mean(-1)
        torch.testing.assert_close(ys, a[..., None] * xs + b[..., None], rtol=0, atol=1e-2)
        assert bool(((a > np.exp(-0.5) - 1e-6) & (a < np.exp(0.5) + 1e-6)).all())
        assert bool((b.abs() <= 300.0 + 1e-3).all())
        assert a.std() > 0.05  # different per band and sample
    # brightness alone: one factor per sample, the same for every band of every group
    bright = RadiometricJitter(brightness_jitter=0.3)(groups, generator=torch.Generator().manual_seed(2))
    ratios = [(y / x).flatten(1) for x, y in zip(groups, bright, strict=True)]
    torch.testing.assert_close(ratios[0].std(1), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(ratios[0][:, 0], ratios[1][:, 0], atol=1e-5, rtol=0)


def test_training_pairs_are_jittered_before_degradation(files: list[Path], tmp_path: Path) -> None:
    """Input and truth are shifted alike: the degraded truth still equals the input (Wald consistency)."""
    dm = datamodule(files, tmp_path, gain_jitter=0.4, offset_jitter=300.0, brightness_jitter=0.2, augment=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    torch.manual_seed(3)
    plain = dm.wald_batch(batch["image"], batch["guide_images"], randomize=False)
    torch.manual_seed(3)
    jittered = dm.wald_batch(batch["image"], batch["guide_images"], randomize=True)
    assert not torch.allclose(plain["target"], jittered["target"])
    from aerogan.degradation import GaussianBlockMean

    spec = dm.degradation_spec
    back = GaussianBlockMean(spec["scale"], spec["sigma"])(jittered["target"].double())
    # inner pixels (away from the patch border, where the crop of the margin differs) agree exactly
    torch.testing.assert_close(back[..., 1:-1, 1:-1], jittered["input"].double()[..., 1:-1, 1:-1], rtol=1e-5, atol=1e-2)


def test_export_metadata_carries_the_normalization(files: list[Path], tmp_path: Path) -> None:
    from aerogan.export import export_metadata

    dm = datamodule(files, tmp_path)
    model = SuperResolution(DSen2(6, 6, 2, num_features=8, num_blocks=1, guide_channels=[4], guide_ratios=[1]), None,
                            objective="supervised", num_panels=0)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), enable_checkpointing=False)
    trainer.validate(model, datamodule=dm, verbose=False)
    meta = export_metadata(model)
    assert meta["normalization"] == {"kind": "reflectance", "scale": 2000.0}
    assert "B05" in meta["input_summary"]
