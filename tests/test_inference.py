"""Whole-scene prediction end to end: seamless tiling, georeferencing, nodata, atomic writes, ranks, CLI fit -> predict."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import rasterio
import torch

from aerogan import SuperResolution
from aerogan.inference import load_model, super_resolve_array, super_resolve_file
from aerogan.nets import SRResNet
from aerogan.prediction import GeoTiffSink, PredictionRun, PredictTiles, assemble_parts, run_plan
from datamodules import ArrayDataModule, GeoTiffDataModule
from tests.data.geotiffs import smooth_scene, write_geotiff

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _model(in_ch: int = 3, out_ch: int = 3, scale: int = 2, blocks: int = 2, seed: int = 0) -> SuperResolution:
    """A small untrained SRResNet with amplified weights (so it is far from the bicubic identity)."""
    torch.manual_seed(seed)
    m = SuperResolution(generator=SRResNet(in_ch, out_ch, scale, num_features=8, num_blocks=blocks), critic=None,
                        objective="supervised", num_panels=0)
    with torch.no_grad():
        for p in m.generator.parameters():
            p.mul_(5)
    m.input_norm.set(torch.full((in_ch,), 0.3), torch.full((in_ch,), 0.1))
    m.target_norm.set(torch.full((out_ch,), 0.3), torch.full((out_ch,), 0.1))
    m.metadata = {"scale": scale, "target_band_names": [f"sr{i}" for i in range(out_ch)]}
    return m.eval()


def test_tiled_prediction_has_no_seams() -> None:
    """Tiles with overlap/4 above the receptive radius (7.5 LR px here) reproduce whole-image inference."""
    model = _model()
    x = smooth_scene(3, 150, 170, seed=2)
    with torch.no_grad():
        whole = model.super_resolve(torch.from_numpy(x)[None])[0].numpy()
    tiled = super_resolve_array(model, x, tile=64, overlap=32, batch_size=3)
    assert tiled.shape == (3, 300, 340)
    assert np.abs(tiled - whole).max() <= 1e-4 * np.abs(whole).max()
    # channels-last in, channels-last out
    last = super_resolve_array(model, x.transpose(1, 2, 0), tile=64, overlap=32, layout="channels_last")
    np.testing.assert_allclose(last.transpose(2, 0, 1), tiled, atol=1e-6)


def _predict(dm, model, **trainer_kw) -> None:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False, **trainer_kw)
    assert trainer.predict(model, datamodule=dm) is None  # nothing kept in memory


def test_predicted_geotiff_is_georeferenced(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "scene.tif", height=70, width=90, nodata=-5.0, border=3, holes=[(30, 40, 34, 50)],
                        crs="EPSG:32618", res=30.0, nan_pixels=[(50, 60)])
    dm = GeoTiffDataModule(paths=[str(tif)], patch_size=16, tile=32, overlap=16, output_dir=str(tmp_path / "out"),
                           stats_cache_dir=str(tmp_path / "cache"), predict_batch_size=2, val_fraction=0.2, test_fraction=0.2)
    model = _model()
    with pytest.warns(UserWarning, match=r"1 input pixel\(s\) hold NaN"):
        _predict(dm, model)
    out = tmp_path / "out" / "scene_x2.tif"
    assert sorted(p.name for p in out.parent.iterdir()) == ["scene_x2.tif"]  # no temporary left
    with rasterio.open(tif) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        assert dst.res == pytest.approx((src.res[0] / 2, src.res[1] / 2))
        assert tuple(dst.bounds) == pytest.approx(tuple(src.bounds))
        assert (dst.width, dst.height) == (180, 140) and dst.dtypes[0] == "float32"
        assert dst.descriptions == ("B1", "B2", "B3") and dst.nodata == -5.0  # names from the model (set up by the data)
        sr = dst.read()
        valid_in = src.dataset_mask() > 0
        valid_in[50, 60] = False  # the NaN pixel
    valid_out = valid_in.repeat(2, 0).repeat(2, 1)
    assert ((sr == -5.0).all(0) == ~valid_out).all()
    # same values as the notebook API on the same input
    x = rasterio.open(tif).read().astype(np.float32)
    ref = super_resolve_array(model, x, tile=32, overlap=16, nodata=-5.0)
    np.testing.assert_allclose(sr[:, valid_out], ref[:, valid_out], rtol=1e-5, atol=1e-6)


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tif = write_geotiff(tmp_path / "scene.tif", height=96, width=64)
    out_dir = tmp_path / "out"
    dm = GeoTiffDataModule(paths=[str(tif)], patch_size=16, tile=32, overlap=8, output_dir=str(out_dir),
                           stats_cache_dir=str(tmp_path / "cache"), val_fraction=0.2, test_fraction=0.2)
    real_write, calls = GeoTiffSink.write, []

    def failing_write(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(GeoTiffSink, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        _predict(dm, _model())
    assert len(calls) == 2
    assert list(out_dir.iterdir()) == []  # neither the final name nor a temporary
    calls.clear()
    with pytest.raises(OSError, match="disk full"):
        super_resolve_file(_model(), tif, out_dir / "api.tif", tile=32, overlap=8)
    assert list(out_dir.iterdir()) == []


def _ranks_write_parts(plan, model: SuperResolution, world: int, band_names: list[str] | None = None) -> None:
    """The multi-GPU path without processes: each rank's strips of ``plan`` predicted and written to its parts."""
    tiles = PredictTiles(plan, 2)
    for rank in range(world):
        run = PredictionRun(plan, world, rank, band_names=band_names)
        for i in tiles.indices_for(plan.strips_for(world, rank)):
            item = tiles[i]
            with torch.no_grad():
                pred = model.predict_step(item, i).numpy()
            run.add(item["scene"], item["strip"], item["first"], pred, item["valid"].numpy())
        run.commit()


