"""Trainer runs shared by the benchmarks: ``Trainer.fit`` on in-memory batches, step times from the timers,
and the base trainer configuration (``configs/trainer/default.yaml``) whose logging cadence and monitors
the benchmarks reproduce. The step, monitoring and scaling benchmarks all import from here.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from aerogan.bench.common import BatchList, Settings, quiet, timers, trainer_kwargs

__all__ = ["DEFAULT_CONFIG", "default_log_every_n_steps", "default_trainer_config", "fit_block", "lightning_step_times"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "trainer" / "default.yaml"


def default_trainer_config() -> dict[str, Any]:
    """The ``trainer:`` section of ``configs/trainer/default.yaml`` (empty if the file is not there)."""
    try:
        import yaml

        return dict((yaml.safe_load(DEFAULT_CONFIG.read_text()) or {}).get("trainer") or {})
    except (OSError, ImportError):
        return {}


def default_log_every_n_steps() -> int:
    """``trainer.log_every_n_steps`` of ``configs/trainer/default.yaml`` (10), Lightning's 50 if unreadable."""
    return int(default_trainer_config().get("log_every_n_steps", 50))


def fit_block(model: L.LightningModule, batches: Sequence[dict[str, Tensor]], settings: Settings, *,
              n_batches: int | None = None, max_epochs: int = 1, callbacks: Sequence[Callback] = (),
              lead: Sequence[Callback] = (), tensorboard: bool = False, root: str | None = None,
              silence: bool = True, **trainer_extra: Any) -> tuple[Any, Any]:
    """One ``Trainer.fit`` of ``model`` on the in-memory ``batches``; returns the (first, last) timers.

    Callbacks run as ``[*lead, first timer, *callbacks, last timer]``.
    """
    first, last = timers(settings.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = root or tmp
        extra: dict[str, Any] = {"default_root_dir": folder, "max_epochs": max_epochs}
        if n_batches is not None:
            extra["limit_train_batches"] = n_batches
        if tensorboard:
            extra["logger"] = TensorBoardLogger(save_dir=folder, name="bench", default_hp_metric=False)
            extra["log_every_n_steps"] = default_log_every_n_steps()
        extra.update(trainer_extra)
        kw = trainer_kwargs(settings, callbacks=[*lead, first, *callbacks, last], **extra)
        with quiet() if silence else contextlib.nullcontext():
            L.Trainer(**kw).fit(model, train_dataloaders=BatchList(batches))
    return first, last


def lightning_step_times(first: Any, last: Any, warmup: int) -> tuple[list[float], list[float]]:
    """(start-to-next-start intervals, start-to-end hook windows) of the measured steps."""
    starts, ends = first.batch_starts, last.batch_ends
    loop = [b - a for a, b in zip(starts[:-1], starts[1:], strict=True)][warmup:]
    window = [e - s for s, e in zip(starts, ends, strict=True)][warmup : len(starts) - 1]
    return loop, window
