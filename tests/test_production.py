"""Production training: EMA, exact resume, non-finite stops, mixed precision, export, atomic writes."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aerogan import AdversarialRegularization, SuperResolution
from aerogan.checkpoint_io import AtomicCheckpointIO, atomic_torch_save
from aerogan.nets import PatchCritic, SRResNet
from callbacks import GradientNormMonitor, WeightDriftMonitor
from datamodules import SyntheticDataModule

QUIET = {"enable_progress_bar": False, "enable_model_summary": False}


def tiny_data(**kw) -> SyntheticDataModule:
    args = {"num_bands": 3, "scene_size": 32, "num_train_scenes": 2, "num_val_scenes": 1, "num_test_scenes": 1,
            "samples_per_epoch": 12, "patch_size": 16, "batch_size": 4, **kw}
    return SyntheticDataModule(**args)


def tiny_model(**kw) -> SuperResolution:
    torch.manual_seed(0)
    args = {"n_critic": 2, "num_panels": 0, **kw}
    return SuperResolution(SRResNet(3, 3, 2, num_features=8, num_blocks=1), PatchCritic(None, 8, 2), **args)


class Pairs(Dataset):
    def __init__(self, n: int = 8, nan_at: int | None = None, nan_key: str = "target") -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 5, generator=g)
        self.y = torch.randn(n, 3, generator=g)
        if nan_at is not None:
            (self.x if nan_key == "input" else self.y)[nan_at, 0] = float("nan")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input": self.x[i], "target": self.y[i]}


# ---------------------------------------------------------------------------------------------- EMA
class Recorder(L.Callback):
    def __init__(self) -> None:
        self.trajectory: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        state = pl_module.generator.state_dict()
        self.trajectory.append({k: v.detach().clone() for k, v in state.items()})


def test_ema_update_arithmetic_includes_buffers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    m = AdversarialRegularization(gen, nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), ema_decay=0.9, n_critic=1,
                                  adversarial_loss="wgan", optimizer_g=partial(torch.optim.SGD, lr=0.1))
    rec = Recorder()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, logger=False, enable_checkpointing=False,
                        default_root_dir=tmp_path, callbacks=[rec], **QUIET)
    trainer.fit(m, DataLoader(Pairs(n=12), batch_size=4))
    expected = {k: v.clone().float() for k, v in rec.trajectory[0].items()}  # the first update copies
    for state in rec.trajectory[1:]:
        for k, v in state.items():
            if v.is_floating_point():
                expected[k] = 0.9 * expected[k] + 0.1 * v
    ema = m.generator_ema.module.state_dict()
    for k in ("0.weight", "2.bias", "1.running_mean", "1.running_var"):
        torch.testing.assert_close(ema[k], expected[k], msg=k)
    assert not torch.allclose(ema["0.weight"], m.generator.state_dict()["0.weight"])
    assert m.inference_generator is m.generator_ema.module
    assert not any(p.requires_grad for p in m.generator_ema.parameters())


def test_ema_is_used_for_validation_and_saved(tmp_path: Path) -> None:
    dm = tiny_data()
    model = tiny_model(ema_decay=0.5)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, default_root_dir=tmp_path,
                        callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)], **QUIET)
    trainer.fit(model, dm)
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert any(k.startswith("generator_ema.module.") for k in ckpt["state_dict"])
    loaded = SuperResolution.load_from_checkpoint(tmp_path / "last.ckpt", generator=SRResNet(3, 3, 2, 8, 1),
                                                  critic=PatchCritic(None, 8, 2), ema_decay=0.5)
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded.super_resolve(x), model.super_resolve(x))
    ema_out = model.target_norm.inverse(model.generator_ema.module(model.input_norm(x)))
    torch.testing.assert_close(model.super_resolve(x), ema_out)


# ---------------------------------------------------------------------------------------------- resume
def _fit(tmp_path: Path, max_epochs: int, ckpt_path: str | None = None) -> tuple[SuperResolution, WeightDriftMonitor]:
    L.seed_everything(7, verbose=False)
    model = tiny_model(ema_decay=0.8)
    drift = WeightDriftMonitor(every_n_steps=1)
    trainer = L.Trainer(
        max_epochs=max_epochs, limit_val_batches=1, logger=False, default_root_dir=tmp_path, deterministic=True,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True), drift, GradientNormMonitor(every_n_steps=1, loss_terms_every_n_steps=2)],
        plugins=[AtomicCheckpointIO()], **QUIET,
    )
    trainer.fit(model, tiny_data(), ckpt_path=ckpt_path)
    return model, drift


def test_resume_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    full, full_drift = _fit(tmp_path / "full", max_epochs=4)
    _fit(tmp_path / "split", max_epochs=2)
    resumed, resumed_drift = _fit(tmp_path / "split", max_epochs=4, ckpt_path=str(tmp_path / "split" / "ckpt" / "last.ckpt"))
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert int(resumed.batches_seen) == int(full.batches_seen) == 12
    for layer in full_drift.per_neuron_drift():
        torch.testing.assert_close(resumed_drift.reference(layer), full_drift.reference(layer), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- failures
def test_nan_in_the_data_stops_with_the_term_and_a_loadable_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = AdversarialRegularization(nn.Linear(5, 3), None, objective="supervised", supervised_loss="mse",
                                  optimizer_g=partial(torch.optim.SGD, lr=0.1))
    trainer = L.Trainer(max_epochs=1, logger=False, default_root_dir=tmp_path,
                        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt")], **QUIET)
    with pytest.raises(FloatingPointError) as info:
        trainer.fit(m, DataLoader(Pairs(n=12, nan_at=5), batch_size=4))
    message = str(info.value)
    assert "non-finite supervised, generator gradient at batch 1" in message
    saved = tmp_path / "ckpt" / "last-finite-batch1.ckpt"
    assert str(saved) in message
    state = torch.load(saved, weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())
    assert not torch.equal(state["generator.weight"], nn.Linear(5, 3).weight)  # batch 0 was trained


def test_nan_reaching_the_critic_names_its_terms(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = AdversarialRegularization(nn.Linear(5, 3), nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), n_critic=1,
                                  optimizer_g=partial(torch.optim.SGD, lr=0.1), optimizer_d=partial(torch.optim.SGD, lr=0.1))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path, **QUIET)
    with pytest.raises(FloatingPointError, match=r"non-finite critic_fake, critic_loss, critic gradient at batch 2 .*stepping the critic"):
        trainer.fit(m, DataLoader(Pairs(n=12, nan_at=9, nan_key="input"), batch_size=4))
    assert (tmp_path / "last-finite-batch2.ckpt").is_file()


def test_critic_collapse_is_reported(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = AdversarialRegularization(nn.Linear(5, 3), nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), adversarial_loss="wgan",
                                  n_critic=1, critic_score_limit=1e-3, optimizer_d=partial(torch.optim.SGD, lr=0.1))
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path, **QUIET)
    with pytest.warns(UserWarning, match="critic scores diverge"):
        trainer.fit(m, DataLoader(Pairs(n=8), batch_size=4))


def test_atomic_save_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"a": 1}, target)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"b": Boom()}, target)
    assert torch.load(target, weights_only=True) == {"a": 1}  # the previous checkpoint survives intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind


# ---------------------------------------------------------------------------------------------- precision
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_fit_on_cpu(tmp_path: Path, precision: str) -> None:
    model = tiny_model()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, precision=precision, logger=False,
                        log_every_n_steps=1, enable_checkpointing=False, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model, tiny_data())
    logged = trainer.logged_metrics
    for key in ("train/gradient_penalty", "train/supervised", "train/adversarial", "val/psnr"):
        assert torch.isfinite(logged[key]), key
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- export
def test_export_round_trips(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from aerogan.export import export_onnx, export_torchscript

    dm = tiny_data()
    model = tiny_model(ema_decay=0.5)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        default_root_dir=tmp_path, **QUIET)
    trainer.fit(model, dm)
    model.eval()
    x = 0.1 + 0.05 * torch.rand(2, 3, 12, 10)  # another size than the tracing example
    with torch.no_grad():
        expected = model.super_resolve(x)

    ts = export_torchscript(model, tmp_path / "g.pt", example_size=16)
    files = {"aerogan.json": ""}
    loaded = torch.jit.load(str(ts), _extra_files=files)
    meta = json.loads(files["aerogan.json"])
    assert meta["scale"] == 2 and meta["in_channels"] == 3 and meta["ema"] is True
    assert meta["input_mean"] == pytest.approx(model.input_norm.mean.tolist())
    torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-6)

    onnx_path = export_onnx(model, tmp_path / "g.onnx", example_size=16)
    session = ort.InferenceSession(str(onnx_path))
    (out,) = session.run(None, {"lr": x.numpy()})
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-4, atol=1e-5)
    props = {p.key: json.loads(p.value) for p in __import__("onnx").load(str(onnx_path)).metadata_props}
    assert props["target_band_names"] == model.metadata["target_band_names"]
