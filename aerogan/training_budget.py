"""Training within a wall-clock budget: a deadline timer and a progress bar that counts the budget down.

``aerogan sharpen`` fits its models in the minutes the user grants. Lightning's :class:`Timer` stops a fit
after a duration counted from the start of training; :class:`DeadlineTimer` makes that duration end at a
fixed moment, so the time spent building data and models before training is charged to the same budget.
:class:`BudgetProgressBar` is Lightning's tqdm bar with the budget's seconds as its total, so its ETA is
the time left rather than the end of an arbitrary epoch.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Timer, TQDMProgressBar


class DeadlineTimer(Timer):
    """Stop training at the first batch end after ``deadline`` (a ``time.monotonic()`` value)."""

    def __init__(self, deadline: float) -> None:
        super().__init__(duration={"seconds": max(0.0, deadline - time.monotonic())}, interval="step", verbose=False)
        self.deadline = float(deadline)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._duration = max(0.0, self.deadline - time.monotonic())  # what is left once training starts

    def on_fit_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        """No check here (``Timer`` checks for a depleted timer restored from a checkpoint; this one never is): a
        deadline already passed during setup still gives the fit its first step, as the class promises."""


class BudgetProgressBar(TQDMProgressBar):
    """The training bar counts seconds of the budget (``elapsed/total s [elapsed<remaining]``), one bar per fit.

    Args:
        timer: the fit's :class:`DeadlineTimer` (its remaining time sets the bar's total).
        label: shown before the bar, e.g. ``"T2 [B05, B06, ...]"``.
    """

    def __init__(self, timer: DeadlineTimer, label: str, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.timer = timer
        self.label = label
        self._total: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        bar = self.train_progress_bar
        if self._total is None:  # once: the budget, not the epoch, is what the bar measures
            self._total = max(0.1, float(self.timer.time_remaining() or 0.0))
            bar.reset(total=round(self._total, 1))
            bar.initial = 0
            bar.unit = "s"
        bar.set_description(f"{self.label} epoch {trainer.current_epoch}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar = self.train_progress_bar
        bar.n = round(min(self.timer.time_elapsed(), self._total or 0.0), 1)
        if self._should_update(bar.n, bar.total) or batch_idx % max(1, self.refresh_rate) == 0:
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