def test_ranks_write_disjoint_rows_that_assemble_to_the_single_rank_output(tmp_path: Path) -> None:
    """The multi-GPU path without processes: each rank's strips -> parts -> rank zero assembles."""
    tif = write_geotiff(tmp_path / "scene.tif", height=100, width=60, nodata=-1.0, border=2)
    dm = GeoTiffDataModule(paths=[str(tif)], patch_size=16, tile=32, overlap=16, output_dir=str(tmp_path / "one"),
                           stats_cache_dir=str(tmp_path / "cache"), val_fraction=0.2, test_fraction=0.2)
    model = _model()
    plan = dm.prediction_plan()
    run_plan(model, plan, batch_size=2)
    with rasterio.open(tmp_path / "one" / "scene_x2.tif") as ds:
        single = ds.read()
    plan.outputs[0].path = tmp_path / "multi" / "scene_x2.tif"
    world = 3
    _ranks_write_parts(plan, model, world, ["a", "b", "c"])
    assert len(list((tmp_path / "multi").glob(".*.part.npy"))) == world
    assemble_parts(plan, world, ["a", "b", "c"])
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == ["scene_x2.tif"]
    with rasterio.open(tmp_path / "multi" / "scene_x2.tif") as ds:
        np.testing.assert_array_equal(ds.read(), single)
        assert ds.descriptions == ("a", "b", "c")


