"""Array datamodule: layouts, scene splits, binning, .npy files, the real Sentinel-2 sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import ArrayDataModule
from tests.data.geotiffs import smooth_scene

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
S2 = SHARED_DATA / "sentinel2_l1c_scenes.npy"
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def _dm(layout: str, **kw) -> ArrayDataModule:
    kw.setdefault("patch_size", 8)
    kw.setdefault("val_fraction", 0.2)
    kw.setdefault("test_fraction", 0.2)
    kw.setdefault("batch_size", 4)
    kw.setdefault("samples_per_epoch", 8)
    return ArrayDataModule(layout, **kw)


def test_layouts_give_the_same_patches() -> None:
    scenes = smooth_scene(3, 60, 50, seed=1)[None].repeat(2, 0)  # (2, 3, 60, 50)
    first = _dm("channels_first", array=scenes)
    last = _dm("channels_last", array=scenes.transpose(0, 2, 3, 1))
    assert first.in_channels == last.in_channels == 3 and len(first.sources) == 2
    a, b = first._make_dataset("val"), last._make_dataset("val")
    assert len(a) == len(b) > 0
    assert torch.equal(a[3]["image"], b[3]["image"])
    single = _dm("channels_last", array=scenes[0].transpose(1, 2, 0))
    assert len(single.sources) == 1 and single.sources[0].height == 60
    gray = _dm("channels_last", array=scenes[0, 0])
    assert gray.in_channels == 1
    with pytest.raises(ValueError, match="layout='rows' must be"):
        _dm("rows", array=scenes)


def test_scene_split_holds_out_whole_scenes() -> None:
    scenes = smooth_scene(2, 32, 32, seed=2)[None].repeat(5, 0)
    dm = _dm("channels_first", array=scenes, val_scenes=[3], test_scenes=[4])
    assert dm.split_scenes("train") == [0, 1, 2] and dm.split_scenes("val") == [3] and dm.split_scenes("test") == [4]
    assert set(dm.positions("val")[:, 0]) == {3} and set(dm.positions("train")[:, 0]) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"scene indices \[7\] are out of range"):
        _dm("channels_first", array=scenes, val_scenes=[7])
    with pytest.raises(ValueError, match="overlap"):
        _dm("channels_first", array=scenes, val_scenes=[1], test_scenes=[1])
    with pytest.raises(ValueError, match="leading scene axis"):
        _dm("channels_first", array=scenes[0], val_scenes=[0])


def test_bin_factor_recovers_native_pixels_and_masks_blocks() -> None:
    native = smooth_scene(2, 20, 24, seed=3)
    blocky = np.zeros((2, 41, 48), dtype=np.float32)  # nearest-upsampled x2, blocks start at row 1
    blocky[:, 1:] = native.repeat(2, 1).repeat(2, 2)
    blocky[0, 5, 6] = np.nan
    dm = _dm("channels_first", array=blocky, bin_factor=2, bin_origin=[1, 0], patch_size=4, split_gap=4)
    src = dm.sources[0]
    assert (src.height, src.width) == (20, 24)
    got = src.read(0, 0, 20, 24)
    assert np.isnan(got[:, 2, 3]).all()  # the block holding the NaN is invalid in every band
    got[:, 2, 3] = native[:, 2, 3]
    np.testing.assert_allclose(got, native, atol=1e-6)


def test_named_bands_and_npy_file(tmp_path: Path) -> None:
    arr = smooth_scene(4, 40, 40, seed=5).transpose(1, 2, 0)
    path = tmp_path / "scene.npy"
    np.save(path, arr)
    dm = _dm("channels_last", path=str(path), band_names=["g", "r", "n", "s"], scale=1,
             input_bands=["g", "r", "n"], target_bands=["s"], stats_cache_dir=str(tmp_path / "c"))
    assert dm.input_bands == [0, 1, 2] and dm.target_bands == [3] and dm.target_band_names() == ["s"]
    stats = dm.statistics()
    assert stats["target_mean"].shape == (1,)
    assert (tmp_path / "scene.npy.aerogan-stats.json").is_file()
    with pytest.raises(ValueError, match=r"scene\.npy: data\.input_bands names band 'x'"):
        _dm("channels_last", path=str(path), band_names=["g", "r", "n", "s"], input_bands=["x"])
    with pytest.raises(FileNotFoundError, match=r"missing\.npy: no such file"):
        _dm("channels_last", path=str(tmp_path / "missing.npy"))
    bad = tmp_path / "bad.npy"
    bad.write_text("not an array")
    with pytest.raises(ValueError, match=r"bad\.npy: not a readable \.npy array"):
        _dm("channels_last", path=str(bad))


@pytest.mark.skipif(not S2.is_file(), reason=f"real sample not found at {S2}")
def test_sentinel2_sample_20m_bands(tmp_path: Path) -> None:
    before = sorted(p.name for p in SHARED_DATA.iterdir())
    dm = ArrayDataModule("channels_last", path=str(S2), band_names=S2_BANDS, bin_factor=2, bin_origin=[1, 0],
                         input_bands=["B05", "B06", "B07", "B8A", "B11", "B12"], val_scenes=[3], test_scenes=[4],
                         patch_size=16, batch_size=4, samples_per_epoch=8, stats_cache_dir=str(tmp_path / "cache"))
    assert dm.in_channels == dm.out_channels == 6 and dm.data_range == 1.0 and dm.target_in_input == list(range(6))
    src = dm.sources[0]
    assert (src.height, src.width) == (50, 50)
    x = src.read(0, 0, 50, 50, dm.input_bands)
    assert (x[:, :, 1:] == x[:, :, :-1]).mean() < 0.05  # the 2x2 blocks of the 10 m grid are gone
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["input"].shape == (4, 6, 8, 8) and batch["target"].shape == (4, 6, 16, 16)
    assert sorted(p.name for p in SHARED_DATA.iterdir()) == before  # read-only folder untouched
