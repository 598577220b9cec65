"""Multi-resolution scenes: band groups (GeoTIFF, SAFE, STAC), Wald degradation, the guided datamodule."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.band_catalog import open_catalog
from datamodules.multires import MultiResolutionDataModule
from datamodules.wald import WaldDegradation, degrade_group
from tests.data.multires import GROUPS, scene_dn, write_group_rasters, write_safe, write_stac_item

T2 = {"target_bands": GROUPS[20], "guide_bands": [GROUPS[10]]}
S6 = {"target_bands": GROUPS[60], "guide_bands": [GROUPS[10], GROUPS[20]]}
REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sentinel2_multires"
REAL_FILES = [REAL / f"S2A_MSIL1C_20170527_T33UUB_{r}.tif" for r in ("10m", "20m", "60m")]


def shapes(batch: dict) -> dict:
    return {k: tuple(v.shape) if torch.is_tensor(v) else [tuple(x.shape) for x in v] for k, v in batch.items()}


def module(sources, task=T2, tmp_path: Path | None = None, **kw) -> MultiResolutionDataModule:
    args = {"patch_size": 8, "batch_size": 2, "val_fraction": 0.25, "test_fraction": 0.25, "samples_per_epoch": 8}
    args.update(task)
    args.update(kw)
    if tmp_path is not None:
        args["stats_cache_dir"] = str(tmp_path / "cache")
    return MultiResolutionDataModule(sources, **args)


def first_batch(dm: MultiResolutionDataModule, split: str = "val") -> dict:
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
    return dm.on_after_batch_transfer(next(iter(loader)), 0)


# ---------------------------------------------------------------------------------------------- degradation
def test_degrade_group_matches_hand_computation() -> None:
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    x[0, 0, 3, 4] = 1.0  # an impulse away from the border
    sigma = 0.5  # DSen2 for ratio 2: 1 / ratio
    taps = np.exp(-np.arange(-2, 3) ** 2 / (2 * sigma**2))  # radius int(4 * 0.5 + 0.5) = 2
    taps /= taps.sum()
    blurred = np.zeros((8, 8))
    blurred[1:6, 2:7] = np.outer(taps, taps)
    expected = blurred.reshape(4, 2, 4, 2).mean((1, 3))
    got = degrade_group(x, 2)
    assert got.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(got[0, 0].numpy(), expected, atol=1e-12)
    # sigma 0: the plain 2 x 2 block mean
    y = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(degrade_group(y, 2, sigma=0.0), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))


def test_degrade_group_equals_dsen2_recipe_in_the_interior() -> None:
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (24, 30))
    for ratio in (2, 3, 6):
        ref = scipy_ndimage.gaussian_filter(img, 1 / ratio).reshape(24 // ratio, ratio, 30 // ratio, ratio).mean((1, 3))
        got = degrade_group(torch.from_numpy(img)[None, None], ratio)[0, 0].numpy()
        np.testing.assert_allclose(got[1:-1, 1:-1], ref[1:-1, 1:-1], atol=1e-12)  # borders: reflect conventions differ


def test_degrading_a_window_with_margin_equals_the_whole_scene() -> None:
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    whole = degrade_group(x, 2)
    m = 4  # >= the blur radius (2)
    window = x[..., 8 - m : 24 + m, 12 - m : 28 + m]
    np.testing.assert_allclose(degrade_group(window, 2, margin=m).numpy(), whole[..., 4:12, 6:14].numpy(), atol=1e-12)


def test_per_sample_blur_jitter_matches_single_calls() -> None:
    x = torch.rand(3, 2, 20, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sigmas = torch.tensor([0.3, 0.5, 0.7], dtype=torch.float64)
    batched = degrade_group(x, 2, sigmas, margin=3)
    single = torch.cat([degrade_group(x[i : i + 1], 2, float(sigmas[i]), margin=3) for i in range(3)])
    np.testing.assert_allclose(batched.numpy(), single.numpy(), atol=1e-8)
    deg = WaldDegradation(2, sigma_jitter=0.5)
    assert deg.margin() == 3  # int(4 * 0.75 + 0.5): the largest sigma that can be drawn
    torch.manual_seed(0)
    jittered = deg(x, margin=3, randomize=True)
    assert jittered.shape == (3, 2, 7, 7) and not torch.allclose(jittered, deg(x, margin=3))


def test_degrade_group_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiples of ratio=2"):
        degrade_group(torch.zeros(1, 1, 7, 8), 2)
    with pytest.raises(ValueError, match="ratio must be an integer"):
        degrade_group(torch.zeros(1, 1, 8, 8), 0)
    with pytest.raises(ValueError, match="sigma_jitter"):
        WaldDegradation(2, sigma_jitter=1.5)


# ---------------------------------------------------------------------------------------------- GeoTIFF groups
@pytest.mark.parametrize("crs", ["EPSG:32633", None])
def test_group_rasters_t2_wald_pairs(tmp_path: Path, crs: str | None) -> None:
    paths = write_group_rasters(tmp_path, crs=crs)
    dm = module(paths, T2, tmp_path)
    assert (dm.scale, dm.in_channels, dm.out_channels, dm.guide_channels, dm.guide_ratios) == (2, 6, 6, [4], [1])
    assert dm.guide_band_names() == [GROUPS[10]] and dm.target_band_names() == GROUPS[20]
    assert dm.target_in_input == list(range(6))
    batch = first_batch(dm, "train")
    assert shapes(batch) == {"input": (2, 6, 4, 4), "guides": [(2, 4, 8, 8)], "target": (2, 6, 8, 8)}
    assert all(t.dtype == torch.float32 for t in (batch["input"], batch["target"], *batch["guides"]))
    # evaluation windows are Wald pairs of the files themselves: truth = the 20 m bands, input = degraded
    dm.setup("fit")
    ds = dm.datasets["val"]
    r, c = (int(v) for v in ds.corners[0])
    m = dm.margin
    dn = scene_dn()
    item = ds[0]
    pair = dm.wald_batch(item["image"][None], [g[None] for g in item["guide_images"]])
    truth = np.stack([dn[b] for b in GROUPS[20]])[:, r + m : r + m + 8, c + m : c + m + 8]
    np.testing.assert_array_equal(pair["target"][0].numpy(), truth.astype(np.float32))
    g10 = torch.from_numpy(np.stack([dn[b] for b in GROUPS[10]]).astype(np.float64))[None]
    whole = degrade_group(g10, 2)  # the whole 10 m scene degraded to 20 m
    np.testing.assert_allclose(pair["guides"][0][0].double().numpy(), whole[0, :, r + m : r + m + 8, c + m : c + m + 8].numpy(), rtol=1e-5)
    assert dm.statistics()["normalization"] == {"kind": "reflectance", "scale": 2000.0}  # Sentinel-2 bands: fixed scale
    stats = module(paths, T2, tmp_path, normalization="zscore").statistics()
    assert set(stats) == {"input_mean", "input_std", "target_mean", "target_std", "guide_mean", "guide_std", "normalization"}
    np.testing.assert_allclose(stats["target_mean"].numpy(), [dn[b].mean() for b in GROUPS[20]], rtol=1e-5)
    np.testing.assert_allclose(stats["guide_std"][0].numpy(), [dn[b].std() for b in GROUPS[10]], rtol=1e-4)


def test_s6_shapes_and_band_order(tmp_path: Path) -> None:
    order = {10: ["B08", "B04", "B03", "B02"], 20: GROUPS[20], 60: ["B09", "B01"]}
    paths = write_group_rasters(tmp_path, band_order=order)
    dm = module(paths, {"target_bands": ["B01", "B09"], "guide_bands": [["B02", "B03", "B04", "B08"], GROUPS[20]]},
                tmp_path, patch_size=6, val_fraction=0.34, test_fraction=0.0)
    assert (dm.scale, dm.guide_ratios, dm.guide_channels) == (6, [1, 2], [4, 6])
    batch = first_batch(dm, "val")
    assert shapes(batch) == {"input": (2, 2, 1, 1), "guides": [(2, 4, 6, 6), (2, 6, 3, 3)], "target": (2, 2, 6, 6)}
    # bands come in the asked order, whatever their order in the file
    ds = dm.datasets["val"]
    item = ds[0]
    dn = scene_dn()
    r, c = (int(v) for v in ds.corners[0])
    w = dm.window
    np.testing.assert_array_equal(item["image"].numpy(), np.stack([dn["B01"], dn["B09"]])[:, r : r + w, c : c + w])
    np.testing.assert_array_equal(item["guide_images"][0][3].numpy(), dn["B08"][r * 6 : (r + w) * 6, c * 6 : (c + w) * 6])


def test_split_never_mixes_train_and_held_out_pixels(tmp_path: Path) -> None:
    dm = module(write_group_rasters(tmp_path), T2, tmp_path, sample_stride=1)
    covered = {}
    for split in ("train", "val", "test"):
        mask = np.zeros((dm.scene.height, dm.scene.width), dtype=bool)
        for r, c in dm.corners(split):
            mask[r : r + dm.window, c : c + dm.window] = True  # every pixel read, margins included
        covered[split] = mask
    assert not (covered["train"] & covered["val"]).any()
    assert not (covered["train"] & covered["test"]).any()
    assert not (covered["val"] & covered["test"]).any()
    # left-to-right blocks: held-out columns lie right of every training column
    train_cols = np.nonzero(covered["train"].any(0))[0]
    held_cols = np.nonzero((covered["val"] | covered["test"]).any(0))[0]
    assert train_cols.max() < held_cols.min()


def test_zero_filled_edges_are_never_sampled(tmp_path: Path) -> None:
    dm = module(write_group_rasters(tmp_path, zero_cols=3), T2, tmp_path, val_fraction=0.2, test_fraction=0.0, sample_stride=1)
    corners = dm.corners("train")
    assert len(corners) and corners[:, 1].min() >= 3 * 3  # 3 columns of 60 m = 9 columns of 20 m
    ds = dm._make_dataset("train")
    for i in range(len(ds)):
        assert (ds[i]["image"] != 0).any(0).all()


def test_training_draws_are_seeded_and_datasets_pickle(tmp_path: Path) -> None:
    paths = write_group_rasters(tmp_path)
    a = next(iter(module(paths, T2, tmp_path, seed=3).train_dataloader()))
    b = next(iter(module(paths, T2, tmp_path, seed=3).train_dataloader()))
    assert torch.equal(a["image"], b["image"])
    dm = module(paths, T2, tmp_path)
    ds = dm._make_dataset("val")
    _ = ds[0]  # opens the files in this process
    clone = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker receives
    assert torch.equal(clone[0]["image"], ds[0]["image"])


def test_prediction_goes_through_products_not_the_trainer(tmp_path: Path) -> None:
    """Scenes become products (``aerogan predict`` / ``aerogan product``); the Trainer's predict loop is refused."""
    files = write_group_rasters(tmp_path)
    dm = module(files, T2, tmp_path, tile=16, overlap=4)
    dm.setup("predict")  # what Trainer.predict calls first: builds nothing
    assert "predict" not in dm.datasets
    with pytest.raises(RuntimeError, match=r"no predict loader: predict multi-resolution scenes with `aerogan predict"):
        dm.predict_dataloader()
    assert dm.prediction_scenes() == [[str(f) for f in files]]
    assert dm.product_options(2) == {"nodata": None, "tile": 32, "overlap": 8, "batch_size": 2}


