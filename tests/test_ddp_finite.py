"""Two-process CPU DDP (gloo): a non-finite value on one rank only stops both ranks at the same step, without a hang."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aerogan import AdversarialRegularization


class Pairs(Dataset):
    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 5, generator=g), torch.randn(n, 3, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input": self.x[i], "target": self.y[i]}


class Recording(AdversarialRegularization):
    """Rank 1 gets a NaN loss term at batch 1 that leaves the (all-reduced) gradients finite, so only rank 1 sees it.

    Each rank writes the message that stopped it, then ends the fit cleanly (so no rank is killed mid-write).
    """

    def __init__(self, out: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.out = out

    def generator_terms(self, prediction, target):
        terms = super().generator_terms(prediction, target)
        if self.training and self.global_rank == 1 and self._batches_seen() == 1:
            terms["weight_penalty"] = torch.tensor(float("nan"))
        return terms

    def training_step(self, batch, batch_idx: int) -> None:
        try:
            super().training_step(batch, batch_idx)
        except FloatingPointError as err:
            (Path(self.out) / f"rank{self.global_rank}.txt").write_text(str(err))
            self.trainer.should_stop = True


@pytest.mark.ddp
def test_nan_on_one_rank_stops_every_rank(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Recording(str(tmp_path), generator=nn.Linear(5, 3), critic=nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)),
                      n_critic=1, optimizer_g=partial(torch.optim.SGD, lr=0.1), optimizer_d=partial(torch.optim.SGD, lr=0.1))
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy=DDPStrategy(find_unused_parameters=True, start_method="fork"),
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, DataLoader(Pairs(), batch_size=2, shuffle=False))
    messages = sorted((tmp_path / f"rank{r}.txt").read_text() for r in (0, 1))
    assert messages[0].startswith("non-finite a value on another rank at batch 1 "), messages  # rank 0
    assert messages[1].startswith("non-finite weight_penalty at batch 1 "), messages  # rank 1
    assert "stepping the generator" in messages[0] and "stepping the generator" in messages[1]
    assert (tmp_path / "last-finite-batch1.ckpt").is_file()  # every rank reached the save
