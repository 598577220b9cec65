"""WeightDriftMonitor: known drift, cadence, table, resume, missing TensorBoard, non-finite weights."""

from __future__ import annotations

import math
import os

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from test_callbacks_models import MLP, RecordingLogger, TinyGAN, make_trainer, read_csv

from callbacks import CapacityMonitor, TopologySnapshot, WeightDriftMonitor

# expected when a test runs without TensorBoard; asserted where it matters
pytestmark = pytest.mark.filterwarnings("ignore:.*no TensorBoardLogger in:UserWarning")


class ShiftedMLP(MLP):
    """Frozen training (lr = 0); adds ``delta`` to row 3 of ``net.0.weight`` once θ0 has been captured."""

    def __init__(self, delta: float) -> None:
        super().__init__(lr=0.0)
        self.delta = delta

    def on_train_start(self) -> None:  # after every callback's on_fit_start
        with torch.no_grad():
            self.net[0].weight[3] += self.delta


def test_known_drift_scalars_and_table(tmp_path) -> None:
    delta = 0.25
    model = ShiftedMLP(delta)
    w0_norm = float(model.net[0].weight.detach().norm())
    logger = RecordingLogger()
    monitor = WeightDriftMonitor(every_n_steps=1, top_k=3)
    trainer = make_trainer(tmp_path, max_epochs=1, limit_train_batches=2, logger=logger, callbacks=[monitor])
    trainer.fit(model)

    expected = delta * math.sqrt(64)  # δ on each of the 64 inputs of neuron 3
    values = {tag: logger.values(tag)[0] for tag in logger.tags()}
    assert values["weight_drift/net.0/frobenius"] == pytest.approx(expected, rel=1e-5)
    assert values["weight_drift/net.0/relative"] == pytest.approx(expected / w0_norm, rel=1e-5)
    assert values["weight_drift/net.0/max"] == pytest.approx(expected, rel=1e-5)
    assert values["weight_drift/net.0/mean"] == pytest.approx(expected / 16, rel=1e-5)
    assert values["weight_drift/net.0/top1"] == pytest.approx(expected, rel=1e-5)
    assert values["weight_drift/net.0/top2"] == 0.0
    assert values["weight_drift/net.0/nonfinite_count"] == 0
    assert values["weight_drift/net.2/frobenius"] == 0.0
    assert "weight_drift/net.0/top4" not in values

    rows = read_csv(tmp_path / "weight_drift.csv")  # no TB/CSV logger: the run folder is default_root_dir
    assert list(rows[0]) == ["step", "epoch", "layer", "neuron", "drift"]
    assert {r["step"] for r in rows} == {"2"} and len(rows) == 16 + 10
    drift = {int(r["neuron"]): float(r["drift"]) for r in rows if r["layer"] == "net.0"}
    assert drift[3] == pytest.approx(expected, rel=1e-6)
    assert all(v == 0.0 for j, v in drift.items() if j != 3)


def test_cadence_and_table_schedule_on_boring_model(tmp_path) -> None:
    logger = RecordingLogger()
    monitor = WeightDriftMonitor(every_n_steps=2, table_every_n_epochs=2)
    trainer = make_trainer(tmp_path, max_epochs=3, limit_train_batches=4, logger=logger, callbacks=[monitor])
    trainer.fit(BoringModel())
    assert logger.steps("weight_drift/layer/frobenius") == [0, 2, 4, 6, 8, 10, 12]  # 12: the final weights
    assert logger.values("weight_drift/layer/frobenius")[0] == 0.0
    assert "weight_drift/layer/top2" in logger.tags() and "weight_drift/layer/top3" not in logger.tags()
    rows = read_csv(tmp_path / "weight_drift.csv")
    # after the 2nd epoch (step 8) and at the end of training (step 12); BoringModel's layer has 2 neurons
    assert [(r["step"], r["epoch"], r["neuron"]) for r in rows] == [
        ("8", "2", "0"),
        ("8", "2", "1"),
        ("12", "3", "0"),
        ("12", "3", "1"),
    ]


class ThetaRecorder(TinyGAN):
    def on_train_start(self) -> None:
        self.theta0 = {n: p.detach().clone() for n, p in self.named_parameters()}


def test_conv_neurons_on_gan(tmp_path) -> None:
    model = ThetaRecorder()
    monitor = WeightDriftMonitor(every_n_steps=1, modules=["generator"])
    make_trainer(tmp_path, max_epochs=1, limit_train_batches=3, callbacks=[monitor]).fit(model)
    drifts = monitor.per_neuron_drift()
    assert set(drifts) == {"generator.0", "generator.4"}  # convs only: no BatchNorm, no critic
    for name in drifts:
        w, w0 = dict(model.named_parameters())[f"{name}.weight"], model.theta0[f"{name}.weight"]
        expected = (w - w0).flatten(1).norm(dim=1)  # per output channel
        torch.testing.assert_close(drifts[name], expected)
        assert torch.equal(monitor.reference(name), w0)


