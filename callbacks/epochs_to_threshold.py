r"""
Epochs To Threshold
===================

An :class:`~lightning.pytorch.callbacks.EarlyStopping` whose threshold is fixed from the data before training:
it records the validation metric every epoch, the first epoch at which it reaches the threshold, and stops
training there (or a few epochs later). The measurement behind the epochs-to-converge study (docs/science.md §3).

"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor
from typing_extensions import override

from callbacks._logging import run_folder, validate_int_args

__all__ = ["SUMMARY_NAME", "EpochsToThreshold"]

SUMMARY_NAME = "study_summary.json"
RULES = ("linear_baseline", "mean_baseline", "absolute")


class EpochsToThreshold(EarlyStopping):
    """Record the validation metric every epoch and the first epoch at which it reaches a pre-set threshold.

    The threshold is fixed in ``on_fit_start`` from the data alone, before any training, so nothing about the run
    can move it: ``factor ×`` the validation RMSE of a baseline fitted on the training pixels
    (``linear_baseline``: per-pixel least squares with intercept from the input bands to the targets;
    ``mean_baseline``: the training mean of each target band), or an ``absolute`` value. The baselines come from
    the datamodule's own ``baseline_rmse()`` if it has one, else from :func:`datamodules.baselines.baseline_rmse`
    (any ``datamodules.SuperResolutionDataModule``).

    The check runs after each validation (``val/rmse`` is a validation metric; lower is better). Stopping is
    Lightning's early stopping: the decision is reduced across ranks (one rank reaching the stop stops all).
    With ``stop_on_reach``, training stops at the first epoch reaching the threshold, or ``patience_epochs``
    epochs later. Rank zero writes ``<run folder>/study_summary.json`` after each validation (so an interrupted
    run still leaves its history) and at the end of the fit: threshold, baselines, ``epochs_to_threshold``
    (``None`` if never reached), epochs run, best and final values, wall time, seed and the per-epoch history.

    Args:
        monitor: the validation metric (lower is better), ``val/rmse`` for :class:`aerogan.SuperResolution`.
        rule: ``linear_baseline``, ``mean_baseline`` or ``absolute``.
        factor: multiplies the baseline RMSE (ignored for ``absolute``).
        value: the threshold for ``absolute``.
        stop_on_reach: stop training once the threshold is reached (otherwise only record).
        patience_epochs: after reaching it, keep training this many more epochs (0: stop at once).
        name: a label stored in the summary.
        objective: a label stored in the summary (defaults to the module's ``objective`` attribute).

    Raises:
        MisconfigurationException: an unknown ``rule``, ``absolute`` without ``value > 0``, ``factor <= 0``,
            ``patience_epochs < 0``, a baseline rule without a datamodule, or ``monitor`` not logged.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from callbacks import EpochsToThreshold
        >>> trainer = Trainer(callbacks=[EpochsToThreshold(rule="absolute", value=0.02)])

    """

    def __init__(
        self,
        monitor: str = "val/rmse",
        rule: Literal["linear_baseline", "mean_baseline", "absolute"] = "linear_baseline",
        factor: float = 1.0,
        value: float | None = None,
        stop_on_reach: bool = True,
        patience_epochs: int = 0,
        name: str | None = None,
        objective: str | None = None,
    ) -> None:
        if rule not in RULES:
            raise MisconfigurationException(
                f"EpochsToThreshold: `rule` must be one of {list(RULES)}, got {rule!r}."
            )
        if rule == "absolute" and (value is None or not value > 0):
            raise MisconfigurationException(
                f"EpochsToThreshold: rule='absolute' needs `value` > 0, got {value!r}."
            )
        if not factor > 0:
            raise MisconfigurationException(f"EpochsToThreshold: `factor` must be > 0, got {factor!r}.")
        validate_int_args(("patience_epochs", patience_epochs, 0))
        # patience is ours (epochs after reaching the threshold), not EarlyStopping's no-improvement count;
        # NaN values are recorded, never a reason to stop (check_finite=False)
        super().__init__(monitor=monitor, mode="min", check_finite=False, check_on_train_epoch_end=False)
        self.rule = rule
        self.factor = float(factor)
        self.value = value
        self.stop_on_reach = bool(stop_on_reach)
        self.patience_epochs = int(patience_epochs)
        self.name = name
        self.objective = objective
        self.threshold: float | None = None
        self.baselines: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self.reached_epoch: int | None = None
        self._epoch = 0
        self._start = 0.0

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()
        self.history, self.reached_epoch = [], None
        if self.rule == "absolute":
            self.threshold = float(self.value)  # type: ignore[arg-type]
        else:
            dm = trainer.datamodule  # type: ignore[attr-defined]
            if dm is None:
                raise MisconfigurationException(
                    f"EpochsToThreshold: rule={self.rule!r} needs a datamodule (trainer.fit(model, datamodule=...)); "
                    "use rule='absolute' with a `value` otherwise."
                )
            own = getattr(dm, "baseline_rmse", None)
            if callable(own):
                self.baselines = dict(own())
            else:
                from datamodules.baselines import baseline_rmse

                self.baselines = baseline_rmse(dm)
            self.threshold = self.factor * float(self.baselines[self.rule])
        self.stopping_threshold = self.threshold  # EarlyStopping's notion, for anyone reading it

    @override
    def _run_early_stopping_check(self, trainer: pl.Trainer) -> None:
        if self.threshold is None:
            return
        if trainer.callback_metrics.get(self.monitor) is None:
            raise MisconfigurationException(
                f"EpochsToThreshold: `{self.monitor}` is not logged by the module "
                f"(logged: {sorted(trainer.callback_metrics)})."
            )
        self._epoch = trainer.current_epoch + 1  # completed training epochs
        # EarlyStopping's check: _evaluate_stopping_criteria below, then the cross-rank reduce of the decision
        super()._run_early_stopping_check(trainer)
        self._write(trainer, trainer.lightning_module)

    @override
    def _evaluate_stopping_criteria(self, current: Tensor) -> tuple[bool, str | None]:
        value = float(current)
        self.history.append(
            {"epoch": self._epoch, "value": value, "time_s": time.perf_counter() - self._start}
        )
        if value < float(self.best_score):
            self.best_score = current.detach().cpu()
        if self.reached_epoch is None and self.threshold is not None and value <= self.threshold:
            self.reached_epoch = self._epoch
        if (
            self.stop_on_reach
            and self.reached_epoch is not None
            and self._epoch >= self.reached_epoch + self.patience_epochs
        ):
            self.stopping_reason = EarlyStoppingReason.STOPPING_THRESHOLD
            return True, (
                f"{self.monitor} reached the threshold {self.threshold:.6g} at epoch {self.reached_epoch} "
                f"(now {value:.6g} at epoch {self._epoch}). Signaling Trainer to stop."
            )
        return False, None

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module)

    def summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """The content of ``study_summary.json``."""
        gen = getattr(pl_module, "generator", pl_module)
        values = [h["value"] for h in self.history]
        return {
            "name": self.name,
            "objective": self.objective or getattr(pl_module, "objective", None),
            "generator": type(gen).__name__,
            "generator_params": sum(p.numel() for p in gen.parameters()),
            "monitor": self.monitor,
            "rule": self.rule,
            "factor": self.factor,
            "threshold": self.threshold,
            "baselines": self.baselines,
            "epochs_to_threshold": self.reached_epoch,
            "epochs_run": self.history[-1]["epoch"] if self.history else 0,
            "max_epochs": trainer.max_epochs,
            "best_value": min(values) if values else None,
            "final_value": values[-1] if values else None,
            "wall_time_s": time.perf_counter() - self._start,
            "seed": _seed(),
            "history": self.history,
        }

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        folder = run_folder(trainer)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, SUMMARY_NAME)
        tmp = f"{path}.{os.getpid()}.tmp"  # complete or absent: readers never see a partial file
        with open(tmp, "w") as f:
            json.dump(self.summary(trainer, pl_module), f, indent=1)
        os.replace(tmp, path)


def _seed() -> int | None:
    value = os.environ.get("PL_GLOBAL_SEED")
    return int(value) if value is not None and value.lstrip("-").isdigit() else None
