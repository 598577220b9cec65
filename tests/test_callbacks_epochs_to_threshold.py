"""EpochsToThreshold: an EarlyStopping with a threshold fixed from the data; history, patience, summary file."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.demos.boring_classes import BoringModel, RandomDataset
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from test_callbacks_models import make_trainer
from torch.utils.data import DataLoader

from callbacks import EpochsToThreshold

VALUES = [0.5, 0.3, 0.2, 0.15, 0.1, 0.05, 0.04, 0.03]  # val/rmse after epoch 1, 2, ...


class ScriptedRMSE(BoringModel):
    """Logs a scripted ``val/rmse`` per validation (epoch e logs VALUES[e])."""

    def validation_step(self, batch, batch_idx):
        self.log("val/rmse", torch.tensor(VALUES[self.current_epoch]))


class BaselineData(LightningDataModule):
    """A datamodule supplying its own baselines (the callback asks for them first)."""

    def baseline_rmse(self) -> dict[str, float]:
        return {"linear_baseline": 0.1, "mean_baseline": 0.4}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 16), batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 4), batch_size=4)


def _fit(tmp_path, callback: EpochsToThreshold, datamodule=None, max_epochs: int = 8):
    trainer = make_trainer(
        tmp_path, max_epochs=max_epochs, limit_train_batches=1, limit_val_batches=1, callbacks=[callback]
    )
    trainer.fit(ScriptedRMSE(), datamodule=datamodule)
    return trainer, json.loads((tmp_path / "study_summary.json").read_text())


def test_stops_after_patience_and_writes_summary(tmp_path) -> None:
    cb = EpochsToThreshold(rule="absolute", value=0.25, patience_epochs=1, name="scripted")
    assert isinstance(cb, EarlyStopping)
    trainer, summary = _fit(tmp_path, cb)
    # 0.2 <= 0.25 first after epoch 3; one more epoch of patience, then Lightning's early stop
    assert summary["epochs_to_threshold"] == 3 and cb.reached_epoch == 3
    assert summary["epochs_run"] == 4 and trainer.current_epoch == 4
    assert cb.stopping_reason == EarlyStoppingReason.STOPPING_THRESHOLD and cb.stopped_epoch == 3
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3, 4]
    assert [h["value"] for h in summary["history"]] == pytest.approx(VALUES[:4])
    assert summary["threshold"] == 0.25 and summary["rule"] == "absolute" and summary["name"] == "scripted"
    assert summary["best_value"] == pytest.approx(0.15) and summary["final_value"] == pytest.approx(0.15)
    assert summary["max_epochs"] == 8


def test_record_only_and_never_reached(tmp_path) -> None:
    cb = EpochsToThreshold(rule="absolute", value=0.01, stop_on_reach=True)
    trainer, summary = _fit(tmp_path, cb, max_epochs=5)
    assert summary["epochs_to_threshold"] is None and summary["epochs_run"] == 5 and not cb.stopped_epoch
    cb = EpochsToThreshold(rule="absolute", value=0.25, stop_on_reach=False)
    trainer, summary = _fit(tmp_path, cb, max_epochs=5)
    assert summary["epochs_to_threshold"] == 3 and summary["epochs_run"] == 5


def test_threshold_from_the_datamodule_baseline(tmp_path) -> None:
    cb = EpochsToThreshold(rule="linear_baseline", factor=2.5)
    _, summary = _fit(tmp_path, cb, datamodule=BaselineData())
    assert summary["threshold"] == pytest.approx(0.25) and summary["baselines"]["mean_baseline"] == 0.4
    assert summary["epochs_to_threshold"] == 3 and summary["epochs_run"] == 3  # stop at once (patience 0)


def test_bad_arguments_and_missing_inputs(tmp_path) -> None:
    with pytest.raises(MisconfigurationException, match="rule='absolute' needs `value`"):
        EpochsToThreshold(rule="absolute")
    with pytest.raises(MisconfigurationException, match="`rule` must be one of"):
        EpochsToThreshold(rule="median")  # type: ignore[arg-type]
    with pytest.raises(MisconfigurationException, match="`factor` must be > 0"):
        EpochsToThreshold(factor=0.0)
    with pytest.raises(MisconfigurationException, match="patience_epochs"):
        EpochsToThreshold(patience_epochs=-1)
    with pytest.raises(MisconfigurationException, match="needs a datamodule"):
        make_trainer(tmp_path, max_epochs=1, callbacks=[EpochsToThreshold()]).fit(ScriptedRMSE())
    cb = EpochsToThreshold(monitor="val/nope", rule="absolute", value=0.1)
    with pytest.raises(MisconfigurationException, match="`val/nope` is not logged"):
        _fit(tmp_path, cb, max_epochs=1)