def _fit_with_checkpoint(root, epochs: int, ckpt_path=None):
    drift = WeightDriftMonitor(every_n_steps=2)
    capacity = CapacityMonitor()
    topology = TopologySnapshot(every_n_epochs=5, embedding=False, top_k=2, max_neurons=4, modules=["net.2"])
    checkpoint = ModelCheckpoint(dirpath=root / "ckpt", save_last=True)
    trainer = make_trainer(
        root,
        max_epochs=epochs,
        limit_train_batches=4,
        enable_checkpointing=True,
        callbacks=[drift, capacity, topology, checkpoint],
    )
    model = MLP()
    trainer.fit(model, ckpt_path=ckpt_path)
    return model, drift, capacity, topology


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_resume_keeps_theta0_and_appends_table(tmp_path) -> None:
    torch.manual_seed(0)
    _, drift1, capacity1, topology1 = _fit_with_checkpoint(tmp_path, epochs=2)
    theta0 = drift1.reference("net.0").clone()
    last = tmp_path / "ckpt" / "last.ckpt"
    trained = torch.load(last, weights_only=True)["state_dict"]["net.0.weight"]
    assert not torch.equal(trained, theta0)

    torch.manual_seed(1)  # a different fresh init: resume must not take θ0 from it
    model2, drift2, capacity2, topology2 = _fit_with_checkpoint(tmp_path, epochs=3, ckpt_path=str(last))
    assert torch.equal(drift2.reference("net.0"), theta0)
    assert torch.equal(capacity2._u0, theta0)
    assert torch.equal(topology2._reference("net.2"), drift1.reference("net.2"))
    assert not torch.equal(model2.net[0].weight.detach(), theta0)

    with open(tmp_path / "weight_drift.csv") as f:
        lines = f.read().splitlines()
    assert sum(line.startswith("step,") for line in lines) == 1  # header written once
    steps = sorted({int(r["step"]) for r in read_csv(tmp_path / "weight_drift.csv")})
    assert steps == [4, 8, 12]
    # the resumed run draws no second t = 0 picture
    expected = {f"net.2_{kind}_epoch{e:04d}.png" for e in (0, 2, 3) for kind in ("tiles", "top_drift")}
    expected |= {f"net.2_epoch{e:04d}.npz" for e in (0, 2, 3)}
    assert set(os.listdir(tmp_path / "topology")) == expected


@pytest.mark.parametrize("logger_kind", ["none", "csv"])
def test_without_tensorboard_warns_once_and_writes_files(tmp_path, logger_kind) -> None:
    logger = CSVLogger(tmp_path / "csv") if logger_kind == "csv" else False
    drift = WeightDriftMonitor(every_n_steps=1, histogram=True)
    topology = TopologySnapshot(every_n_epochs=1, embedding=False, top_k=2, max_neurons=4, modules=["net.0"])
    trainer = make_trainer(
        tmp_path, max_epochs=2, limit_train_batches=2, logger=logger, callbacks=[drift, topology]
    )
    with pytest.warns(UserWarning) as record:
        trainer.fit(MLP())
    messages = [str(w.message) for w in record if "TensorBoardLogger" in str(w.message)]
    assert sum(m.startswith("WeightDriftMonitor") for m in messages) == 1
    assert sum(m.startswith("TopologySnapshot") for m in messages) == 1

    folder = tmp_path / "csv" / "lightning_logs" / "version_0" if logger_kind == "csv" else tmp_path
    assert (folder / "weight_drift.csv").is_file()
    assert len(list((folder / "topology").glob("*.png"))) == 3 * 2  # epochs 0, 1, 2 x (tiles, top_drift)
    if logger_kind == "csv":
        metrics = read_csv(folder / "metrics.csv")
        assert any(r.get("weight_drift/net.0/frobenius") for r in metrics)


class NaNWeightMLP(MLP):
    def on_train_start(self) -> None:
        with torch.no_grad():
            self.net[0].weight[5, 7] = float("nan")


def test_nonfinite_weights_are_counted(tmp_path) -> None:
    logger = RecordingLogger()
    drift = WeightDriftMonitor(every_n_steps=1)
    callbacks = [drift, CapacityMonitor(), TopologySnapshot(every_n_epochs=1, top_k=2, max_neurons=4)]
    trainer = make_trainer(tmp_path, max_epochs=1, limit_train_batches=3, logger=logger, callbacks=callbacks)
    trainer.fit(NaNWeightMLP())
    counts = logger.values("weight_drift/net.0/nonfinite_count")
    assert counts[0] == 1 and counts[2] > 1  # NaN spreads through training; nothing raised
    assert math.isnan(logger.values("weight_drift/net.0/frobenius")[0])
    assert logger.values("weight_drift/net.2/nonfinite_count")[0] == 0
    rows = read_csv(tmp_path / "weight_drift.csv")
    assert any(r["drift"] == "nan" for r in rows)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"every_n_steps": 0},
        {"top_k": -1},
        {"table_every_n_epochs": 0},
        {"modules": "generator"},
        {"modules": []},
    ],
)
def test_invalid_arguments(kwargs) -> None:
    with pytest.raises(MisconfigurationException):
        WeightDriftMonitor(**kwargs)


def test_unknown_module_raises(tmp_path) -> None:
    trainer = make_trainer(tmp_path, limit_train_batches=1, callbacks=[WeightDriftMonitor(modules=["nope"])])
    with pytest.raises(MisconfigurationException, match="nope"):
        trainer.fit(BoringModel())


def test_state_key_and_state_dict_roundtrip() -> None:
    a, b = WeightDriftMonitor(modules=["generator"]), WeightDriftMonitor(modules=["critic"])
    assert a.state_key != b.state_key
    a._theta0 = {"generator.0": torch.ones(2, 3)}
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.reference("generator.0"), torch.ones(2, 3))
