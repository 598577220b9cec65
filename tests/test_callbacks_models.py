"""Tiny models and helpers shared by the ``tests/test_callbacks_*.py`` files (plus checks of the models)."""

from __future__ import annotations

import csv
import os
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers.logger import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class RecordingLogger(Logger):
    """Keeps every ``log_metrics`` call as ``(step, metrics)``."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.records.append((step, dict(metrics)))

    def steps(self, tag: str) -> list[int | None]:
        return [s for s, m in self.records if tag in m]

    def values(self, tag: str) -> dict[int | None, float]:
        return {s: m[tag] for s, m in self.records if tag in m}

    def tags(self) -> set[str]:
        return {k for _, m in self.records for k in m}


def make_trainer(root: Any, **kwargs: Any) -> Trainer:
    """A quiet single-process CPU trainer; keyword arguments override the defaults."""
    options: dict[str, Any] = {
        "default_root_dir": str(root),
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "log_every_n_steps": 1,
    }
    options.update(kwargs)
    return Trainer(**options)


class TinyGAN(LightningModule):
    """Manual-optimization GAN on 1×8×8 images: ``generator`` maps x to y, ``critic`` scores images."""

    def __init__(
        self,
        norm: bool = True,
        dropout: float = 0.2,
        adv_weight: float = 0.1,
        lr: float = 1e-2,
        n_samples: int = 16,
        batch_size: int = 4,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.adv_weight = adv_weight
        self.lr = lr
        self.batch_size = batch_size
        layers: list[nn.Module] = [nn.Conv2d(1, 4, 3, padding=1)]
        layers.append(nn.BatchNorm2d(4) if norm else nn.Identity())
        layers += [nn.ReLU(), nn.Dropout(dropout), nn.Conv2d(4, 1, 3, padding=1)]
        self.generator = nn.Sequential(*layers)
        self.critic = nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(64, 16),
            nn.LeakyReLU(0.2),
            nn.Linear(16, 1),
        )
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n_samples, 1, 8, 8, generator=g)
        self.y = 0.5 * self.x + 0.1 * torch.randn(n_samples, 1, 8, 8, generator=g)

    def loss_terms(self, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        fake = self.generator(x)
        return {
            "supervised": F.l1_loss(fake, y),
            "adversarial": self.adv_weight * F.softplus(-self.critic(fake)).mean(),
        }

    def loss_terms_parameters(self):
        return self.generator.named_parameters(prefix="generator")

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        with self.toggled_optimizer(opt_g):
            loss_g = sum(self.loss_terms(batch).values())
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()
        with self.toggled_optimizer(opt_d):
            x, y = batch
            fake = self.generator(x).detach()
            loss_d = F.softplus(-self.critic(y)).mean() + F.softplus(self.critic(fake)).mean()
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            opt_d.step()

    def configure_optimizers(self):
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.lr),
            torch.optim.Adam(self.critic.parameters(), lr=self.lr),
        ]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=False)


class MLP(LightningModule):
    """Two-layer network 64 → hidden → 10 on normalised 8×8 inputs (``net.0`` = U, ``net.2`` = V)."""

    def __init__(self, hidden: int = 16, lr: float = 0.1, n_samples: int = 32, batch_size: int = 8) -> None:
        super().__init__()
        self.lr = lr
        self.batch_size = batch_size
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        g = torch.Generator().manual_seed(1)
        x = torch.randn(n_samples, 64, generator=g)
        self.x = x / x.norm(dim=1, keepdim=True)
        self.y = torch.randint(0, 10, (n_samples,), generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=False)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------- checks of the helpers themselves


def test_gan_loss_terms_contract() -> None:
    model = TinyGAN(dropout=0.0)
    batch = (model.x[:4], model.y[:4])
    terms = model.loss_terms(batch)
    assert set(terms) == {"supervised", "adversarial"}
    assert all(t.dim() == 0 and t.requires_grad for t in terms.values())
    names = dict(model.named_parameters())
    for name, p in model.loss_terms_parameters():
        assert names[name] is p and name.startswith("generator.")


def test_recording_logger() -> None:
    logger = RecordingLogger()
    logger.log_metrics({"a": 1.0}, step=3)
    assert logger.steps("a") == [3] and logger.values("a") == {3: 1.0} and logger.tags() == {"a"}