def test_block_columns_equal_whole_width_strips_in_every_sink(tmp_path: Path) -> None:
    """A scene wider than the block: block columns with halos give the whole-width output (GeoTIFF, array,
    stacked channels-last .npy, and three ranks' parts assembled), NaN counts once per scene."""
    model = _model()
    tif = write_geotiff(tmp_path / "scene.tif", height=60, width=300, nodata=-1.0, border=2, holes=[(20, 30, 120, 140)],
                        nan_pixels=[(40, 127), (41, 129)])
    whole = super_resolve_file(model, tif, tmp_path / "whole.tif", tile=48, overlap=16, block_width=None)
    with pytest.warns(UserWarning, match="2 input pixel"):  # the NaNs straddle the block-column edge at 128
        blocks = super_resolve_file(model, tif, tmp_path / "blocks.tif", tile=48, overlap=16, block_width=256)
    with rasterio.open(whole) as a, rasterio.open(blocks) as b:
        x, y = a.read(), b.read()
        assert a.profile == b.profile
    nodata = x == -1.0
    assert nodata.any() and (nodata == (y == -1.0)).all()
    assert np.abs(x[~nodata] - y[~nodata]).max() <= 1e-4 * np.abs(x[~nodata]).max()
    scene = smooth_scene(3, 40, 300, seed=3)
    a = super_resolve_array(model, scene, tile=48, overlap=16, block_width=None)
    b = super_resolve_array(model, scene, tile=48, overlap=16, block_width=256)
    assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
    data = scene.transpose(1, 2, 0)[None].repeat(2, 0)  # (2, 40, 300, 3) channels last, two stacked scenes
    kw = dict(array=data, input_bands=[0, 1, 2], target_bands=[0, 1, 2], patch_size=8, val_scenes=[1], test_fraction=0.0,
              tile=48, overlap=16)
    _predict(ArrayDataModule("channels_last", output_dir=str(tmp_path / "n0"), predict_block_width=None, **kw), model)
    dm = ArrayDataModule("channels_last", output_dir=str(tmp_path / "n1"), predict_block_width=256, **kw)
    _predict(dm, model)
    assert len(dm.prediction_plan().scenes) == 2 * 3  # two scenes, three block columns each
    n0, n1 = np.load(tmp_path / "n0" / "array_x2.npy"), np.load(tmp_path / "n1" / "array_x2.npy")
    assert n1.shape == (2, 80, 600, 3) and np.abs(n0 - n1).max() <= 1e-4 * np.abs(n0).max()
    # three ranks' parts of the block columns, assembled
    dm = GeoTiffDataModule(paths=[str(tif)], patch_size=16, tile=48, overlap=16, output_dir=str(tmp_path / "multi"),
                           stats_cache_dir=str(tmp_path / "cache"), val_fraction=0.2, test_fraction=0.2, predict_block_width=256)
    plan = dm.prediction_plan()
    _ranks_write_parts(plan, model, 3)
    assemble_parts(plan, 3, None)
    with rasterio.open(tmp_path / "multi" / "scene_x2.tif") as ds:
        z = ds.read()
    assert (nodata == (z == -1.0)).all() and np.abs(x[~nodata] - z[~nodata]).max() <= 1e-4 * np.abs(x[~nodata]).max()


def test_array_module_predicts_npy(tmp_path: Path) -> None:
    data = smooth_scene(4, 40, 48, seed=4).transpose(1, 2, 0)[None].repeat(2, 0)  # (2, 40, 48, 4) channels last
    data[1, 5, 7, 2] = np.nan
    dm = ArrayDataModule("channels_last", array=data, input_bands=[0, 1, 2], target_bands=[0, 1, 2], patch_size=8,
                         val_scenes=[1], test_fraction=0.0, tile=24, overlap=8, output_dir=str(tmp_path))
    _predict(dm, _model())
    out = np.load(tmp_path / "array_x2.npy")
    assert out.shape == (2, 80, 96, 3) and out.dtype == np.float32
    assert np.isnan(out[1, 10:12, 14:16]).all() and np.isfinite(out[0]).all() and np.isnan(out).sum() == 4 * 3


# ------------------------------------------------------------------------------------- CLI end to end
CONFIG = """
trainer:
  accelerator: cpu
  devices: 1
  max_epochs: 1
  limit_val_batches: 1
  num_sanity_val_steps: 0
  enable_progress_bar: false
  logger:
    class_path: lightning.pytorch.loggers.TensorBoardLogger
    init_args: {{save_dir: runs, name: geo, default_hp_metric: false}}
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{save_last: true}}
model:
  class_path: aerogan.SuperResolution
  init_args:
    objective: regularized
    n_critic: 1
    num_panels: 0
    generator:
      class_path: aerogan.nets.SRResNet
      init_args: {{num_features: 8, num_blocks: 1}}
    critic:
      class_path: aerogan.nets.PatchCritic
      init_args: {{num_features: 8, num_layers: 2}}
data:
  class_path: datamodules.GeoTiffDataModule
  init_args:
    paths: [{train}]
    patch_size: 16
    batch_size: 4
    samples_per_epoch: 8
    val_fraction: 0.2
    test_fraction: 0.2
    tile: 32
    overlap: 8
    output_dir: out
    stats_cache_dir: cache
"""


