"""Exact resume on the real-scene datamodules: a run resumed from epoch 2 ends like a straight 4-epoch run.

The patch draws of :class:`datamodules.scenes.RandomPatchSampler` depend on (seed, epoch), with the
epoch taken from Lightning's ``set_epoch`` (also through ``DistributedSamplerWrapper`` under DDP), so a
resumed GeoTIFF, array or Landsat run sees the patches the uninterrupted run sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from lightning.pytorch.callbacks import ModelCheckpoint

from aerogan import SuperResolution
from aerogan.nets import PatchCritic, SRResNet
from datamodules import ArrayDataModule, GeoTiffDataModule
from datamodules.scenes import RandomPatchSampler, SceneDataModule
from tests.data.geotiffs import smooth_scene, write_geotiff

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LANDSAT = SHARED_DATA / "landsat7_rgb_byte.tif"


def test_patch_draws_follow_set_epoch_also_through_the_distributed_wrapper() -> None:
    def draw(epoch: int) -> list[int]:
        sampler = RandomPatchSampler(num_items=50, num_samples=12, seed=3)
        sampler.set_epoch(epoch)
        return list(sampler)

    sampler = RandomPatchSampler(num_items=50, num_samples=12, seed=3)
    assert list(sampler) == list(sampler) == draw(0)  # iterating does not advance the epoch
    assert draw(2) == draw(2) and draw(2) != draw(0)
    # DDP: Lightning wraps custom samplers; set_epoch reaches the wrapped sampler, ranks split one draw
    shards = []
    for rank in range(2):
        wrapper = DistributedSamplerWrapper(RandomPatchSampler(50, 12, seed=3), num_replicas=2, rank=rank, shuffle=False)
        wrapper.set_epoch(2)
        shards.append(list(wrapper))
    assert sorted(shards[0] + shards[1]) == sorted(draw(2))


def _model() -> SuperResolution:
    torch.manual_seed(0)
    return SuperResolution(SRResNet(3, 3, 2, num_features=8, num_blocks=1), PatchCritic(None, 8, 2), n_critic=2,
                           num_panels=0, ema_decay=0.8)


def _fit(root: Path, data: Callable[[], SceneDataModule], max_epochs: int, resume: bool = False) -> SuperResolution:
    L.seed_everything(7, verbose=False)
    model = _model()
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=max_epochs, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
        default_root_dir=root, deterministic=True, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=root / "ckpt", save_last=True)],
    )
    trainer.fit(model, data(), ckpt_path=str(root / "ckpt" / "last.ckpt") if resume else None)
    return model


def _assert_resume_is_exact(tmp_path: Path, data: Callable[[], SceneDataModule]) -> None:
    full = _fit(tmp_path / "full", data, 4)
    first_half = _fit(tmp_path / "split", data, 2)
    resumed = _fit(tmp_path / "split", data, 4, resume=True)
    a, b = full.generator.state_dict(), resumed.generator.state_dict()
    changed = any(not torch.equal(first_half.generator.state_dict()[k], a[k]) for k in a)
    assert changed  # epochs 3 and 4 trained: the comparison below is not trivially true
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    torch.testing.assert_close(resumed.generator_ema.module.state_dict(), full.generator_ema.module.state_dict(), rtol=0, atol=0)


def test_geotiff_resume_is_exact(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "scene.tif", height=120, width=72, nodata=-1.0, border=2, seed=5)

    def data() -> GeoTiffDataModule:
        return GeoTiffDataModule(paths=[str(tif)], patch_size=16, batch_size=4, samples_per_epoch=8, val_fraction=0.2,
                                 test_fraction=0.2, stats_cache_dir=str(tmp_path / "cache"), seed=1)

    _assert_resume_is_exact(tmp_path, data)


def test_array_resume_is_exact(tmp_path: Path) -> None:
    scenes = smooth_scene(3, 40, 48, seed=6)[None].repeat(3, 0) + np.arange(3, dtype=np.float32)[:, None, None, None] * 0.01

    def data() -> ArrayDataModule:
        return ArrayDataModule("channels_first", array=scenes, patch_size=16, batch_size=4, samples_per_epoch=8,
                               val_scenes=[2], test_fraction=0.0, seed=1)

    _assert_resume_is_exact(tmp_path, data)


@pytest.mark.skipif(not LANDSAT.is_file(), reason="real Landsat sample not found")
def test_landsat_config_resume_is_exact_through_the_cli(tmp_path: Path, run_cli) -> None:
    """``configs/landsat7_x2.yaml`` made tiny on the command line: 2 epochs + resume to 4 == 4 epochs."""
    config = Path(__file__).resolve().parents[1] / "configs" / "landsat7_x2.yaml"
    tiny = [
        "--config", str(config), "--data.init_args.paths", f"[{LANDSAT}]", "--data.init_args.stats_cache_dir", "cache",
        "--data.init_args.samples_per_epoch", "32", "--data.init_args.batch_size", "8", "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.name", "resume",
        "--model.init_args.generator.init_args.num_features", "8", "--model.init_args.generator.init_args.num_blocks", "1",
        "--model.init_args.critic.init_args.num_features", "8", "--model.init_args.critic.init_args.num_layers", "2",
    ]
    full = run_cli("fit", *tiny, "--trainer.max_epochs", "4")
    half = run_cli("fit", *tiny, "--trainer.max_epochs", "2")
    ckpt = Path(half.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    resumed = run_cli("fit", *tiny, "--trainer.max_epochs", "4", "--ckpt_path", str(ckpt))
    assert resumed.trainer.current_epoch == full.trainer.current_epoch == 4
    a, b = full.model.generator.state_dict(), resumed.model.generator.state_dict()
    assert any(not torch.equal(half.model.generator.state_dict()[k], a[k]) for k in a)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