# ---------------------------------------------------------------------------------------------- SAFE products
@pytest.mark.parametrize(("level", "as_zip"), [("L1C", False), ("L2A", False), ("L2A", True), ("L1C", True)])
def test_safe_products_apply_the_baseline_offset(tmp_path: Path, level: str, as_zip: bool) -> None:
    product = write_safe(tmp_path, level, baseline="04.00", as_zip=as_zip)
    catalog = open_catalog([product], bands=["B05", "B02", "B01"])
    dn = scene_dn()
    for band in ("B05", "B02", "B01"):
        ref = catalog[band]
        assert ref.offset == -1000.0
        assert ref.file.resolution[0] == {"B05": 20, "B02": 10, "B01": 60}[band]
        values = ref.file.read(0, 0, ref.file.height, ref.file.width, [0])[0] + ref.offset
        np.testing.assert_array_equal(values, dn[band])  # the +1000 in the files is removed
    dm = module([product], T2, tmp_path, normalization="zscore")
    assert shapes(first_batch(dm))["guides"] == [(2, 4, 8, 8)]
    np.testing.assert_allclose(dm.statistics()["target_mean"].numpy(), [dn[b].mean() for b in GROUPS[20]], rtol=1e-5)


def test_safe_old_baseline_has_no_offset(tmp_path: Path) -> None:
    product = write_safe(tmp_path, "L1C", baseline="02.04", offsets=False)
    ref = open_catalog([product], bands=["B05"])["B05"]
    assert ref.offset == 0.0
    np.testing.assert_array_equal(ref.file.read(0, 0, 4, 4, [0])[0], scene_dn()["B05"][:4, :4])