def test_cli_fit_then_predict_any_scene(tmp_path: Path, run_cli) -> None:
    train = write_geotiff(tmp_path / "train.tif", height=96, width=112, nodata=0, dtype="uint16", border=2, crs="EPSG:32618")
    other = write_geotiff(tmp_path / "other.tif", height=50, width=70, nodata=-5.0, border=1, crs="EPSG:4326",
                          res=0.001, origin=(10.0, 45.0), seed=9)
    cfg = tmp_path / "geo.yaml"
    cfg.write_text(CONFIG.format(train=train))
    run_cli("fit", "--config", cfg)
    ckpt = next((tmp_path / "runs" / "geo").glob("version_*/checkpoints/last.ckpt"))
    run_cli("predict", "--config", cfg, "--ckpt_path", ckpt)
    assert (tmp_path / "out" / "train_x2.tif").is_file()
    run_cli("predict", "--config", cfg, "--ckpt_path", ckpt, "--data.init_args.predict_paths", f"[{other}]")
    with rasterio.open(other) as src, rasterio.open(tmp_path / "out" / "other_x2.tif") as dst:
        assert dst.crs == src.crs and dst.nodata == -5.0
        assert dst.res == pytest.approx((src.res[0] / 2, src.res[1] / 2))
        assert tuple(dst.bounds) == pytest.approx(tuple(src.bounds))
        assert dst.descriptions == ("B1", "B2", "B3")
        cli_sr = dst.read()
    # the notebook API loads the same checkpoint and writes the same scene
    model = load_model(ckpt)
    assert model.metadata["scale"] == 2 and model.metadata["target_band_names"] == ["B1", "B2", "B3"]
    api = super_resolve_file(ckpt, other, tmp_path / "api.tif", tile=32, overlap=8)
    with rasterio.open(api) as ds:
        np.testing.assert_allclose(ds.read(), cli_sr, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not (SHARED_DATA / "landsat7_rgb_byte.tif").is_file(), reason="real sample not found")
def test_landsat_sample_predicts_x2(tmp_path: Path) -> None:
    src_path = SHARED_DATA / "landsat7_rgb_byte.tif"
    before = sorted(os.listdir(SHARED_DATA))
    model = _model(blocks=1)
    model.input_norm.set(torch.full((3,), 60.0), torch.full((3,), 50.0))
    model.target_norm.set(torch.full((3,), 60.0), torch.full((3,), 50.0))
    dst = super_resolve_file(model, src_path, tmp_path / "l7_x2.tif", tile=256, overlap=32, output_dtype="input")
    with rasterio.open(src_path) as src, rasterio.open(dst) as out:
        assert out.crs == src.crs and out.dtypes[0] == "uint8" and out.nodata == 0
        assert (out.width, out.height) == (2 * src.width, 2 * src.height)
        assert tuple(out.bounds) == pytest.approx(tuple(src.bounds))
        mask_in = src.dataset_mask() > 0
        assert ((out.read() != 0).any(0) == mask_in.repeat(2, 0).repeat(2, 1)).all()
    assert sorted(os.listdir(SHARED_DATA)) == before  # nothing written beside the (read-only) sample


@pytest.mark.ddp
def test_two_process_ddp_predict_matches_single_process(tmp_path: Path) -> None:
    """Real CPU DDP (gloo, fork): each rank writes its rows, rank zero assembles; same file as one process."""
    from lightning.pytorch.strategies import DDPStrategy

    tif = write_geotiff(tmp_path / "scene.tif", height=100, width=60, nodata=-1.0, border=2)
    kw = dict(paths=[str(tif)], patch_size=16, tile=32, overlap=16, stats_cache_dir=str(tmp_path / "cache"),
              val_fraction=0.2, test_fraction=0.2)
    model = _model()
    _predict(GeoTiffDataModule(output_dir=str(tmp_path / "one"), **kw), model)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=DDPStrategy(start_method="fork"), logger=False,
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.predict(model, datamodule=GeoTiffDataModule(output_dir=str(tmp_path / "two"), **kw))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["scene_x2.tif"]
    with rasterio.open(tmp_path / "one" / "scene_x2.tif") as a, rasterio.open(tmp_path / "two" / "scene_x2.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.profile == b.profile
