"""Guided super-resolution end to end: guides reach the generator (and a conditional critic) in every
step, their statistics travel in the checkpoint, the CLI links guide groups from the data, and the
single-input ablation switch gives the same data without guides."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from aerogan import SuperResolution
from aerogan.metrics import Consistency, SignalToReconstructionError
from aerogan.nets import DSen2, PatchCritic
from datamodules.multires import MultiResolutionDataModule
from tests.data.multires import GROUPS, write_group_rasters

T2 = {"target_bands": GROUPS[20], "guide_bands": [GROUPS[10]]}


def datamodule(files: list[Path], tmp_path: Path, **kw) -> MultiResolutionDataModule:
    args = {"patch_size": 8, "batch_size": 2, "val_fraction": 0.25, "test_fraction": 0.25, "samples_per_epoch": 4,
            "split_gap": 2, "stats_cache_dir": str(tmp_path / "cache"), **T2, **kw}
    return MultiResolutionDataModule([str(f) for f in files], **args)


def guided_model(guides: bool = True, condition: bool = False, objective: str = "regularized") -> SuperResolution:
    torch.manual_seed(0)
    gen = DSen2(in_channels=6, out_channels=6, scale=2, num_features=8, num_blocks=1,
                guide_channels=[4] if guides else [], guide_ratios=[1] if guides else [])
    critic = PatchCritic(num_features=4, num_layers=2, condition=condition) if objective != "supervised" else None
    return SuperResolution(generator=gen, critic=critic, objective=objective, n_critic=1, num_panels=0)


def trainer(tmp_path: Path, **kw) -> L.Trainer:
    args = {"max_epochs": 1, "accelerator": "cpu", "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(tmp_path), "enable_checkpointing": False, **kw}
    return L.Trainer(**args)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    return write_group_rasters(tmp_path / "scene", crs=None)[:2]


def test_guides_reach_the_generator_and_travel_in_the_checkpoint(files: list[Path], tmp_path: Path) -> None:
    dm = datamodule(files, tmp_path)
    model = guided_model(condition=True)
    seen: list[int] = []
    forward = model.generator.forward
    model.generator.forward = lambda x, guides=(): (seen.append(len(guides)), forward(x, guides))[1]
    t = trainer(tmp_path)
    t.fit(model, datamodule=dm)
    assert seen and set(seen) == {1}  # every generator call of the fit had the 10 m guide
    stats = dm.statistics()
    torch.testing.assert_close(model.guide_norms[0].mean, stats["guide_mean"][0])
    assert model.metadata["guide_band_names"] == [GROUPS[10]] and model.metadata["guide_ratios"] == [1]
    del model.generator.forward
    path = tmp_path / "guided.ckpt"
    t.save_checkpoint(path)
    loaded = SuperResolution.load_from_checkpoint(path, generator=guided_model().generator, critic=guided_model(condition=True).critic)
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        want = model.super_resolve(batch["input"], batch["guides"])
        got = loaded.super_resolve(batch["input"], batch["guides"])
    torch.testing.assert_close(got, want)
    assert loaded.metadata["guide_band_names"] == [GROUPS[10]]
    # the guide changes the output: it is really used
    with torch.no_grad():
        other = loaded.super_resolve(batch["input"], [batch["guides"][0] + 500.0])
    assert not torch.allclose(other, got)
    with pytest.raises(ValueError, match="guide group"):
        loaded.super_resolve(batch["input"], [])


def test_a_single_input_net_on_guided_data_is_refused(files: list[Path], tmp_path: Path) -> None:
    dm = datamodule(files, tmp_path)
    with pytest.raises(ValueError, match="guide_channels"):
        trainer(tmp_path).fit(guided_model(guides=False), datamodule=dm)


def test_use_guides_false_is_the_single_input_ablation(files: list[Path], tmp_path: Path) -> None:
    dm = datamodule(files, tmp_path, use_guides=False)
    assert dm.guide_channels == [] and dm.guide_ratios == [] and dm.scale == 2
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["guides"] == [] and batch["input"].shape[-1] * 2 == batch["target"].shape[-1]
    model = guided_model(guides=False)
    trainer(tmp_path).fit(model, datamodule=dm)
    assert len(model.guide_norms) == 0 and "guide_band_names" not in model.metadata


def test_conditional_critic_penalty_differentiates_the_judged_bands_only(files: list[Path], tmp_path: Path) -> None:
    dm = datamodule(files, tmp_path)
    model = guided_model(condition=True)
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    model.input_norm.set(*[dm.statistics()[k] for k in ("input_mean", "input_std")])
    model.target_norm.set(*[dm.statistics()[k] for k in ("target_mean", "target_std")])
    model.guide_norms[0].set(dm.statistics()["guide_mean"][0], dm.statistics()["guide_std"][0])
    x, y = model.prepare_batch(batch)
    guides = model.prepare_guides(batch)
    fake = model.generate(x, guides).detach()
    eps = torch.full((y.shape[0],), 0.3)
    out = model.critic_step(y, fake, eps=eps, guides=guides)
    # by hand: the penalty of g(. | guides) at the mixed point, gradient w.r.t. the bands only
    mixed = (0.3 * y + 0.7 * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.critic(mixed, guides).sum(), mixed)
    want = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
    torch.testing.assert_close(out["gradient_penalty"], want.detach())
    out["critic_loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.critic.parameters())
    # the conditional critic's scores depend on the guide
    assert not torch.allclose(model.judge(y, guides), model.judge(y, (guides[0] + 1.0,)))


def cli_args(files: list[Path]) -> list[str]:
    return [
        "--model", "aerogan.SuperResolution", "--model.generator", "aerogan.nets.DSen2",
        "--model.generator.num_features", "8", "--model.generator.num_blocks", "1",
        "--model.critic", "aerogan.nets.PatchCritic", "--model.critic.num_features", "4",
        "--data", "datamodules.MultiResolutionDataModule",
        "--data.sources", f"[{files[0]}, {files[1]}]",
        "--data.target_bands", "[B05, B06, B07, B8A, B11, B12]", "--data.guide_bands", "[[B02, B03, B04, B08]]",
        "--data.patch_size", "8", "--data.batch_size", "2", "--data.samples_per_epoch", "4",
        "--data.val_fraction", "0.25", "--data.test_fraction", "0.25", "--data.split_gap", "2",
    ]


def test_cli_links_guide_groups_from_the_data(files: list[Path], run_cli) -> None:
    cli = run_cli("fit", "--trainer.fast_dev_run", "1", "--trainer.logger", "false", "--trainer.callbacks", "[]",
                  "--monitors.topology.enabled", "false", *cli_args(files))
    gen = cli.model.generator
    assert gen.guide_channels == (4,) and gen.guide_ratios == (1,)
    assert cli.model.metadata["guide_band_names"] == [GROUPS[10]]


def test_cli_predict_writes_the_product(files: list[Path], run_cli, tmp_path: Path) -> None:
    """``aerogan predict`` on multi-resolution data writes one product per scene: every band on the fine grid."""
    rasterio = pytest.importorskip("rasterio")
    fit = run_cli("fit", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
                  "--trainer.enable_progress_bar", "false", *cli_args(files))
    ckpt = Path(fit.trainer.checkpoint_callback.last_model_path)
    assert ckpt.is_file()
    with pytest.raises(ValueError, match="ckpt_path"):
        run_cli("predict", *cli_args(files))
    run_cli("predict", *cli_args(files), "--data.output_dir", str(tmp_path / "out"), "--data.tile", "16", "--ckpt_path", str(ckpt))
    out = tmp_path / "out" / "S2_sr.tif"
    with rasterio.open(out) as dst, rasterio.open(files[0]) as fine:
        assert dst.descriptions == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
        assert (dst.height, dst.width) == (fine.height, fine.width) and dst.transform == fine.transform
        assert (dst.read(1) == fine.read(1)).all()  # the 10 m bands are copied unchanged


def test_sre_matches_the_formula() -> None:
    torch.manual_seed(0)
    y = torch.rand(3, 2, 5, 5) + 1.0
    p = y + 0.1 * torch.randn_like(y)
    m = SignalToReconstructionError(2)
    m.update(p[:2], y[:2])
    m.update(p[2:], y[2:])
    want = [10 * torch.log10(y[:, b].double().mean() ** 2 / ((p[:, b] - y[:, b]).double() ** 2).mean()) for b in range(2)]
    torch.testing.assert_close(m.compute(), torch.stack(want))


def test_consistency_is_zero_exactly_when_the_block_means_are_the_input() -> None:
    torch.manual_seed(0)
    lr = torch.rand(2, 3, 4, 4) + 0.5
    m = Consistency(3, ratio=2)
    m.update(F.interpolate(lr, scale_factor=2, mode="nearest"), lr)  # block means equal the input
    out = m.compute()
    assert out["rmse"].abs().max() < 1e-12 and out["sam"] < 1e-5
    m.reset()
    m.update(F.interpolate(lr, scale_factor=2, mode="nearest") + 0.1, lr)
    torch.testing.assert_close(m.compute()["rmse"], torch.full((3,), 0.1, dtype=torch.float64))
