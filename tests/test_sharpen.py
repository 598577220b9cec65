"""aerogan sharpen: the models a product needs, fitted on the product itself within a time budget; the
domain-shift guard; the projection switch and the streamed consistency of product prediction."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from aerogan.degradation import GaussianBlockMean
from aerogan.inference import load_model, super_resolve_product
from aerogan.metrics import Consistency
from aerogan.prediction.domain_shift import DomainShiftWarning
from aerogan.sharpen import SharpenRecipe, plan_tasks, sharpen
from tests.data.multires import GROUPS, scene_dn, wald_dn, write_band_rasters, write_group_rasters
from tests.test_prediction_product import guided

TINY = SharpenRecipe(num_features=8, num_blocks=1, batch_size=2, patch_size={2: 8, 6: 12})
ALL = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_group_rasters(tmp_path_factory.mktemp("product"), size60=12, crs=None)


@pytest.fixture(scope="module")
def sharpened(product: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sharp")
    report = sharpen(product, out / "sharp.tif", minutes=0.15, save_models=out / "models", recipe=TINY)
    return out, report


def test_plan_tasks_follows_the_groups(product: list[Path], tmp_path: Path) -> None:
    tasks = plan_tasks(product)
    assert [(t.target_bands, t.guide_bands, t.scale) for t in tasks] == [
        (GROUPS[20], [GROUPS[10]], 2), (GROUPS[60], [GROUPS[10], GROUPS[20]], 6)]
    assert tasks[0].label.startswith("T2") and tasks[1].label.startswith("S6")
    # a two-group input one level down (20 m guide + 40 m bands) needs one x2 model
    wald = write_band_rasters(tmp_path / "wald", wald_dn(scene_dn(12)), {20: GROUPS[10], 40: GROUPS[20]}, crs=None)
    (task,) = plan_tasks(wald)
    assert (task.target_bands, task.guide_bands, task.scale) == (GROUPS[20], [GROUPS[10]], 2)


def test_plan_tasks_refuses_single_resolution_and_unmatched_init(product: list[Path], sharpened) -> None:
    with pytest.raises(ValueError, match="two or more resolutions"):
        plan_tasks(product[:1])
    out, _ = sharpened
    with pytest.raises(ValueError, match="no model of this product"):
        plan_tasks(product[:2], init=[out / "models" / "B01_B09.ckpt"])


def test_sharpen_writes_every_band_and_saves_reloadable_models(product: list[Path], sharpened) -> None:
    out, report = sharpened
    with rasterio.open(out / "sharp.tif") as ds:
        assert list(ds.descriptions) == ALL
        assert (ds.height, ds.width) == (72, 72)
        data = ds.read()
    assert np.isfinite(data).all() and data.max() > 0
    assert [f.task.label.split()[0] for f in report.fits] == ["T2", "S6"]
    assert all(f.steps >= 1 for f in report.fits)
    # the saved checkpoints reload with their nets, normalisation and the summary of the product they fitted
    t2 = load_model(out / "models" / "B05_B06_B07_B8A_B11_B12.ckpt")
    assert t2.metadata["normalization"]["kind"] == "reflectance"
    assert set(t2.metadata["input_summary"]) == set(GROUPS[20]) | set(GROUPS[10])
    assert t2.consistency_projection
    # trained with the projection: every model's output is consistent with its input
    for m in report.product.models:
        assert m.projection and max(m.rmse.values()) < 0.05, m
        assert m.domain_shift == []  # the product is what the models were fitted on
    assert report.to_dict()["fits"][0]["steps"] == report.fits[0].steps


def test_sharpen_init_fine_tunes_the_checkpoint(product: list[Path], sharpened, tmp_path: Path) -> None:
    out, _ = sharpened
    ckpt = out / "models" / "B05_B06_B07_B8A_B11_B12.ckpt"
    start = load_model(ckpt)
    report = sharpen(product[:2], tmp_path / "t2.tif", init=[ckpt], minutes=0.05, save_models=tmp_path / "m", recipe=TINY)
    (fit,) = report.fits
    assert fit.task.init == str(ckpt)
    tuned = load_model(tmp_path / "m" / "B05_B06_B07_B8A_B11_B12.ckpt")
    assert tuned.metadata["normalization"] == start.metadata["normalization"]
    a = dict(start.generator.named_parameters())
    moved = [n for n, p in tuned.generator.named_parameters() if not torch.equal(p, a[n])]
    assert moved and all(p.shape == a[n].shape for n, p in tuned.generator.named_parameters())


def test_sharpen_cli(product: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from aerogan.cli import cli_main

    cli_main(["sharpen", *map(str, product[:2]), "--out", str(tmp_path / "p.tif"), "--minutes", "0.03",
              "--objective", "supervised", "--report", str(tmp_path / "r.json")])
    text = capsys.readouterr().out
    assert "fitted T2" in text and "of a 2 s budget" in text and (tmp_path / "p.tif").exists()
    import json

    assert json.loads((tmp_path / "r.json").read_text())["fits"][0]["target_bands"] == GROUPS[20]
    with pytest.raises(ValueError, match="minutes"):
        sharpen(product, tmp_path / "x.tif", minutes=0)


def test_sharpen_archive_two_products_then_resume(tmp_path: Path) -> None:
    """``--out-dir``: each product sharpened on itself, one COG each, the table; a second run skips both."""
    import json

    from aerogan.cli import cli_main

    for name, seed in (("p1", 1), ("p2", 2)):
        write_group_rasters(tmp_path / name, size60=12, crs=None, seed=seed)
    out = tmp_path / "out"
    args = ["sharpen", str(tmp_path / "p1"), str(tmp_path / "p2"), "--out-dir", str(out), "--minutes", "0.03",
            "--objective", "supervised", "--no-progress"]
    cli_main(args)
    table = json.loads((out / "products.json").read_text())
    assert [(r["product"], r["status"]) for r in table["products"]] == [("p1", "written"), ("p2", "written")]
    with rasterio.open(out / "p1_SR.tif") as ds:
        assert list(ds.descriptions) == ALL
    cli_main(args)
    table = json.loads((out / "products.json").read_text())
    assert [r["status"] for r in table["products"]] == ["skipped", "skipped"] and table["products"][0]["seconds"] > 0


# ------------------------------------------------------------------------ projection switch and consistency
def _t2_with_degradation(seed: int = 0):
    m = guided(GROUPS[20], [GROUPS[10]], 2, [1], seed)
    m.generator.conv_out.weight.data.normal_(0, 0.1)  # a non-trivial residual: not consistent by itself
    m.metadata["degradation"] = {"scale": 2, "sigma": 0.5}
    return m


def test_projection_switch_makes_any_checkpoint_consistent(product: list[Path], tmp_path: Path) -> None:
    model = _t2_with_degradation()
    free = super_resolve_product(model, product[:2], tmp_path / "a.tif", dtype="float32", tile=48)
    proj = super_resolve_product(model, product[:2], tmp_path / "b.tif", dtype="float32", tile=48, projection=True)
    assert not model.consistency_projection  # restored
    assert max(free.models[0].rmse.values()) > 1.0
    assert max(proj.models[0].rmse.values()) < 0.05 and proj.models[0].projection and not free.models[0].projection
    again = super_resolve_product(model, product[:2], tmp_path / "c.tif", dtype="float32", tile=48, projection=None)
    assert again.models[0].rmse == free.models[0].rmse


def test_streamed_consistency_equals_the_whole_image_metric(product: list[Path], tmp_path: Path) -> None:
    """Strip by strip with blur context (small tiles: many strips) == the metric on the whole output at once."""
    model = _t2_with_degradation(seed=3)
    report = super_resolve_product(model, product[:2], tmp_path / "a.tif", dtype="float32", tile=16)
    with rasterio.open(tmp_path / "a.tif") as ds:
        names = list(ds.descriptions)
        sr = torch.from_numpy(ds.read([names.index(b) + 1 for b in GROUPS[20]]).astype(np.float64))[None]
    with rasterio.open(product[1]) as ds:
        lr = torch.from_numpy(ds.read().astype(np.float64))[None]
    metric = Consistency(6, 2, 0.5)
    metric.update(sr, lr)
    expected = metric.compute()["rmse"].tolist()
    got = list(report.models[0].rmse.values())
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert report.models[0].sigma == 0.5
    np.testing.assert_allclose(GaussianBlockMean(2, 0.5)(sr).shape[-1], lr.shape[-1])


# ------------------------------------------------------------------------ the domain-shift guard
def _shifted(files: list[Path], folder: Path, gain: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        with rasterio.open(f) as src:
            profile, data, names = src.profile, src.read().astype(np.float64), src.descriptions
        data[[i for i, n in enumerate(names) if n == "B07"]] *= gain
        dst = folder / f.name
        with rasterio.open(dst, "w", **profile) as ds:
            ds.write(np.clip(data, 0, 65535).astype(profile["dtype"]))
            ds.descriptions = names
        out.append(dst)
    return out


def test_guard_warns_on_a_shifted_scene_and_not_on_the_training_scene(product: list[Path], sharpened, tmp_path: Path) -> None:
    out, _ = sharpened
    t2 = out / "models" / "B05_B06_B07_B8A_B11_B12.ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DomainShiftWarning)
        quiet = super_resolve_product(t2, product[:2], tmp_path / "same.tif")
    assert quiet.models[0].domain_shift == []
    with pytest.warns(DomainShiftWarning) as record:
        loud = super_resolve_product(t2, _shifted(product[:2], tmp_path / "shifted", 1.8), tmp_path / "shifted.tif")
    assert len([r for r in record if issubclass(r.category, DomainShiftWarning)]) == 1
    (message,) = loud.models[0].domain_shift
    assert message.startswith("B07") and "p99" in message
    assert "B07" in str(record[0].message)
    silent = super_resolve_product(t2, _shifted(product[:2], tmp_path / "shifted2", 1.8), tmp_path / "s2.tif", guard=False)
    assert silent.models[0].domain_shift == []