def test_safe_errors(tmp_path: Path) -> None:
    no_offset = write_safe(tmp_path / "a", "L2A", baseline="04.00", offsets=False)
    with pytest.raises(ValueError, match=r"MTD_MSIL2A\.xml: processing baseline 04\.00.*no BOA_ADD_OFFSET"):
        module([no_offset], T2)
    l1c = write_safe(tmp_path / "b", "L1C", baseline="05.09", offsets=False, as_zip=True)
    with pytest.raises(ValueError, match="no RADIO_ADD_OFFSET"):
        module([l1c], T2)
    no_r20 = write_safe(tmp_path / "c", "L2A", drop=["R20m"])
    with pytest.raises(ValueError, match=r"band B05 is needed at its native 20 m.*no R20m file of B05"):
        module([no_r20], T2)
    no_band = write_safe(tmp_path / "d", "L1C", drop=["B8A"])
    with pytest.raises(ValueError, match=r"holds no file of band B8A"):
        module([no_band], T2)
    with pytest.raises(FileNotFoundError, match="no such Sentinel-2 product"):
        module([str(tmp_path / "missing.SAFE")], T2)


# ---------------------------------------------------------------------------------------------- STAC items
def test_stac_item_bands_by_key_and_eo_bands(tmp_path: Path) -> None:
    item = write_stac_item(tmp_path, offset=True)
    dm = module([item], S6, tmp_path, patch_size=6, val_fraction=0.34, test_fraction=0.0)
    dn = scene_dn()
    catalog = open_catalog([item], bands=["B04", "B8A", "B09"])
    assert catalog["B04"].index == 2 and catalog["B8A"].file.name.startswith(str(item) + "#nir08")
    for band in ("B04", "B8A", "B09"):
        ref = catalog[band]
        np.testing.assert_array_equal(ref.file.read(0, 0, ref.file.height, ref.file.width, [ref.index])[0] + ref.offset, dn[band])
    assert shapes(first_batch(dm))["guides"] == [(2, 4, 6, 6), (2, 6, 3, 3)]


