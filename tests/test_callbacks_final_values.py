"""Final values at the end of fit, whatever the cadence; ``enabled=False``; tag names come from ``callbacks.tags``."""

from __future__ import annotations

import ast
import copy
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from test_callbacks_models import MLP, RecordingLogger, TinyGAN, make_trainer, read_csv

from callbacks import GradientNormMonitor, TopologySnapshot, WeightDriftMonitor

pytestmark = pytest.mark.filterwarnings("ignore:.*no TensorBoardLogger in:UserWarning")

CALLBACKS = Path(__file__).resolve().parents[1] / "callbacks"


class GradRecordingGAN(TinyGAN):
    """TinyGAN (deterministic: no dropout, no BN) that records each optimizer's first gradient norm per batch."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__(norm=False, dropout=0.0)
        self.stop_after = stop_after
        self.norms: dict[tuple[int, str], float] = {}
        self.last_batch = None

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        step = self.trainer.fit_loop.epoch_loop._batches_that_stepped
        which = "generator" if optimizer.param_groups[0]["params"][0] is self.generator[0].weight else "critic"
        net = getattr(self, which)
        norm = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in net.parameters() if p.grad is not None))
        self.norms.setdefault((step, which), norm)

    def training_step(self, batch, batch_idx: int) -> None:
        self.last_batch = batch
        super().training_step(batch, batch_idx)
        if self.stop_after is not None and self.trainer.fit_loop.epoch_loop._batches_that_stepped + 1 >= self.stop_after:
            self.trainer.should_stop = True  # an early stop in the middle of an epoch


def test_twelve_batch_run_logs_final_drift_and_gradients(tmp_path) -> None:
    model = GradRecordingGAN()
    theta0 = copy.deepcopy(model.state_dict())
    logger = RecordingLogger()
    grad, drift = GradientNormMonitor(), WeightDriftMonitor()  # default cadences: 25 / 100 / 50 batches
    # 16 samples / batch 4 = 4 batches per epoch, 3 epochs = 12 batches: shorter than every cadence
    trainer = make_trainer(tmp_path, max_epochs=3, logger=logger, callbacks=[grad, drift])
    trainer.fit(model)

    # drift: step 0 (0.0) and the final weights after 12 batches, equal to ‖θ_final − θ0‖_F by hand
    for layer in ("generator.0", "generator.4", "critic.0", "critic.3", "critic.5"):
        tag = f"weight_drift/{layer}/frobenius"
        assert logger.steps(tag) == [0, 12]
        expected = float((model.state_dict()[f"{layer}.weight"] - theta0[f"{layer}.weight"]).norm())
        assert expected > 0
        assert logger.values(tag)[12] == pytest.approx(expected, rel=1e-5)
        assert logger.values(tag)[0] == 0.0
    rows = [r for r in read_csv(tmp_path / "weight_drift.csv") if r["layer"] == "generator.0"]
    assert sorted({r["step"] for r in rows}) == ["12", "4", "8"]  # epoch ends; the end of fit is step 12 again
    rows = [r for r in rows if r["step"] == "12"]
    per_neuron = (model.generator[0].weight - theta0["generator.0.weight"]).flatten(1).norm(dim=1)
    assert [float(r["drift"]) for r in rows] == pytest.approx(per_neuron.tolist(), rel=1e-5)

    # gradient norms: step 0 (due) and the last batch (11), equal to what the module saw at its first step there
    for which in ("generator", "critic"):
        tag = f"grad_norm/{which}/total"
        assert logger.steps(tag) == [0, 11]
        assert logger.values(tag)[11] == pytest.approx(model.norms[(11, which)], rel=1e-5)
        assert logger.values(f"grad_norm/{which}/nonfinite_count")[11] == 0
    assert logger.steps("grad_norm/generator/generator.0.weight") == [0, 11]  # per layer too

    # the loss-term decomposition: step 0 and once more on the last batch at the final weights (step 12)
    assert logger.steps("grad_norm/terms/supervised/total") == [0, 12]
    final = GradientNormMonitor().compute_term_gradients(model, model.last_batch)
    for key in ("grad_norm/terms/supervised/total", "grad_norm/terms/adversarial/total", "grad_norm/terms/sum/total"):
        assert logger.values(key)[12] == pytest.approx(final[key], rel=1e-5)


def test_early_stop_mid_epoch_still_logs_the_last_step(tmp_path) -> None:
    model = GradRecordingGAN(stop_after=6)  # stops after batch 5, inside the second epoch
    logger = RecordingLogger()
    trainer = make_trainer(
        tmp_path, max_epochs=5, logger=logger, callbacks=[GradientNormMonitor(every_n_steps=4), WeightDriftMonitor()]
    )
    trainer.fit(model)
    assert trainer.fit_loop.epoch_loop._batches_that_stepped == 6
    assert logger.steps("grad_norm/generator/total") == [0, 4, 5]
    assert logger.values("grad_norm/generator/total")[5] == pytest.approx(model.norms[(5, "generator")], rel=1e-5)
    assert logger.steps("weight_drift/generator.0/frobenius") == [0, 6]
    assert logger.values("weight_drift/generator.0/frobenius")[6] > 0


def test_final_step_already_logged_is_not_repeated(tmp_path) -> None:
    logger = RecordingLogger()
    grad, drift = GradientNormMonitor(every_n_steps=1, loss_terms_every_n_steps=0), WeightDriftMonitor(every_n_steps=2)
    make_trainer(tmp_path, max_epochs=1, limit_train_batches=4, logger=logger, callbacks=[grad, drift]).fit(MLP())
    assert logger.steps("grad_norm/net/total") == [0, 1, 2, 3]  # each once: the last batch was due
    assert logger.steps("weight_drift/net.0/frobenius") == [0, 2, 4]
    assert not any(t.startswith("grad_norm/terms/") for t in logger.tags())  # 0 disables, also at the end


class LastGradNaN(BoringModel):
    def on_after_backward(self) -> None:
        if self.trainer.fit_loop.epoch_loop._batches_that_stepped == 3:
            self.layer.weight.grad[0, 0] = float("nan")


def test_final_gradient_norms_with_a_nan_entry(tmp_path) -> None:
    logger = RecordingLogger()
    monitor = GradientNormMonitor(every_n_steps=2)
    make_trainer(tmp_path, max_epochs=1, limit_train_batches=4, logger=logger, callbacks=[monitor]).fit(LastGradNaN())
    assert logger.steps("grad_norm/layer/total") == [0, 2, 3]
    assert math.isnan(logger.values("grad_norm/layer/total")[3])
    assert math.isfinite(logger.values("grad_norm/layer/layer.bias")[3])
    # entries are not counted on undue steps: the count is left out rather than logged as NaN
    assert logger.steps("grad_norm/layer/nonfinite_count") == [0, 2]


def test_disabled_monitors_do_nothing(tmp_path) -> None:
    logger = RecordingLogger()
    callbacks = [
        GradientNormMonitor(every_n_steps=1, loss_terms_every_n_steps=1, enabled=False),
        WeightDriftMonitor(every_n_steps=1, enabled=False),
        TopologySnapshot(every_n_epochs=1, enabled=False),
    ]
    model = GradRecordingGAN()
    make_trainer(tmp_path, max_epochs=1, logger=logger, callbacks=callbacks).fit(model)
    assert model.norms  # training ran
    assert not any(t.split("/")[0] in {"grad_norm", "weight_drift", "topology"} for t in logger.tags())
    assert not (tmp_path / "weight_drift.csv").exists() and not (tmp_path / "topology").exists()


def test_callbacks_build_tags_with_the_tags_module() -> None:
    """No string constant in callbacks/ (outside tags.py and docstrings) starts with a monitor's tag prefix."""
    prefixes = ("grad_norm/", "grad_hist/", "weight_drift/", "topology/", "capacity/", "theory/")
    offenders = []
    for path in sorted(CALLBACKS.glob("*.py")):
        if path.name == "tags.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            if is_text and node.value.startswith(prefixes):
                offenders.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not offenders, offenders


def test_callbacks_do_not_import_aerogan() -> None:
    import subprocess
    import sys

    code = (
        "import sys, callbacks\n"
        "from callbacks.epochs_to_threshold import EpochsToThreshold\n"
        "bad = sorted(m for m in sys.modules if m == 'aerogan' or m.startswith('aerogan.'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=CALLBACKS.parent)
