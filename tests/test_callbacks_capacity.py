"""CapacityMonitor: values against an independent computation, schedule, layer detection."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from test_callbacks_models import MLP, RecordingLogger, TinyGAN, make_trainer

from callbacks import CapacityMonitor

# expected when a test runs without TensorBoard; asserted where it matters
pytestmark = pytest.mark.filterwarnings("ignore:.*no TensorBoardLogger in:UserWarning")


class RecordingMLP(MLP):
    def on_train_start(self) -> None:
        self.u0 = self.net[0].weight.detach().clone()
        self.v0 = self.net[2].weight.detach().clone()


def _expected(u0: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> dict[str, float]:
    spectral = float(torch.linalg.svdvals(u0)[0]) * float(v.norm())
    drift = float((u - u0).norm()) * float(v.norm())
    sqrt_h = math.sqrt(u.shape[0])
    return {
        "capacity/u0_spectral_x_v_frob": spectral,
        "capacity/drift_frob_x_v_frob": drift,
        "capacity/sqrt_h": sqrt_h,
        "capacity/total": spectral + drift + sqrt_h,
    }


def test_values_and_schedule(tmp_path) -> None:
    model = RecordingMLP(hidden=16)
    logger = RecordingLogger()
    monitor = CapacityMonitor(every_n_epochs=2)
    trainer = make_trainer(tmp_path, max_epochs=4, limit_train_batches=2, logger=logger, callbacks=[monitor])
    trainer.fit(model)

    assert logger.steps("capacity/total") == [0, 4, 8]  # t = 0, after epochs 2 and 4
    at_start = _expected(model.u0, model.u0, model.v0)
    assert at_start["capacity/drift_frob_x_v_frob"] == 0.0
    for tag, value in at_start.items():
        assert logger.values(tag)[0] == pytest.approx(value, rel=1e-5)
    u, v = model.net[0].weight.detach(), model.net[2].weight.detach()
    for tag, value in _expected(model.u0, u, v).items():
        assert logger.values(tag)[8] == pytest.approx(value, rel=1e-5)
        assert monitor.last_metrics[tag] == pytest.approx(value, rel=1e-5)
    assert logger.values("capacity/sqrt_h")[8] == 4.0


def test_explicit_names_on_gan(tmp_path) -> None:
    monitor = CapacityMonitor(hidden="critic.3", output="critic.5")
    make_trainer(tmp_path, max_epochs=1, limit_train_batches=2, callbacks=[monitor]).fit(TinyGAN())
    assert monitor.last_metrics["capacity/sqrt_h"] == 4.0
    assert monitor._u.name == "critic.3" and monitor._v.name == "critic.5"


def test_no_layer_pair_warns_and_logs_nothing(tmp_path) -> None:
    logger = RecordingLogger()
    monitor = CapacityMonitor()
    trainer = make_trainer(tmp_path, max_epochs=2, limit_train_batches=2, logger=logger, callbacks=[monitor])
    with pytest.warns(UserWarning, match="CapacityMonitor") as record:
        trainer.fit(BoringModel())  # a single Linear layer
    assert sum("CapacityMonitor" in str(w.message) for w in record) == 1
    assert not any(t.startswith("capacity/") for t in logger.tags())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"hidden": "net.1"}, "net.1"), ({"hidden": "net.2", "output": "net.0"}, "inputs")],
)
def test_bad_layer_names_raise(tmp_path, kwargs, match) -> None:
    trainer = make_trainer(tmp_path, limit_train_batches=1, callbacks=[CapacityMonitor(**kwargs)])
    with pytest.raises(MisconfigurationException, match=match):
        trainer.fit(MLP())


def test_invalid_arguments() -> None:
    with pytest.raises(MisconfigurationException):
        CapacityMonitor(every_n_epochs=0)
    with pytest.raises(MisconfigurationException):
        CapacityMonitor(hidden="")