def test_stac_asset_without_file(tmp_path: Path) -> None:
    item = write_stac_item(tmp_path, missing=["rededge2"])
    with pytest.raises(FileNotFoundError, match=r"asset 'rededge2' \(band B06\) points to .*B06\.tif, which does not exist"):
        module([item], T2)


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_grids_and_band_lists(tmp_path: Path) -> None:
    ok = write_group_rasters(tmp_path / "ok")
    shifted = write_group_rasters(tmp_path / "shift", origins=[(300010.0, 5000040.0), (300000.0, 5000040.0), (300000.0, 5000040.0)])
    with pytest.raises(ValueError, match=r"S2_10m\.tif.*offset by \(10, 0\).*not a whole number of its 20 m pixels; the grids are not aligned"):
        module(shifted, T2)
    odd = write_group_rasters(tmp_path / "odd", resolutions=(10.0, 15.0, 60.0))
    with pytest.raises(ValueError, match=r"S2_20m\.tif \(bands .*15 m\) is 1\.5 times the pixel of .*S2_10m\.tif.*must be integers"):
        module(odd, T2)
    crs = write_group_rasters(tmp_path / "crs", crs=["EPSG:32633", "EPSG:32634", "EPSG:32633"])
    with pytest.raises(ValueError, match=r"S2_10m\.tif.*CRS EPSG:32633 differs from EPSG:32634 of .*S2_20m\.tif"):
        module(crs, T2)
    half = write_group_rasters(tmp_path / "half", crs=["EPSG:32633", None, None])
    with pytest.raises(ValueError, match=r"CRS EPSG:32633 differs from no CRS"):
        module(half, T2)
    with pytest.raises(ValueError, match=r"data.guide_bands\[0\]: band B05 is asked for twice \(also in data.target_bands\)"):
        module(ok, {"target_bands": GROUPS[20], "guide_bands": [["B02", "B05"]]})
    with pytest.raises(ValueError, match=r"asks for band\(s\) \['B10'\], which data.sources does not hold; available: \['B01'"):
        module(ok, {"target_bands": ["B10"], "guide_bands": [GROUPS[10]]})
    with pytest.raises(ValueError, match=r"S2_60m\.tif: data.guide_bands\[0\]=\['B01', 'B09'\] is at 60 m, coarser than the target bands"):
        module(ok, {"target_bands": GROUPS[20], "guide_bands": [GROUPS[60]]})
    with pytest.raises(ValueError, match=r"finest first"):
        module(ok, {"target_bands": GROUPS[60], "guide_bands": [GROUPS[20], GROUPS[10]]})
    with pytest.raises(ValueError, match=r"lie on different grids"):
        module(ok, {"target_bands": ["B05", "B02"], "guide_bands": [["B03"]]})
    with pytest.raises(ValueError, match=r"S2_20m\.tif: the common extent of the band groups is 72x72 px at the coarsest resolution \(20 m\), smaller than one patch"):
        module(ok, T2, patch_size=72)
    with pytest.raises(ValueError, match=r"data.patch_size=9 must be a multiple of the scale 2"):
        module(ok, T2, patch_size=9)


