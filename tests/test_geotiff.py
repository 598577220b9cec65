"""GeoTIFF datamodule: splits, nodata, band names, statistics cache, paired sensors, bad input."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import datamodules.sources as sources_mod
from datamodules import GeoTiffDataModule
from datamodules.windows import split_regions
from tests.data.geotiffs import block_mean, smooth_scene, write_geotiff

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LANDSAT = SHARED_DATA / "landsat7_rgb_byte.tif"


def _dm(paths, tmp_path: Path, **kw) -> GeoTiffDataModule:
    kw.setdefault("patch_size", 16)
    kw.setdefault("val_fraction", 0.2)
    kw.setdefault("test_fraction", 0.2)
    kw.setdefault("stats_cache_dir", str(tmp_path / "cache"))
    kw.setdefault("batch_size", 4)
    kw.setdefault("samples_per_epoch", 8)
    return GeoTiffDataModule(paths=[str(p) for p in (paths if isinstance(paths, list) else [paths])], **kw)


# ------------------------------------------------------------------------------------- splits
@pytest.mark.parametrize("axis", ["rows", "cols"])
def test_patches_never_cross_split_blocks(tmp_path: Path, axis: str) -> None:
    tif = write_geotiff(tmp_path / "a.tif", height=176, width=160, nodata=-1.0, border=2, holes=[(40, 50, 48, 60)])
    dm = _dm(tif, tmp_path, split_axis=axis, split_order=["train", "val", "train", "test"], val_fraction=0.15, test_fraction=0.15)
    p, gap = dm.patch_size, dm.split_gap
    rects = {}
    for split in ("train", "val", "test"):
        pos = dm.positions(split)
        assert len(pos), split
        boxes = dm.split_boxes[0][split]
        for _, r, c in pos:
            assert any(b.row0 <= r and r + p <= b.row1 and b.col0 <= c and c + p <= b.col1 for b in boxes), (split, r, c)
        rects[split] = pos[:, 1:]
    # patches of different splits are at least one gap apart along the split axis
    k = 0 if axis == "rows" else 1
    for a in rects:
        for b in rects:
            if a < b:
                d = np.abs(rects[a][:, None, k] - rects[b][None, :, k])
                assert (d >= p + gap).all(), (a, b, d.min())
    # evaluation patches do not overlap each other
    val = dm.positions("val")[:, 1:]
    for i in range(len(val)):
        for j in range(i + 1, len(val)):
            assert abs(val[i, 0] - val[j, 0]) >= p or abs(val[i, 1] - val[j, 1]) >= p


def test_split_regions_errors() -> None:
    boxes = split_regions(100, 40, 10, 0.2, 0.2, 10, "auto")
    assert [b.row0 for b in boxes["train"]] == [0] and boxes["val"][0].row0 == 50 and boxes["test"][0].row1 == 100
    with pytest.raises(ValueError, match="fewer than data.patch_size"):
        split_regions(100, 40, 30, 0.1, 0.2, 10, "rows", name="x.tif")


# ------------------------------------------------------------------------------------- nodata
def test_nodata_and_nan_never_sampled(tmp_path: Path) -> None:
    nan_px = [(20, 20), (21, 60), (70, 33)]
    tif = write_geotiff(tmp_path / "a.tif", height=128, width=96, nodata=-9999.0, border=3,
                        holes=[(30, 30, 40, 45)], nan_pixels=nan_px)
    dm = _dm(tif, tmp_path, sample_stride=2, val_fraction=0.2, test_fraction=0.2)
    with pytest.warns(UserWarning, match=r"3 pixel\(s\) hold NaN"):
        pos = dm.positions("train")
    src = dm.sources[0]
    for split in ("train", "val", "test"):
        for _, r, c in (pos if split == "train" else dm.positions(split)):
            block = src.read(int(r), int(c), 16, 16)
            assert np.isfinite(block).all() and not (block == -9999.0).all(0).any()
    # the training loader yields only valid patches; datasets pickle without file handles or pixels
    dm.setup("fit")
    ds = pickle.loads(pickle.dumps(dm.datasets["train"]))
    assert ds.sources[0]._ds is None and ds.sources[0]._cache is None and torch.isfinite(ds[0]["image"]).all()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 16, 16) and torch.isfinite(batch["image"]).all()
    pair = dm.on_after_batch_transfer(batch, 0)
    assert pair["input"].shape == (4, 3, 8, 8) and pair["target"].shape == (4, 3, 16, 16)


def test_entirely_nodata_scene_is_an_error(tmp_path: Path) -> None:
    data = np.full((2, 40, 40), 7.0, dtype=np.float32)
    tif = write_geotiff(tmp_path / "empty.tif", data, nodata=7.0)
    dm = _dm(tif, tmp_path, patch_size=8, val_fraction=0.2, test_fraction=0.2, split_gap=0)
    with pytest.raises(ValueError, match=r"empty\.tif: the scene holds no valid pixel"):
        dm.positions("train")


# ------------------------------------------------------------------------------------- bands
def test_bands_by_description_and_index(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "a.tif", count=4, descriptions=["green", "red", "nir", "swir"])
    dm = _dm(tif, tmp_path, scale=1, input_bands=["green", "Red", 2], target_bands=["swir"])
    assert dm.input_bands == [0, 1, 2] and dm.target_bands == [3]
    assert dm.in_channels == 3 and dm.out_channels == 1 and dm.target_in_input is None
    assert dm.input_band_names() == ["green", "red", "nir"] and dm.target_band_names() == ["swir"]
    with pytest.raises(ValueError, match=r"a\.tif: data\.input_bands names band 'blue'.*available band descriptions: \['green'"):
        _dm(tif, tmp_path, input_bands=["blue"])


def test_band_index_beyond_count(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "three.tif", count=3)
    with pytest.raises(ValueError, match=r"three\.tif: data\.target_bands=\[0, 5\] asks for band\(s\) \[5\], but the file has 3"):
        _dm(tif, tmp_path, target_bands=[0, 5])


# ------------------------------------------------------------------------------------- bad files
def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.tif: no such file"):
        _dm(tmp_path / "nope.tif", tmp_path)
    bad = tmp_path / "notes.tif"
    bad.write_text("this is not a GeoTIFF\n")
    with pytest.raises(ValueError, match=r"notes\.tif: not a readable raster"):
        _dm(bad, tmp_path)


def test_patch_larger_than_scene(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "small.tif", height=20, width=30)
    with pytest.raises(ValueError, match=r"small\.tif: data\.patch_size=32 is larger than the scene \(20x30 px\)"):
        _dm(tif, tmp_path, patch_size=32)


# ------------------------------------------------------------------------------------- statistics
def test_statistics_cached_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tif = write_geotiff(tmp_path / "a.tif", height=64, width=64, nodata=-1.0, border=2)
    calls = []
    real = sources_mod.compute_band_sums
    monkeypatch.setattr(sources_mod, "compute_band_sums", lambda src: calls.append(src.name) or real(src))
    stats = _dm(tif, tmp_path, patch_size=8).statistics()
    cache = tmp_path / "a.tif.aerogan-stats.json"
    assert calls == [str(tif)] and cache.is_file()
    data = smooth_scene(3, 64, 64)[:, 2:-2, 2:-2].reshape(3, -1)
    assert torch.allclose(stats["input_mean"], torch.tensor(data.mean(1)), atol=1e-5)
    assert torch.allclose(stats["input_std"], torch.tensor(data.std(1)), atol=1e-4)

    def boom(src):
        raise AssertionError("statistics recomputed although cached")

    monkeypatch.setattr(sources_mod, "compute_band_sums", boom)
    again = _dm(tif, tmp_path, patch_size=8).statistics()  # a second datamodule reads the cache
    assert all(torch.equal(stats[k], again[k]) for k in stats)

    # a changed file invalidates its entry
    monkeypatch.setattr(sources_mod, "compute_band_sums", lambda src: calls.append(src.name) or real(src))
    write_geotiff(tif, height=64, width=64, nodata=-1.0, border=2, seed=5)
    os.utime(tif, ns=(1, 1))
    _dm(tif, tmp_path, patch_size=8).statistics()
    assert len(calls) == 2 and json.loads(cache.read_text())["mtime_ns"] == 1


def test_statistics_cache_falls_back_when_read_only(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    tif = write_geotiff(ro / "a.tif", height=48, width=48)
    ro.chmod(0o555)
    try:
        _dm(tif, tmp_path, patch_size=8, split_gap=0).statistics()
        assert sorted(p.name for p in ro.iterdir()) == ["a.tif"]
        assert len(list((tmp_path / "cache").glob("a.tif.*.aerogan-stats.json"))) == 1
    finally:
        ro.chmod(0o755)


def test_explicit_statistics(tmp_path: Path) -> None:
    tif = write_geotiff(tmp_path / "a.tif", count=2)
    dm = _dm(tif, tmp_path, band_statistics={"mean": [1.0, 2.0], "std": [3.0, 4.0]})
    assert dm.statistics()["target_std"].tolist() == [3.0, 4.0]
    assert not (tmp_path / "a.tif.aerogan-stats.json").exists()


# ------------------------------------------------------------------------------------- paired sensors
def test_paired_windows_match_by_bounds(tmp_path: Path) -> None:
    hr = smooth_scene(3, 64, 64, seed=3)
    hr_tif = write_geotiff(tmp_path / "hr.tif", hr, res=10.0, origin=(500000.0, 5000000.0), descriptions=["g", "r", "n"])
    # the LR raster covers a larger area (offset by 4 LR pixels) at 20 m
    lr_full = np.zeros((2, 40, 40), dtype=np.float32) + 0.3
    lr_full[:, 4:36, 4:36] = block_mean(hr[1:], 2)
    lr_full[:, 9, 20] = -1.0  # one LR nodata pixel: HR rows 10..11, cols 32..33 (in the training block)
    lr_tif = write_geotiff(tmp_path / "lr.tif", lr_full, res=20.0, origin=(500000.0 - 80, 5000000.0 + 80), descriptions=["r", "n"],
                           nodata=-1.0)
    dm = GeoTiffDataModule(paths=[str(hr_tif)], lr_paths=[str(lr_tif)], input_bands=[0, 1], target_bands=[1, 2],
                           patch_size=8, val_fraction=0.2, test_fraction=0.2, stats_cache_dir=str(tmp_path / "c"))
    # bicubic baseline: target bands found among the inputs by their descriptions
    assert dm.in_channels == 2 and dm.out_channels == 2 and dm.target_in_input == [0, 1]
    assert dm.input_band_names() == ["r", "n"] and dm.target_band_names() == ["r", "n"]
    ds = dm._make_dataset("train")
    assert dm.split_boxes[0]["train"][0].row1 >= 18
    assert any(r <= 10 < r + 8 and not c <= 32 < c + 8 for _, r, c in ds.positions)  # the rows are sampled elsewhere
    for _, r, c in ds.positions:  # but no patch reaches the HR footprint of the LR nodata pixel
        assert not (r < 12 and r + 8 > 10 and c < 34 and c + 8 > 32), (r, c)
    for i in range(0, len(ds), 7):
        s = ds[i]
        np.testing.assert_allclose(s["input"].numpy(), block_mean(s["target"].numpy(), 2), atol=1e-6)
    stats = dm.statistics()
    assert stats["input_mean"].shape == (2,) and stats["target_mean"].shape == (2,)


def test_paired_crs_mismatch_and_no_overlap(tmp_path: Path) -> None:
    hr = write_geotiff(tmp_path / "hr.tif", height=32, width=32)
    other_crs = write_geotiff(tmp_path / "lr_utm34.tif", height=16, width=16, res=20.0, crs="EPSG:32634")
    with pytest.raises(ValueError, match=r"lr_utm34\.tif: CRS EPSG:32634 differs from the CRS EPSG:32633 of its HR pair .*hr\.tif"):
        GeoTiffDataModule(paths=[str(hr)], lr_paths=[str(other_crs)], patch_size=8)
    far = write_geotiff(tmp_path / "lr_far.tif", height=16, width=16, res=20.0, origin=(600000.0, 5000000.0))
    with pytest.raises(ValueError, match=r"lr_far\.tif: its extent .* does not overlap"):
        GeoTiffDataModule(paths=[str(hr)], lr_paths=[str(far)], patch_size=8)


# ------------------------------------------------------------------------------------- the real Landsat sample
@pytest.mark.skipif(not LANDSAT.is_file(), reason=f"real sample not found at {LANDSAT}")
def test_landsat_sample(tmp_path: Path) -> None:
    before = sorted(p.name for p in SHARED_DATA.iterdir())
    dm = GeoTiffDataModule(paths=[str(LANDSAT)], patch_size=48, split_axis="cols",
                           split_order=["train", "val", "train", "test", "train"], stats_cache_dir=str(tmp_path / "cache"))
    assert dm.in_channels == 3 and dm.data_range == 255.0
    src = dm.sources[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN in this file
        counts = {s: len(dm.positions(s)) for s in ("train", "val", "test")}
    assert counts["train"] > 200 and counts["val"] >= 10 and counts["test"] >= 10
    for split in ("val", "test"):
        for _, r, c in dm.positions(split):
            assert (src.read(int(r), int(c), 48, 48) != 0).any(0).all()
    stats = dm.statistics()
    assert (stats["input_mean"] > 20).all() and (stats["input_mean"] < 120).all()
    # the shared folder is read-only: the cache went to the cache folder
    assert sorted(p.name for p in SHARED_DATA.iterdir()) == before
    assert list((tmp_path / "cache").glob("landsat7_rgb_byte.tif.*.aerogan-stats.json"))


# ------------------------------------------------------------------------------------- one signature
def test_cli_resolves_the_forwarded_base_arguments(run_cli, capsys: pytest.CaptureFixture[str]) -> None:
    """GeoTiffDataModule forwards **kwargs to its bases; LightningCLI still lists, types and checks them."""
    import yaml

    config = Path(__file__).resolve().parents[1] / "configs" / "landsat7_x2.yaml"
    with pytest.raises(SystemExit) as done:
        run_cli("fit", "--config", config, "--data.init_args.blur_sigma", "0.3", "--data.init_args.tile", "128", "--print_config")
    assert done.value.code in (0, None)
    data = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
    assert data["blur_sigma"] == 0.3 and data["tile"] == 128  # base and scene arguments from the command line
    assert data["patch_size"] == 48 and data["batch_size"] == 16 and data["rgb_bands"] == [2, 1, 0]  # from the config
    assert {"scale", "num_workers", "augment", "sigma_jitter", "noise_std", "data_range", "seed"} <= set(data)
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", config, "--data.init_args.batch_sise", "4", "--print_config")
    assert "batch_sise" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", config, "--data.init_args.blur_sigma", "blurry", "--print_config")
    assert "blur_sigma" in capsys.readouterr().err
