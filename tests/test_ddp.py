"""Two-process CPU DDP (gloo): the GAN step under DDP ends with identical weights on both ranks."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from aerogan import SuperResolution
from aerogan.nets import PatchCritic, SRResNet
from datamodules import SyntheticDataModule


class SaveWeights(L.Callback):
    """Each rank writes its final generator and critic weights (spawned ranks can't update the parent)."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}, Path(self.out) / f"rank{trainer.global_rank}.pt")


@pytest.mark.ddp
def test_two_process_fit_keeps_ranks_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = SyntheticDataModule(num_bands=3, scene_size=32, num_train_scenes=2, num_val_scenes=1, num_test_scenes=1,
                             samples_per_epoch=16, patch_size=16, batch_size=4)
    model = SuperResolution(SRResNet(3, 3, 2, num_features=8, num_blocks=1), PatchCritic(None, 8, 2), n_critic=2, num_panels=0)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy=DDPStrategy(find_unused_parameters=True, start_method="fork"),
        max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, callbacks=[SaveWeights(str(tmp_path))],
    )
    initial = {k: v.clone() for k, v in model.generator.state_dict().items()}
    trainer.fit(model, dm)
    r0 = torch.load(tmp_path / "rank0.pt")
    r1 = torch.load(tmp_path / "rank1.pt")
    assert r0.keys() == r1.keys()
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=k)
    moved = [k for k, v in initial.items() if not torch.equal(r0[f"generator.{k}"], v)]
    assert moved, "the generator did not train"