# ---------------------------------------------------------------------------------------------- the real crop
@pytest.mark.skipif(not all(p.exists() for p in REAL_FILES), reason="real Sentinel-2 crop (../shared/data) absent")
@pytest.mark.parametrize(("task", "patch", "want"), [
    (T2, 32, {"input": (2, 6, 16, 16), "guides": [(2, 4, 32, 32)], "target": (2, 6, 32, 32)}),
    (S6, 12, {"input": (2, 2, 2, 2), "guides": [(2, 4, 12, 12), (2, 6, 6, 6)], "target": (2, 2, 12, 12)}),
])
def test_real_crop_wald_pairs(tmp_path: Path, task: dict, patch: int, want: dict) -> None:
    dm = module([str(p) for p in REAL_FILES], task, tmp_path, patch_size=patch, val_fraction=0.2, test_fraction=0.2)
    assert dm.scene.resolution == (20.0 if task is T2 else 60.0)
    for split in ("train", "val", "test"):
        batch = first_batch(dm, split)
        assert shapes(batch) == want
        assert all(torch.isfinite(t).all() for t in (batch["input"], batch["target"], *batch["guides"]))
    stats = dm.statistics()
    assert all(float(s.min()) > 0 for s in (stats["input_std"], *stats["guide_std"]))
    assert dm.data_range > 1000  # uint16 reflectance x 10000
