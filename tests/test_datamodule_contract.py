"""The datamodule contract: every super-resolution datamodule satisfies it, a missing member is named, abstract
methods are enforced at construction, and ``SuperResolution.setup`` refuses data that does not conform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import datamodules
from aerogan import SuperResolution
from aerogan.nets import SRResNet
from datamodules import (
    ArrayDataModule,
    DigitsDataModule,
    GeoTiffDataModule,
    MultiResolutionDataModule,
    SuperResolutionData,
    SuperResolutionDataModule,
    SyntheticDataModule,
    check_datamodule,
)
from datamodules.contract import missing_members, protocol_members
from datamodules.scenes import SceneDataModule
from datamodules.super_resolution import abstract_members
from tests.data.geotiffs import smooth_scene, write_geotiff
from tests.data.multires import GROUPS, write_group_rasters


def synthetic(tmp_path: Path) -> SyntheticDataModule:
    return SyntheticDataModule(num_bands=3, scene_size=32, num_train_scenes=1, num_val_scenes=1, num_test_scenes=1,
                               samples_per_epoch=4, patch_size=16, batch_size=2)


def geotiff(tmp_path: Path) -> GeoTiffDataModule:
    tif = write_geotiff(tmp_path / "scene.tif", count=3, height=96, width=112)
    return GeoTiffDataModule(paths=[str(tif)], patch_size=16, batch_size=2, samples_per_epoch=4, val_fraction=0.2,
                             test_fraction=0.2, stats_cache_dir=str(tmp_path / "cache"))


def arrays(tmp_path: Path) -> ArrayDataModule:
    return ArrayDataModule("channels_first", array=smooth_scene(3, 40, 40, seed=1), patch_size=8, batch_size=2,
                           samples_per_epoch=4, val_fraction=0.2, test_fraction=0.2)


def multires(tmp_path: Path) -> MultiResolutionDataModule:
    files = write_group_rasters(tmp_path / "scene", crs=None)[:2]
    return MultiResolutionDataModule([str(f) for f in files], target_bands=GROUPS[20], guide_bands=[GROUPS[10]],
                                     patch_size=8, batch_size=2, samples_per_epoch=4, val_fraction=0.25,
                                     test_fraction=0.25, stats_cache_dir=str(tmp_path / "cache"))


#: One tiny seeded instance of every concrete super-resolution datamodule of the package.
FACTORIES: dict[type, Callable[[Path], Any]] = {
    SyntheticDataModule: synthetic, GeoTiffDataModule: geotiff, ArrayDataModule: arrays, MultiResolutionDataModule: multires,
}
#: Datamodules outside the contract: digits feed the two-layer theory (AdversarialRegularization), not SuperResolution.
OUTSIDE = {DigitsDataModule}


def package_datamodules() -> set[type]:
    """Every concrete LightningDataModule class defined in the ``datamodules`` package."""
    found, todo = set(), [L.LightningDataModule]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("datamodules.") and not abstract_members(sub):
                found.add(sub)
    return found


def test_every_datamodule_of_the_package_is_covered() -> None:
    """A new datamodule gets a factory here (and so the contract test) or is declared outside the contract."""
    assert package_datamodules() == set(FACTORIES) | OUTSIDE
    assert "MultiResolutionDataModule" in datamodules.__all__


@pytest.mark.parametrize("cls", list(FACTORIES), ids=lambda c: c.__name__)
def test_every_super_resolution_datamodule_satisfies_the_contract(cls: type, tmp_path: Path) -> None:
    dm = FACTORIES[cls](tmp_path)
    assert check_datamodule(dm) is dm and isinstance(dm, SuperResolutionData) and missing_members(dm) == []
    # what the members say agrees with itself
    assert len(dm.input_band_names()) == dm.in_channels and len(dm.target_band_names()) == dm.out_channels
    assert [len(g) for g in dm.guide_band_names()] == list(dm.guide_channels)
    assert len(dm.guide_ratios) == len(dm.guide_channels)
    assert dm.degradation_spec["scale"] == dm.scale and dm.patch_size % dm.scale == 0 and dm.batch_size == 2
    stats = dm.statistics()
    assert stats["input_mean"].shape == (dm.in_channels,) and stats["target_std"].shape == (dm.out_channels,)
    assert len(dm.rgb_bands) == 3 and dm.data_range > 0
    scenes = dm.prediction_scenes()
    if cls is MultiResolutionDataModule:  # guided, summarised, predicted product by product
        assert dm.guide_channels == [4] and dm.guide_ratios == [1]
        assert set(dm.input_summary()) == set(GROUPS[20]) | set(GROUPS[10])
        assert scenes and dm.product_path(scenes[0]).name == "S2_sr.tif"
        assert dm.product_options(2) == {"nodata": None, "tile": 2 * dm.tile, "overlap": None, "batch_size": 2}
    else:  # no guides, no summary, the Trainer's predict loop
        assert dm.guide_channels == [] and dm.guide_ratios == [] and dm.input_summary() == {}
        assert scenes is None
        with pytest.raises(NotImplementedError, match=rf"{cls.__name__} writes no products: its prediction_scenes\(\) is None"):
            dm.product_path("scene")
        with pytest.raises(NotImplementedError, match="writes no products"):
            dm.product_options(2)


def test_digits_stay_outside_the_contract() -> None:
    """The CLI predicts them through the Trainer (``isinstance`` is False); ``check_datamodule`` says why."""
    dm = DigitsDataModule(num_train=8, num_val=4)
    assert not isinstance(dm, SuperResolutionData)
    with pytest.raises(TypeError, match=r"DigitsDataModule is not a super-resolution datamodule .*statistics\(\)"):
        check_datamodule(dm)


# ---------------------------------------------------------------------------------------------- missing members
class Forwarding(L.LightningDataModule):
    """Training batches of another datamodule, and nothing of the contract (subclasses add members)."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def train_dataloader(self) -> Any:
        return self.inner.train_dataloader()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.inner.on_after_batch_transfer(batch, dataloader_idx)


