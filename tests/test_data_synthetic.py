"""Synthetic scenes, the degradation protocol and the base datamodule's band handling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from datamodules import Degradation, SyntheticDataModule
from datamodules.synthetic import generate_scene


def test_scenes_are_determined_by_the_seed() -> None:
    a = generate_scene(4, 64, seed=3)
    b = generate_scene(4, 64, seed=3)
    c = generate_scene(4, 64, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (4, 64, 64) and a.dtype == torch.float32
    assert a.min() >= 0.0 and a.max() <= 1.0


@pytest.mark.parametrize("bands", [1, 3, 4, 13])
def test_any_band_count_has_realistic_spectra(bands: int) -> None:
    scene = generate_scene(bands, 48, seed=0)
    assert scene.shape[0] == bands
    assert scene.std() > 0.01  # not a flat image
    if bands == 13:
        # vegetation and soil dominate land: NIR (B08, index 7) is brighter than red (B04, index 3) on average
        assert scene[7].mean() > scene[3].mean()


def test_splits_use_disjoint_scenes_and_are_reproducible() -> None:
    dm = SyntheticDataModule(num_bands=3, scene_size=32, num_train_scenes=2, num_val_scenes=1, num_test_scenes=1,
                             patch_size=16, samples_per_epoch=8, seed=5)
    train, val, test = dm.scenes("train"), dm.scenes("val"), dm.scenes("test")
    for a in train:
        assert not any(torch.equal(a, b) for b in torch.cat([val, test]))
    dm.setup("fit")
    again = SyntheticDataModule(num_bands=3, scene_size=32, num_train_scenes=2, num_val_scenes=1, num_test_scenes=1,
                                patch_size=16, samples_per_epoch=8, seed=5)
    again.setup("fit")
    for i in range(len(dm.datasets["train"])):
        assert torch.equal(dm.datasets["train"][i]["image"], again.datasets["train"][i]["image"])
    assert len(dm.datasets["val"]) == 4  # a 2x2 grid of 16 px patches in one 32 px scene


def test_degradation_is_gaussian_blur_then_block_mean() -> None:
    hr = torch.rand(2, 3, 24, 24)
    deg = Degradation(scale=3, blur_sigma=0.5)
    sigma = 1.5  # 0.5 LR pixels = 1.5 HR pixels
    k = deg.kernel_size()
    assert k % 2 == 1 and k >= 6 * sigma
    expected = F.avg_pool2d(gaussian_blur2d(hr, (k, k), (sigma, sigma), border_type="reflect"), 3)
    torch.testing.assert_close(deg(hr), expected)
    assert deg(hr).shape == (2, 3, 8, 8)
    assert torch.equal(Degradation(scale=1)(hr), hr)


def test_degradation_randomisation_only_when_asked() -> None:
    hr = torch.rand(4, 2, 16, 16)
    deg = Degradation(scale=2, sigma_jitter=0.3, noise_std=0.01)
    torch.testing.assert_close(deg(hr), deg(hr))
    assert not torch.allclose(deg(hr, randomize=True), deg(hr))


def test_degradation_rejects_sizes_not_multiple_of_scale() -> None:
    with pytest.raises(ValueError, match="not a multiple of scale=2"):
        Degradation(scale=2)(torch.rand(1, 1, 15, 16))


def test_pairs_band_synthesis_and_baseline_positions() -> None:
    dm = SyntheticDataModule(num_bands=6, scene_size=32, patch_size=16, scale=1, input_bands=[1, 2, 3], target_bands=[4, 5])
    assert (dm.in_channels, dm.out_channels, dm.scale) == (3, 2, 1)
    assert dm.target_in_input is None
    image = torch.rand(2, 6, 16, 16)
    pair = dm.make_pair(image)
    assert torch.equal(pair["input"], image[:, [1, 2, 3]])
    assert torch.equal(pair["target"], image[:, [4, 5]])
    sr = SyntheticDataModule(num_bands=4, scene_size=32, patch_size=16, input_bands=[0, 1, 2, 3], target_bands=[3, 1])
    assert sr.target_in_input == [3, 1]


def test_augmentation_is_geometric_and_training_only() -> None:
    dm = SyntheticDataModule(num_bands=3, scene_size=32, patch_size=16)
    image = torch.rand(8, 3, 16, 16)
    out = dm.make_pair(image, augment=True)["target"]
    for i in range(8):  # each output is a flip/rotation of its input: same multiset of values, same spectra
        torch.testing.assert_close(out[i].flatten(1).sort(1).values, image[i].flatten(1).sort(1).values)
    assert torch.equal(dm.make_pair(image, augment=False)["target"], image)


def test_statistics_are_per_band_over_training_data() -> None:
    dm = SyntheticDataModule(num_bands=3, scene_size=32, num_train_scenes=1, patch_size=16, samples_per_epoch=4, input_bands=[0, 2], target_bands=[1])
    stats = dm.statistics()
    images = torch.stack([dm.datasets["train"][i]["image"] for i in range(4)])
    per_band = images.transpose(0, 1).flatten(1).double()
    torch.testing.assert_close(stats["input_mean"], per_band.mean(1)[[0, 2]].float())
    torch.testing.assert_close(stats["target_std"], per_band.std(1, unbiased=False)[[1]].float(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0}, "data.scale must be an integer >= 1"),
        ({"patch_size": 15, "scale": 2}, "data.patch_size=15 must be a positive multiple of data.scale=2"),
        ({"patch_size": 2, "scale": 4}, "data.patch_size=2"),
        ({"input_bands": [0, 4]}, "data.input_bands=[0, 4]: band indices must lie in 0..3"),
        ({"target_bands": [-1]}, "data.target_bands=[-1]"),
        ({"patch_size": 64, "scene_size": 32}, "data.patch_size=64 is larger than data.scene_size=32"),
        ({"num_bands": 0}, "data.num_bands must be >= 1"),
    ],
)
def test_bad_data_configuration(kwargs: dict, message: str) -> None:
    args = {"num_bands": 4, "scene_size": 32, "patch_size": 16, **kwargs}
    with pytest.raises(ValueError) as info:
        SyntheticDataModule(**args)
    assert message in str(info.value)
