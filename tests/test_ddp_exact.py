"""Under two-process DDP: the critic's gradient (with the gradient penalty) and the evaluation
metrics equal those of one process on the whole batch or set."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aerogan import AdversarialRegularization, SuperResolution
from aerogan.nets import PatchCritic, SRResNet
from datamodules import SyntheticDataModule


class Samples(Dataset):
    """Targets, predictions and the per-sample gradient-penalty weights, all fixed by a seed."""

    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(3)
        self.real = torch.randn(n, 2, 8, 8, generator=g)
        self.fake = torch.randn(n, 2, 8, 8, generator=g)
        self.eps = torch.rand(n, generator=g)

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"real": self.real[i], "fake": self.fake[i], "eps": self.eps[i]}


def make_critic() -> nn.Module:
    torch.manual_seed(0)
    return PatchCritic(2, num_features=4, num_layers=2)


class CriticGradient(AdversarialRegularization):
    """Runs the real ``critic_step`` once per batch and records the critic's gradient after backward."""

    def __init__(self, out: str) -> None:
        super().__init__(nn.Identity(), make_critic(), n_critic=1, optimizer_g=lambda p: torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0))
        self.out = out

    def configure_optimizers(self):
        return torch.optim.SGD(self.critic.parameters(), lr=0.0)

    def training_step(self, batch, batch_idx):
        out = self.critic_step(batch["real"], batch["fake"], eps=batch["eps"])
        self.manual_backward(out["critic_loss"])
        grads = {n: p.grad.detach().clone() for n, p in self.critic.named_parameters()}
        torch.save(grads, Path(self.out) / f"grads{self.global_rank}.pt")


@pytest.mark.ddp
def test_gradient_penalty_under_ddp_equals_one_process(tmp_path: Path) -> None:
    data = Samples(8)
    # one process on the whole batch of 8
    single = CriticGradient(str(tmp_path))
    critic = single.critic
    out = single.critic_step(data.real, data.fake, eps=data.eps)
    out["critic_loss"].backward()
    expected = {n: p.grad.clone() for n, p in critic.named_parameters()}
    assert out["gradient_penalty"] > 0

    # two processes, 4 samples each (the distributed sampler splits the 8)
    model = CriticGradient(str(tmp_path))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=DDPStrategy(find_unused_parameters=True, start_method="fork"),
                        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(data, batch_size=4, shuffle=False))
    for rank in (0, 1):
        got = torch.load(tmp_path / f"grads{rank}.pt")
        for name, grad in expected.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-5, atol=1e-6, msg=f"rank {rank}: {name}")


class SaveMetrics(L.Callback):
    def __init__(self, out: str) -> None:
        self.out = out

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            torch.save({k: v.cpu() for k, v in trainer.callback_metrics.items()}, Path(self.out) / "metrics.pt")


@pytest.mark.ddp
def test_validation_metrics_are_exact_under_ddp(tmp_path: Path) -> None:
    # 9 validation patches (a 3x3 grid): two ranks get 5 and 4, with no padded repeat
    def data() -> SyntheticDataModule:
        return SyntheticDataModule(num_bands=3, scene_size=48, num_val_scenes=1, patch_size=16, batch_size=2)

    torch.manual_seed(0)
    model = SuperResolution(SRResNet(3, 3, 2, num_features=8, num_blocks=1), None, objective="supervised", num_panels=0)
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                       default_root_dir=tmp_path)
    (expected,) = single.validate(model, data(), verbose=False)
    ddp = L.Trainer(accelerator="cpu", devices=2, strategy=DDPStrategy(start_method="fork"), logger=False,
                    enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                    callbacks=[SaveMetrics(str(tmp_path))])
    ddp.validate(model, data(), verbose=False)
    got = torch.load(tmp_path / "metrics.pt")
    for key in ("val/psnr", "val/psnr_bicubic", "val/ssim", "val/sam", "val/rmse"):
        assert abs(float(got[key]) - expected[key]) < 1e-4 * max(1.0, abs(expected[key])), key
