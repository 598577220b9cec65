"""Whole-product multi-resolution prediction: grid, band order, copies, dtype, seamless tiles, nodata, errors, COG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import aerogan.inference
import aerogan.prediction
from aerogan import SuperResolution
from aerogan.metrics import Consistency
from aerogan.nets import DSen2
from aerogan.prediction.product import main, super_resolve_product
from tests.data.geotiffs import block_mean
from tests.data.multires import (
    CRS,
    GROUPS,
    ORIGIN,
    scene_dn,
    wald_dn,
    write_band_rasters,
    write_group_rasters,
    write_safe,
    write_stac_item,
)

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "data" / "sentinel2_multires"
REAL_FILES = [REAL / f"S2A_MSIL1C_20170527_T33UUB_{r}.tif" for r in ("10m", "20m", "60m")]
T2_ORDER = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
ALL_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
MEAN, STD = 2000.0, 1000.0  # integer mean: nodata filled with it equals valid pixels holding it


def _metadata(targets: list[str], guides: list[list[str]], scale: int, ratios: list[int]) -> dict:
    return {"scale": scale, "target_band_names": list(targets), "guide_band_names": [list(g) for g in guides],
            "guide_ratios": list(ratios), "input_band_names": list(targets), "target_in_input": list(range(len(targets))),
            "data_range": 10000.0}


def _set_stats(m: SuperResolution, targets: list[str], guides: list[list[str]]) -> None:
    n = len(targets)
    m.input_norm.set(torch.full((n,), MEAN), torch.full((n,), STD))
    m.target_norm.set(torch.full((n,), MEAN), torch.full((n,), STD))
    for norm, g in zip(m.guide_norms, guides, strict=True):
        norm.set(torch.full((len(g),), MEAN), torch.full((len(g),), STD))


def guided(targets: list[str], guides: list[list[str]], scale: int, ratios: list[int], seed: int = 0) -> SuperResolution:
    """A tiny untrained DSen2 with hand-set statistics and multi-resolution metadata."""
    torch.manual_seed(seed)
    gen = DSen2(in_channels=len(targets), out_channels=len(targets), scale=scale, num_features=8, num_blocks=1,
                guide_channels=[len(g) for g in guides], guide_ratios=ratios, start_at_skip=False)
    m = SuperResolution(generator=gen, critic=None, objective="supervised", num_panels=0)
    _set_stats(m, targets, guides)
    m.metadata = _metadata(targets, guides, scale, ratios)
    return m.eval()


def t2(seed: int = 0) -> SuperResolution:
    return guided(GROUPS[20], [GROUPS[10]], 2, [1], seed)


def s6(seed: int = 1) -> SuperResolution:
    return guided(GROUPS[60], [GROUPS[10], GROUPS[20]], 6, [1, 2], seed)


def read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), {"profile": ds.profile, "names": list(ds.descriptions), "transform": ds.transform, "crs": ds.crs,
                           "overviews": ds.overviews(1), "layout": ds.tags(ns="IMAGE_STRUCTURE"), "blocks": ds.block_shapes[0]}


def bands_of(path: Path) -> dict[str, np.ndarray]:
    with rasterio.open(path) as ds:
        return {d: ds.read(i + 1) for i, d in enumerate(ds.descriptions)}


# ---------------------------------------------------------------------------------------------- output
@pytest.mark.parametrize("crs", [CRS, None])
def test_t2_product_grid_band_order_copies_and_cog_layout(tmp_path: Path, crs: str | None) -> None:
    paths = write_group_rasters(tmp_path / "in", crs=crs)
    out = tmp_path / "out" / "product.tif"
    report = super_resolve_product(t2(), paths, out)
    assert sorted(os.listdir(out.parent)) == ["product.tif"]  # no temporary left
    data, meta = read(out)
    with rasterio.open(paths[0]) as fine:
        assert data.shape == (10, fine.height, fine.width) == (10, 144, 144)
        assert meta["transform"] == fine.transform
        assert meta["crs"] == fine.crs and (meta["crs"] is None) == (crs is None)
    assert meta["names"] == T2_ORDER == report.band_names
    assert meta["profile"]["dtype"] == "uint16" and meta["profile"]["nodata"] == 0  # integer in, integer out
    assert meta["layout"]["LAYOUT"] == "COG" and meta["layout"]["COMPRESSION"] == "DEFLATE"
    assert meta["blocks"] == (256, 256) and meta["overviews"] == [2, 4, 8]
    fine_in = bands_of(paths[0])
    for b in GROUPS[10]:  # the finest bands are copied bit-exactly
        np.testing.assert_array_equal(data[T2_ORDER.index(b)], fine_in[b])
    assert report.out_path == out and report.seconds > 0
    (m,) = report.models
    assert m.target_bands == GROUPS[20] and m.scale == 2 and list(m.rmse) == GROUPS[20]
    assert all(np.isfinite(v) and v >= 0 for v in m.rmse.values()) and np.isfinite(m.sam)


def test_exports() -> None:
    assert aerogan.inference.super_resolve_product is super_resolve_product
    assert aerogan.prediction.super_resolve_product is super_resolve_product
    assert aerogan.prediction.ProductReport is aerogan.inference.ProductReport


def test_tiled_equals_whole_scene_and_the_network_float32_and_rounding(tmp_path: Path) -> None:
    paths = write_group_rasters(tmp_path / "in")
    model = t2()
    tiled = super_resolve_product(model, paths, tmp_path / "tiled.tif", dtype="float32", tile=64)
    whole = super_resolve_product(model, paths, tmp_path / "whole.tif", dtype="float32", tile=144)
    assert tiled.models[0].tile == 32 and tiled.models[0].overlap == 16  # 4 x 4 tiles, measured seamless overlap
    assert whole.models[0].tile == 72  # one tile: the whole scene
    a, meta = read(tmp_path / "tiled.tif")
    b, _ = read(tmp_path / "whole.tif")
    assert meta["profile"]["dtype"] == "float32"
    sr = [T2_ORDER.index(x) for x in GROUPS[20]]
    assert np.abs(a[sr] - b[sr]).max() <= 1e-4 * np.abs(b[sr]).max()
    # the whole-scene output is the network's on the whole scene
    fine, coarse = bands_of(paths[0]), bands_of(paths[1])
    x = torch.from_numpy(np.stack([coarse[n] for n in GROUPS[20]]).astype(np.float32))[None]
    g = torch.from_numpy(np.stack([fine[n] for n in GROUPS[10]]).astype(np.float32))[None]
    with torch.no_grad():
        ref = model.super_resolve(x, (g,))[0].numpy()
    assert np.abs(b[sr] - ref).max() <= 1e-4 * np.abs(ref).max()
    # the report's consistency: the SR bands block-averaged against the input bands
    back = block_mean(b[sr].astype(np.float64), 2)
    lr = np.stack([coarse[n] for n in GROUPS[20]]).astype(np.float64)
    rmse = np.sqrt(((back - lr) ** 2).mean((1, 2)))
    np.testing.assert_allclose([whole.models[0].rmse[n] for n in GROUPS[20]], rmse, rtol=1e-4)
    # default dtype: the float values rounded and clipped to uint16
    super_resolve_product(model, paths, tmp_path / "int.tif", tile=144)
    c, _ = read(tmp_path / "int.tif")
    expected = np.clip(np.rint(b), 0, 65535)
    expected[expected == 0] = 1  # valid pixels never take the nodata value
    np.testing.assert_array_equal(c, expected.astype(np.uint16))


class NearestGuided(nn.Module):
    """A 'generator' whose output is its input nearest-upsampled: exactly consistent with it."""

    def __init__(self, channels: int, guide_channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.guide_channels, self.guide_ratios = (guide_channels,), (1,)
        self.zero = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, guides: tuple[Tensor, ...] = ()) -> Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + self.zero


def test_consistency_is_zero_for_an_exactly_consistent_prediction(tmp_path: Path) -> None:
    lr = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.1
    metric = Consistency(3, 2)
    metric.update(F.interpolate(lr, scale_factor=2, mode="nearest"), lr)
    result = metric.compute()
    assert result["rmse"].abs().max() < 1e-12 and float(result["sam"]) < 1e-4
    # the same through the product's report, for a nearest-upsampling model
    model = SuperResolution(generator=NearestGuided(6, 4, 2), critic=None, objective="supervised", num_panels=0)
    _set_stats(model, GROUPS[20], [GROUPS[10]])
    model.metadata = _metadata(GROUPS[20], [GROUPS[10]], 2, [1])
    report = super_resolve_product(model, write_group_rasters(tmp_path / "in"), tmp_path / "near.tif", dtype="float32")
    assert max(report.models[0].rmse.values()) < 1e-2 and report.models[0].sam < 1e-3  # float32 round trip only


def test_t2_and_s6_together_write_every_band(tmp_path: Path) -> None:
    paths = write_group_rasters(tmp_path / "in")
    kw = {"dtype": "float32", "tile": 96, "overlap": 48}  # several strips per model (T2 48 px tiles, S6 16 px)
    report = super_resolve_product([t2(), s6()], paths, tmp_path / "both.tif", **kw)
    both, meta = read(tmp_path / "both.tif")
    assert meta["names"] == ALL_ORDER == report.band_names and both.shape == (12, 144, 144)
    assert [m.scale for m in report.models] == [2, 6] and [m.tile for m in report.models] == [48, 16]
    super_resolve_product(t2(), paths, tmp_path / "t2.tif", **kw)
    super_resolve_product(s6(), paths, tmp_path / "s6.tif", **kw)
    alone = {**bands_of(tmp_path / "t2.tif"), **bands_of(tmp_path / "s6.tif")}
    for b in GROUPS[20] + GROUPS[60]:  # each model's bands as when it runs alone (same tiles)
        np.testing.assert_array_equal(both[ALL_ORDER.index(b)], alone[b])
    fine = bands_of(paths[0])
    for b in GROUPS[10]:
        np.testing.assert_array_equal(both[ALL_ORDER.index(b)], fine[b])
    with pytest.raises(ValueError, match=r"needs band\(s\) \['B05'.*guide group 1"):  # S6's 20 m guide is missing
        super_resolve_product(s6(), paths[::2], tmp_path / "never.tif", **kw)
    assert not (tmp_path / "never.tif").exists()


def test_nodata_is_carried_and_filled_before_the_network(tmp_path: Path) -> None:
    dn = scene_dn(24, zero_cols=2)  # product edge: the first 12 columns at 10 m are 0 in every band
    for b in GROUPS[20]:
        dn[b][30:34, 40:44] = 0  # a 20 m hole: 10 m rows 60..68, cols 80..88
    for b in GROUPS[10]:
        dn[b][100:103, 21:23] = 0  # a 10 m hole inside 20 m pixels (50..52, 10..12): 10 m rows 100..104, cols 20..24
    groups = {10: GROUPS[10], 20: GROUPS[20]}
    out = tmp_path / "holes.tif"
    super_resolve_product(t2(), write_band_rasters(tmp_path / "holes", dn, groups), out, dtype="float32")
    data, meta = read(out)
    expected = np.zeros((144, 144), dtype=bool)
    expected[:, :12] = expected[60:68, 80:88] = expected[100:104, 20:24] = True
    assert meta["profile"]["nodata"] == 0
    np.testing.assert_array_equal((data == 0).all(0), expected)
    assert (data[:, ~expected] != 0).all() and np.isfinite(data).all()
    # the same scene with the band means where the nodata was: identical valid pixels (nodata was filled first)
    filled = {b: np.where(d == 0, np.uint16(MEAN), d) for b, d in dn.items()}
    ref_out = tmp_path / "filled.tif"
    super_resolve_product(t2(), write_band_rasters(tmp_path / "filled", filled, groups), ref_out, dtype="float32")
    ref, _ = read(ref_out)
    assert np.abs(data[:, ~expected] - ref[:, ~expected]).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("kind", ["safe_l1c", "safe_l2a_zip", "stac"])
def test_safe_and_stac_products_in_offset_corrected_units(tmp_path: Path, kind: str) -> None:
    """Baseline 04.00 digital numbers carry +1000 and the metadata -1000: the copies hold the corrected values."""
    source = {"safe_l1c": lambda: write_safe(tmp_path, "L1C"), "safe_l2a_zip": lambda: write_safe(tmp_path, "L2A", as_zip=True),
              "stac": lambda: write_stac_item(tmp_path, offset=True)}[kind]()
    report = super_resolve_product([t2(), s6()], source, tmp_path / "product.tif")
    assert report.band_names == ALL_ORDER
    out, dn = bands_of(tmp_path / "product.tif"), scene_dn(24)
    for b in GROUPS[10]:
        np.testing.assert_array_equal(out[b], dn[b])
    assert out["B01"].shape == (144, 144)


# ---------------------------------------------------------------------------------------------- resolutions
def test_reduced_resolution_runs_one_level_down(tmp_path: Path) -> None:
    """Wald: a x2 model on the 20 m guide and 40 m bands gives 20 m bands, comparable with the real ones."""
    dn = scene_dn(24)
    paths = write_band_rasters(tmp_path / "wald", wald_dn(dn, 2), {20: GROUPS[10], 40: GROUPS[20]})
    report = super_resolve_product(t2(), paths, tmp_path / "wald20.tif", dtype="float32")
    data, meta = read(tmp_path / "wald20.tif")
    assert data.shape == (10, 72, 72) and meta["transform"].a == 20.0 and meta["names"] == T2_ORDER
    assert data[T2_ORDER.index("B05")].shape == dn["B05"].shape  # same grid as the truth at 20 m
    assert report.models[0].scale == 2


def test_ratio_other_than_the_models_scale_is_refused(tmp_path: Path) -> None:
    dn = scene_dn(24)
    coarse = wald_dn({b: dn[b] for b in GROUPS[20]}, 2)  # the 20 m bands at 40 m, beside the 10 m guide
    paths = write_band_rasters(tmp_path / "x4", {**dn, **coarse}, {10: GROUPS[10], 40: GROUPS[20]})
    with pytest.raises(ValueError, match=r"target bands \['B05'.*at 40 m.*finest guide \['B02'.*at 10 m.*ratio of 4.*ratio of 2"):
        super_resolve_product(t2(), paths, tmp_path / "x4.tif")
    assert not (tmp_path / "x4.tif").exists()


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    paths = write_group_rasters(tmp_path / "in")
    out = tmp_path / "bad.tif"
    with pytest.raises(ValueError, match=rf"needs band\(s\) \['B05', 'B06', 'B07', 'B8A', 'B11', 'B12'\].*{paths[0]}"):
        super_resolve_product(t2(), [paths[0], paths[2]], out)
    shifted = write_group_rasters(tmp_path / "shifted", origins=[ORIGIN, (ORIGIN[0] + 10.0, ORIGIN[1]), ORIGIN])
    with pytest.raises(ValueError, match="not aligned"):
        super_resolve_product(t2(), shifted, out)
    other_crs = write_group_rasters(tmp_path / "crs", crs=[CRS, "EPSG:32632", CRS])
    with pytest.raises(ValueError, match="CRS"):
        super_resolve_product(t2(), other_crs, out)
    with pytest.raises(ValueError, match="B05 would be written twice"):
        super_resolve_product([t2(), t2(1)], paths, out)
    plain = SuperResolution(generator=DSen2(6, 6, 2, num_features=8, num_blocks=1), critic=None, objective="supervised")
    _set_stats(plain, GROUPS[20], [])
    plain.metadata = {"scale": 2, "target_band_names": GROUPS[20]}
    with pytest.raises(ValueError, match="not a guided model"):
        super_resolve_product(plain, paths, out)
    with pytest.raises(ValueError, match="dtype='input' is not a NumPy dtype"):
        super_resolve_product(t2(), paths, out, dtype="input")
    with pytest.raises(ValueError, match="overlap=80 output px.*more than half the tile"):
        super_resolve_product(t2(), paths, out, tile=128, overlap=80)
    coarse_out = guided(GROUPS[60], [GROUPS[20]], 3, [1])  # 20 m guide: its output grid is not the finest (10 m)
    with pytest.raises(ValueError, match="not the finest grid"):
        super_resolve_product(coarse_out, paths, out)
    assert not out.exists()


def test_failure_mid_run_leaves_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_group_rasters(tmp_path / "in")
    out = tmp_path / "out" / "product.tif"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    model = t2()
    calls = {"n": 0}
    real = model.super_resolve

    def flaky(x: Tensor, guides: tuple[Tensor, ...] = ()) -> Tensor:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("device lost")
        return real(x, guides)

    monkeypatch.setattr(model, "super_resolve", flaky)
    with pytest.raises(RuntimeError, match="device lost"):
        super_resolve_product(model, paths, out, tile=64, batch_size=2)
    assert out.read_bytes() == b"previous" and sorted(os.listdir(out.parent)) == ["product.tif"]


# ---------------------------------------------------------------------------------------------- checkpoints, CLI
def _checkpoint(model: SuperResolution, path: Path) -> Path:
    """A checkpoint as ``aerogan fit`` writes it (LightningCLI hyperparameters with the generator's class path)."""
    import lightning as L
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters_context

    gen = model.generator
    init = {"in_channels": gen.in_channels, "out_channels": gen.out_channels, "scale": gen.scale, "num_features": 8,
            "num_blocks": 1, "guide_channels": list(gen.guide_channels), "guide_ratios": list(gen.guide_ratios)}
    hp = {"_class_path": "aerogan.SuperResolution", "generator": {"class_path": "aerogan.nets.DSen2", "init_args": init},
          "critic": None, "objective": "supervised", "num_panels": 0}
    with _given_hyperparameters_context(hparams=hp, instantiator="lightning.pytorch.cli.instantiate_module"):
        built = SuperResolution(generator=DSen2(**init), critic=None, objective="supervised", num_panels=0)
    built.load_state_dict(model.state_dict())
    built.metadata = dict(model.metadata)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.strategy.connect(built)
    trainer.save_checkpoint(path)
    return path


def test_cli_with_guided_checkpoints(tmp_path: Path) -> None:
    paths = write_group_rasters(tmp_path / "in")
    ck_t2, ck_s6 = _checkpoint(t2(), tmp_path / "t2.ckpt"), _checkpoint(s6(), tmp_path / "s6.ckpt")
    report = main(["--ckpt", str(ck_t2), "--ckpt", str(ck_s6), "--out", str(tmp_path / "cli.tif"), "--dtype", "float32",
                   *map(str, paths)])
    assert report.band_names == ALL_ORDER
    super_resolve_product([t2(), s6()], paths, tmp_path / "api.tif", dtype="float32")
    np.testing.assert_array_equal(read(tmp_path / "cli.tif")[0], read(tmp_path / "api.tif")[0])
    # as a module: runs once (no runpy warning), writes the same file
    proc = subprocess.run(
        [sys.executable, "-m", "aerogan.prediction.product", "--ckpt", str(ck_t2), "--out", str(tmp_path / "m.tif"),
         *map(str, paths)], cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr and "10 bands" in proc.stdout
    assert read(tmp_path / "m.tif")[1]["names"] == T2_ORDER


# ---------------------------------------------------------------------------------------------- real crop
@pytest.mark.skipif(not all(p.is_file() for p in REAL_FILES), reason="shared Sentinel-2 crop not available")
def test_real_crop_gives_every_t2_band_at_10m(tmp_path: Path) -> None:
    out = tmp_path / "real_10m.tif"
    report = super_resolve_product(t2(), REAL_FILES, out)  # the 60 m bands are not T2's: left out
    data, meta = read(out)
    assert data.shape == (10, 600, 600) and meta["names"] == T2_ORDER == report.band_names
    with rasterio.open(REAL_FILES[0]) as fine:
        assert meta["transform"] == fine.transform and meta["crs"] == fine.crs
        for i, name in enumerate(fine.descriptions):
            np.testing.assert_array_equal(data[T2_ORDER.index(name)], fine.read(i + 1))


# ---------------------------------------------------------------------------------------------- block columns
def test_block_columns_equal_one_column_with_nodata_and_consistency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scene wider than the block is made in block columns (each with a halo): the same product as one column."""
    import aerogan.prediction.product as product

    paths = write_group_rasters(tmp_path / "in", size60=160, zero_cols=3)  # 960 x 960 at 10 m, nodata on the left
    with rasterio.open(paths[1], "r+") as ds:  # a nodata hole in the 20 m bands, across the block-column edge at 480
        bands = ds.read()
        bands[:, 250:265, 230:250] = 0
        ds.write(bands)
    seen: list[tuple[int, int]] = []
    real = product._run_block_column

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003
        seen.append(args[5])
        return real(*args, **kwargs)

    monkeypatch.setattr(product, "_run_block_column", spy)
    kw = {"dtype": "float32", "tile": 192, "batch_size": 3}
    blocks = super_resolve_product([t2(), s6()], paths, tmp_path / "blocks.tif", block_width=500, **kw)
    assert seen == [(0, 480), (480, 960)]  # two columns of whole 240-px staged tiles (a multiple of 16, 2 and 6)
    seen.clear()
    one = super_resolve_product([t2(), s6()], paths, tmp_path / "one.tif", block_width=4096, **kw)
    assert seen == [(0, 960)]
    a, meta = read(tmp_path / "blocks.tif")
    b, _ = read(tmp_path / "one.tif")
    assert a.shape == (12, 960, 960) and meta["names"] == ALL_ORDER
    nodata = b == meta["profile"]["nodata"]
    np.testing.assert_array_equal(a == meta["profile"]["nodata"], nodata)
    assert nodata[:, :, :18].all() and nodata[:, 500:530, 460:500].all() and not nodata[:, :, 30:].all()
    assert np.abs(a[~nodata] - b[~nodata]).max() <= 1e-4 * np.abs(b[~nodata]).max()
    for x, y in zip(blocks.models, one.models, strict=True):  # the consistency over the same pixels
        np.testing.assert_allclose(list(x.rmse.values()), list(y.rmse.values()), rtol=1e-5)
        assert x.sam == pytest.approx(y.sam, rel=1e-5)


def test_mixed_precision_and_channels_last_match_float32(tmp_path: Path) -> None:
    paths = write_group_rasters(tmp_path / "in")
    model = t2()
    kw = {"dtype": "float32", "tile": 96}
    ref = super_resolve_product(model, paths, tmp_path / "f32.tif", **kw)
    super_resolve_product(model, paths, tmp_path / "cl.tif", channels_last=True, **kw)
    assert model.generator.conv_head.weight.is_contiguous()  # the model is handed back as it came
    bf16 = super_resolve_product(model, paths, tmp_path / "bf16.tif", precision="bf16-mixed", **kw)
    a, b, c = (read(tmp_path / f)[0] for f in ("f32.tif", "cl.tif", "bf16.tif"))
    sr = [T2_ORDER.index(x) for x in GROUPS[20]]
    scale = np.abs(a[sr]).max()
    assert np.abs(b[sr] - a[sr]).max() <= 1e-4 * scale
    err = np.abs(c[sr] - a[sr]).max()
    assert 0 < err <= 2e-2 * scale  # bfloat16 convolutions: close, not equal
    assert bf16.models[0].rmse.keys() == ref.models[0].rmse.keys()
    with pytest.raises(ValueError, match="precision='fp8'"):
        super_resolve_product(model, paths, tmp_path / "x.tif", precision="fp8")
