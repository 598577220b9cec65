"""The deadline timer of ``aerogan sharpen``: it stops at the first batch end after the deadline, never before the first step."""

from __future__ import annotations

import time

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from aerogan.training_budget import DeadlineTimer


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.net(batch[0]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(deadline: float) -> int:
    data = DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=4)
    trainer = L.Trainer(accelerator="cpu", max_epochs=-1, callbacks=[DeadlineTimer(deadline)], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(_Tiny(), data)
    return trainer.global_step


def test_a_deadline_passed_during_setup_still_gives_one_step() -> None:
    # failed before the fix: Lightning's Timer checks at fit start and stopped with 0 steps (an untrained model saved)
    assert _fit(time.monotonic() - 10.0) == 1


def test_the_deadline_stops_training() -> None:
    start = time.monotonic()
    steps = _fit(start + 0.5)
    assert steps >= 1 and time.monotonic() - start < 30.0