def forwarding(inner: Any, without: str | None = None) -> L.LightningDataModule:
    """A LightningDataModule forwarding every contract member to ``inner`` except ``without``."""
    namespace: dict[str, Any] = {}
    for name, form in protocol_members().items():
        if name == without:
            continue
        if form.endswith("(method)"):
            namespace[name] = lambda self, *args, _n=name, **kw: getattr(self.inner, _n)(*args, **kw)
        else:
            namespace[name] = property(lambda self, _n=name: getattr(self.inner, _n))
    return type(f"Without_{without}", (Forwarding,), namespace)(inner)


def test_the_protocol_lists_what_the_model_and_the_cli_read() -> None:
    expected = {
        "batch_size", "patch_size", "scale", "in_channels", "out_channels", "guide_channels", "guide_ratios",
        "target_in_input", "rgb_bands", "data_range", "degradation_spec", "statistics", "input_band_names",
        "target_band_names", "guide_band_names", "input_summary", "prediction_scenes", "product_path", "product_options",
    }
    assert set(protocol_members()) == expected
    assert protocol_members()["product_path"] == "product_path(scene: Any) -> Path (method)"
    assert protocol_members()["scale"] == "scale: int (attribute or property)"


@pytest.mark.parametrize("member", sorted(protocol_members()))
def test_a_missing_member_is_named_with_its_form(member: str, tmp_path: Path) -> None:
    inner = synthetic(tmp_path)
    assert check_datamodule(forwarding(inner)) is not None  # the full forwarder conforms
    dm = forwarding(inner, without=member)
    assert not isinstance(dm, SuperResolutionData)
    with pytest.raises(TypeError) as err:
        check_datamodule(dm)
    message = str(err.value)
    assert f"Without_{member} is not a super-resolution datamodule" in message
    assert f"lacks 1 member(s): {protocol_members()[member]}." in message


def test_a_member_that_is_not_callable_where_a_method_is_expected_is_named(tmp_path: Path) -> None:
    class NoStatistics(SyntheticDataModule):
        statistics = None

    with pytest.raises(TypeError, match=r"statistics\(\) -> dict\[str, Any\] \(method\), found a NoneType"):
        check_datamodule(NoStatistics(num_bands=3, scene_size=32, patch_size=16))


def test_checking_runs_no_property() -> None:
    """``isinstance`` and ``check_datamodule`` look members up statically: a property that would read files
    (multi-resolution ``data_range``) or raise (a bad ``rgb_bands``) is not run."""
    calls: list[str] = []

    class Expensive(SyntheticDataModule):
        @property
        def data_range(self) -> float:
            calls.append("data_range")
            raise RuntimeError("reads every file")

    dm = Expensive(num_bands=3, scene_size=32, patch_size=16)
    assert isinstance(dm, SuperResolutionData) and check_datamodule(dm) is dm
    assert calls == []


# ---------------------------------------------------------------------------------------------- abstract methods
def test_a_subclass_forgetting_an_abstract_method_fails_at_construction() -> None:
    class NoDataset(SuperResolutionDataModule):
        def _num_bands_available(self) -> int:
            return 3

    with pytest.raises(TypeError, match="NoDataset does not implement _make_dataset: every subclass of "
                                        "datamodules.SuperResolutionDataModule must define them"):
        NoDataset()

    class NoPlan(SceneDataModule):  # the scene datamodules also need their prediction plan's inputs
        pass

    with pytest.raises(TypeError, match="NoPlan does not implement _predict_plan_inputs"):
        NoPlan()
    with pytest.raises(TypeError, match="does not implement _make_dataset, _num_bands_available"):
        SuperResolutionDataModule()

    class Complete(NoDataset):
        def _make_dataset(self, split: str) -> torch.utils.data.Dataset:
            return torch.utils.data.TensorDataset(torch.zeros(1))

    assert Complete().in_channels == 3


# ---------------------------------------------------------------------------------------------- the model's check
def test_setup_refuses_a_datamodule_lacking_a_member(tmp_path: Path) -> None:
    model = SuperResolution(SRResNet(3, 3, 2, num_features=8, num_blocks=1), None, objective="supervised", num_panels=0)
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    with pytest.raises(TypeError, match=r"Without_input_summary is not a super-resolution datamodule .*lacks 1 "
                                        r"member\(s\): input_summary\(\) -> dict\[str, dict\[str, float\]\] \(method\)"):
        trainer.fit(model, datamodule=forwarding(synthetic(tmp_path), without="input_summary"))
    assert not model.input_norm.initialized  # refused before the statistics were read
