"""``ScenePredictionWriter``: the Lightning callback that writes ``aerogan predict``'s super-resolved scenes.

It works with any datamodule offering ``prediction_plan(generator=None)`` (the scene datamodules:
``GeoTiffDataModule``, ``ArrayDataModule``) and any LightningModule whose ``predict_step`` returns the
super-resolved tiles of a chunk (``SuperResolution``). Tiles are blended strip by strip and finished rows
written as they come (:class:`aerogan.prediction.run.PredictionRun`), so memory is bounded by a strip.

Several ranks: each rank writes its finished rows to a part file; after a barrier on every rank, rank
zero copies the parts into the outputs (file operations only, no collectives), then a final barrier.
An error on any rank is re-raised after the barriers, so no rank hangs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from aerogan.prediction.plan import PredictionPlan
from aerogan.prediction.run import PredictionRun, assemble_parts
from aerogan.prediction.sinks import gdal_cache


class PlanSource(Protocol):
    """What the writer needs from a datamodule: its plan (the overlap measured on ``generator`` when unset)."""

    def prediction_plan(self, generator: nn.Module | None = None) -> PredictionPlan: ...


def _generator(pl_module: L.LightningModule) -> nn.Module | None:
    """The network whose receptive field sets the overlap (EMA weights when the module has them)."""
    for name in ("inference_generator", "generator"):
        module = getattr(pl_module, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


class ScenePredictionWriter(BasePredictionWriter):
    """Writes the super-resolved scenes of a scene datamodule's prediction plan.

    Added automatically by the scene datamodules at ``predict`` when no instance is configured. It turns
    off the prediction loop's in-memory collection of outputs (``return_predictions``), so memory stays
    bounded by a strip, and caps GDAL's block cache during the run (:func:`aerogan.prediction.sinks.gdal_cache`).
    """

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self.run: PredictionRun | None = None
        self.written: list[Path] = []
        self._env = ExitStack()

    def _plan(self, trainer: L.Trainer, pl_module: L.LightningModule) -> PredictionPlan:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "prediction_plan"):
            raise RuntimeError("ScenePredictionWriter needs a scene datamodule (GeoTiffDataModule, ArrayDataModule)")
        source: PlanSource = dm
        return source.prediction_plan(generator=_generator(pl_module))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "predict":
            trainer.predict_loop.return_predictions = False
            self._plan(trainer, pl_module)  # before the loader is built: the plan fixes the tiling

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        plan = self._plan(trainer, pl_module)
        meta = getattr(pl_module, "metadata", {}) or {}
        if meta.get("scale") is not None and int(meta["scale"]) != plan.scale:
            raise ValueError(f"the model was trained for scale {meta['scale']}, but data.scale={plan.scale}")
        self._env.close()
        self._env.enter_context(gdal_cache(plan))
        self.run = PredictionRun(plan, trainer.world_size, trainer.global_rank, meta.get("target_band_names"))
        self.written = []

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any, batch_indices: Sequence[int] | None,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        pred = prediction.detach().float().cpu().numpy() if isinstance(prediction, torch.Tensor) else np.asarray(prediction)
        valid = batch["valid"].cpu().numpy()
        self.run.add(int(batch["scene"]), int(batch["strip"]), int(batch["first"]), pred, valid, int(batch["nonfinite"]))

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        try:
            self._finish(trainer, run)
        finally:
            self._env.close()
        for path in self.written:
            rank_zero_info(f"aerogan predict: wrote {path}")

    def _finish(self, trainer: L.Trainer, run: PredictionRun) -> None:
        world = trainer.world_size
        if world == 1:
            self.written = run.commit()
            return
        failure: BaseException | None = None
        try:
            run.commit()
        except BaseException as err:  # noqa: BLE001 - re-raised after the barrier so no rank hangs
            run.abort()
            failure = err
        trainer.strategy.barrier("aerogan-predict-parts")
        if trainer.is_global_zero and failure is None:
            try:
                self.written = assemble_parts(run.plan, world, run.band_names)
            except BaseException as err:  # noqa: BLE001
                failure = err
        trainer.strategy.barrier("aerogan-predict-written")
        if failure is not None:
            raise failure

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.run is not None:
            self.run.abort()
            self.run = None
        self._env.close()
