"""All callbacks on a two-process CPU DDP run of the manual-optimization GAN.

The children do not update the parent's objects (fork/spawn), so everything is asserted on files: rank 1
must write nothing, so no row or image appears twice, and the run must finish (no collective is left
waiting in a rank-zero-only branch).
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
import torch.multiprocessing as mp
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy
from test_callbacks_models import TinyGAN, make_trainer, read_csv

from callbacks import CapacityMonitor, GradientNormMonitor, TopologySnapshot, WeightDriftMonitor

START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


class RankReport(Callback):
    """Each rank dumps what the monitors computed on it (their ``last_metrics``)."""

    def __init__(self, folder) -> None:
        self.folder = folder

    def on_train_end(self, trainer, pl_module) -> None:
        values = {k: v for cb in trainer.callbacks for k, v in getattr(cb, "last_metrics", {}).items()}
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(values))


@pytest.mark.ddp
def test_gan_ddp_two_processes_writes_once(tmp_path) -> None:
    callbacks = [
        GradientNormMonitor(every_n_steps=1, loss_terms_every_n_steps=2, log_histograms=True),
        WeightDriftMonitor(every_n_steps=2, table_every_n_epochs=1),
        TopologySnapshot(every_n_epochs=1, top_k=2, max_neurons=4, modules=["generator.0"]),
        CapacityMonitor(),  # auto: critic.3 (64 -> 16) and critic.5 (16 -> 1)
        RankReport(tmp_path),
    ]
    trainer = make_trainer(
        tmp_path,
        strategy=DDPStrategy(find_unused_parameters=True, start_method=START_METHOD),
        devices=2,
        max_epochs=2,
        limit_train_batches=2,
        logger=CSVLogger(tmp_path, name="csv"),
        callbacks=callbacks,
    )
    trainer.fit(TinyGAN(n_samples=16, batch_size=4))  # 16 samples / 2 ranks / batch 4 = 2 batches per epoch

    # both ranks ran and computed the same weight statistics (weights are identical across ranks)
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0["weight_drift/critic.3/frobenius"] == rank1["weight_drift/critic.3/frobenius"] > 0
    assert rank0["capacity/total"] == rank1["capacity/total"]
    assert rank0["grad_norm/generator/total"] == pytest.approx(rank1["grad_norm/generator/total"])

    run = tmp_path / "csv" / "version_0"
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == ["version_0"]

    # weight_drift.csv: one block per epoch end (steps 2 and 4; the end-of-training write is the same step)
    rows = read_csv(run / "weight_drift.csv")
    keys = collections.Counter((r["step"], r["layer"], r["neuron"]) for r in rows)
    assert max(keys.values()) == 1
    neurons = {"generator.0": 4, "generator.4": 1, "critic.0": 4, "critic.3": 16, "critic.5": 1}
    assert {r["step"] for r in rows} == {"2", "4"}
    assert len(rows) == 2 * sum(neurons.values())

    # scalars: each tag exactly once per due step, at batch steps (4 batches in all)
    metrics = read_csv(run / "metrics.csv")

    def steps(tag: str) -> list[int]:
        return [int(r["step"]) for r in metrics if r.get(tag)]

    assert steps("grad_norm/generator/total") == [0, 1, 2, 3]
    assert steps("grad_norm/critic/total") == [0, 1, 2, 3]
    assert steps("grad_norm/terms/sum/total") == [0, 2, 4]  # + the final weights at the end of fit
    assert steps("weight_drift/generator.0/frobenius") == [0, 2, 4]
    assert steps("capacity/total") == [0, 2, 4]

    # topology: t = 0 and after each epoch, once
    topo = run / "topology"
    assert sorted(p.name for p in topo.glob("*.npz")) == [f"generator.0_epoch{e:04d}.npz" for e in (0, 1, 2)]
    assert len(list(topo.glob("*.png"))) == 3 * 3
    assert np.load(topo / "generator.0_epoch0002.npz")["drift"].max() > 0
