"""Prediction through the Trainer: the writer, the tile loader's shape, nodata filled on the model side, GDAL's cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import numpy as np
import rasterio
import torch
from rasterio.env import get_gdal_config

from aerogan import SuperResolution
from aerogan.nets import SRResNet
from aerogan.prediction import ScenePredictionWriter, gdal_cache, seamless_overlap, super_resolve_file
from datamodules import GeoTiffDataModule
from tests.data.geotiffs import write_geotiff


def _model() -> SuperResolution:
    torch.manual_seed(0)
    m = SuperResolution(generator=SRResNet(3, 3, 2, num_features=8, num_blocks=1), critic=None, objective="supervised", num_panels=0)
    with torch.no_grad():
        for p in m.generator.parameters():
            p.mul_(5)
    m.input_norm.set(torch.tensor([0.2, 0.3, 0.4]), torch.full((3,), 0.1))
    m.target_norm.set(torch.full((3,), 0.3), torch.full((3,), 0.1))
    m.metadata = {"scale": 2}
    return m.eval()


def _trainer(**kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
                     enable_model_summary=False, **kw)


class BatchIndices(ScenePredictionWriter):
    """Records the batch indices Lightning hands the writer."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[int]] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        self.seen.append(list(batch_indices))
        super().write_on_batch_end(trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx)


def test_predict_has_batch_indices_and_leaves_the_warning_filters_alone(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "scene.tif", height=60, width=70, nodata=-1.0, border=2)
    dm = GeoTiffDataModule(predict_paths=[str(tif)], patch_size=16, tile=32, overlap=8, predict_batch_size=2,
                           output_dir=str(tmp_path / "out"), stats_cache_dir=str(tmp_path / "cache"))
    writer = BatchIndices()
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _trainer(callbacks=[writer])
        trainer.predict(_model(), datamodule=dm)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "batch indices" in m or "custom batch sampler" in m], messages
    assert warnings.filters == filters  # setup installed no process-wide filter
    # one chunk per batch, in order: Lightning tracked each chunk's index
    assert writer.seen == [[i] for i in range(len(dm.datasets["predict"]))]
    assert (tmp_path / "out" / "scene_x2.tif").is_file()
    assert [cb for cb in trainer.callbacks if isinstance(cb, ScenePredictionWriter)] == [writer]  # none added twice


def test_nodata_is_filled_once_by_the_model_with_its_input_means() -> None:
    model = _model()
    x = torch.rand(2, 3, 12, 12) + 5.0  # far from the means: filling makes a visible difference
    valid = torch.ones(2, 12, 12, dtype=torch.bool)
    valid[0, 3:6, 4:8] = False
    filled = x.clone()
    filled[0, :, 3:6, 4:8] = model.input_norm.mean.view(3, 1, 1)
    with torch.no_grad():
        got = model.predict_step({"input": x, "valid": valid}, 0)
        torch.testing.assert_close(got, model.super_resolve(filled))
        assert not torch.allclose(got, model.super_resolve(x))
        torch.testing.assert_close(model.predict_step({"input": x}, 0), model.super_resolve(x))  # nothing to fill


def test_datamodule_passes_prediction_chunks_through_untouched(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "scene.tif", height=40, width=40, nodata=-1.0, border=3)
    dm = GeoTiffDataModule(predict_paths=[str(tif)], patch_size=16, tile=32, overlap=8, stats_cache_dir=str(tmp_path / "c"))
    chunk = next(iter(dm.predict_dataloader()))
    assert chunk["input"].shape == (2, 3, 32, 32) and not chunk["valid"].all()
    assert dm.on_after_batch_transfer(chunk, 0) is chunk  # no model access, no filling here


def test_null_overlap_is_measured_on_the_model_by_the_writer(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "scene.tif", height=90, width=80, nodata=-1.0, border=2)
    dm = GeoTiffDataModule(predict_paths=[str(tif)], patch_size=16, tile=64, overlap=None, output_dir=str(tmp_path / "out"),
                           stats_cache_dir=str(tmp_path / "cache"))
    model = _model()
    _trainer().predict(model, datamodule=dm)
    expected = seamless_overlap(model.generator, 3, 2, 64)
    assert dm.prediction_plan().overlap == expected > 0
    api = super_resolve_file(model, tif, tmp_path / "api.tif", tile=64)  # the API measures the same overlap
    with rasterio.open(tmp_path / "out" / "scene_x2.tif") as a, rasterio.open(api) as b:
        np.testing.assert_allclose(a.read(), b.read(), rtol=1e-5, atol=1e-6)


def test_gdal_cache_is_capped_during_a_run_and_restored_after(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "scene.tif", height=300, width=500)
    dm = GeoTiffDataModule(predict_paths=[str(tif)], patch_size=16, tile=128, overlap=16, stats_cache_dir=str(tmp_path / "c"))
    plan = dm.prediction_plan()
    before = get_gdal_config("GDAL_CACHEMAX")
    with gdal_cache(plan):
        inside = int(get_gdal_config("GDAL_CACHEMAX"))
    # one input strip (128 rows x 500 px x 3 bands) plus one output block row (256 rows x 1000 px x 3), float32
    assert inside == 128 * 500 * 3 * 4 + 256 * 1000 * 3 * 4
    assert get_gdal_config("GDAL_CACHEMAX") == before
