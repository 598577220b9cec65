"""End-to-end: ``aerogan fit/validate/test/predict`` through LightningCLI on a tiny config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.tb import load_events

TINY = Path(__file__).parent / "conf" / "tiny.yaml"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MONITOR_PREFIXES = ("grad_norm/", "weight_drift/", "topology/")


def _run_dir(root: Path) -> Path:
    runs = sorted((root / "runs" / "tiny").glob("version_*"))
    assert runs, f"no run folder under {root / 'runs' / 'tiny'}"
    return runs[-1]


def test_fit_validate_test_predict(run_cli, tmp_path: Path) -> None:
    cli = run_cli("fit", "--config", TINY)
    run = _run_dir(tmp_path)
    assert (run / "config.yaml").is_file()
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    # the generator got the data's band count and scale through the CLI links
    gen = cli.model.generator
    assert gen.conv_out.out_channels == 3
    assert cli.model.metadata["scale"] == 2

    events = load_events(run)
    scalars = set(events.Tags()["scalars"])
    for tag in [
        "train/supervised", "train/adversarial", "train/critic_loss", "train/critic_real", "train/critic_fake",
        "train/wasserstein", "train/gradient_penalty", "val/psnr", "val/psnr_bicubic", "val/psnr_gain",
        "val/ssim", "val/sam", "val/rmse",
    ]:
        assert tag in scalars, tag
    assert "samples/lr_sr_hr_error" in events.Tags()["images"]
    # the monitors every fit gets, with their final values (3 batches: shorter than any cadence)
    assert any(t.startswith("grad_norm/generator/") for t in scalars)
    assert any(t.startswith("grad_norm/critic/") for t in scalars)
    assert any(t.startswith("grad_norm/terms/supervised/") for t in scalars)
    assert any(t.startswith("weight_drift/generator.") for t in scalars)
    assert any(t.startswith("topology/") for t in events.Tags()["images"])
    assert [e.step for e in events.Scalars("grad_norm/generator/total")] == [0, 2]  # + the last batch
    drift = events.Scalars("weight_drift/generator.conv_out/frobenius")
    assert [e.step for e in drift] == [0, 3] and drift[0].value == 0.0 < drift[1].value  # + the final weights
    assert (run / "weight_drift.csv").is_file() and any((run / "topology").glob("*.png"))

    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert checkpoint["aerogan"]["scale"] == 2
    assert checkpoint["state_dict"]["input_norm.mean"].shape == (3,)

    val = run_cli("validate", "--config", TINY, "--ckpt_path", ckpt)
    assert "val/psnr" in val.trainer.callback_metrics
    test = run_cli("test", "--config", TINY, "--ckpt_path", ckpt)
    metrics = test.trainer.callback_metrics
    for key in ["test/psnr", "test/psnr_bicubic", "test/ergas", "test/ergas_bicubic", "test/ssim", "test/sam"]:
        assert key in metrics and torch.isfinite(metrics[key]), key
    pred = run_cli("predict", "--config", TINY, "--ckpt_path", ckpt)
    assert pred.trainer.state.fn == "predict" and pred.trainer.state.status == "finished"

    assert run_cli("export", "--ckpt_path", ckpt, "--out", tmp_path / "exported", "--format", "torchscript") is None
    exported = torch.jit.load(str(tmp_path / "exported" / "last.torchscript.pt"))
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(exported(lr), cli.model.eval().super_resolve(lr), rtol=1e-4, atol=1e-5)


def test_monitors_are_configured_and_switched_off_by_cli(run_cli, tmp_path: Path) -> None:
    cli = run_cli(
        "fit", "--config", TINY, "--monitors.topology.enabled", "false", "--monitors.gradient_norm.every_n_steps", "1"
    )
    names = [type(cb).__name__ for cb in cli.trainer.callbacks]
    assert "TopologySnapshot" not in names and {"GradientNormMonitor", "WeightDriftMonitor"} <= set(names)
    run = _run_dir(tmp_path)
    events = load_events(run)
    assert not any(t.startswith("topology/") for t in events.Tags()["images"])
    assert not (run / "topology").exists()
    assert [e.step for e in events.Scalars("grad_norm/generator/total")] == [0, 1, 2]


def test_monitor_listed_in_trainer_callbacks_is_refused(run_cli, tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "trainer:\n  callbacks:\n    - class_path: callbacks.WeightDriftMonitor\n      init_args: {every_n_steps: 5}\n"
    )
    message = r"lists callbacks.weight_drift.WeightDriftMonitor, which every fit already gets as `monitors\.weight_drift`"
    with pytest.raises(ValueError, match=message):
        run_cli("fit", "--config", TINY, "--config", extra)
    # switching the attached one off leaves the config's own
    cli = run_cli("fit", "--config", TINY, "--config", extra, "--monitors.weight_drift.enabled", "false")
    drift = [cb for cb in cli.trainer.callbacks if type(cb).__name__ == "WeightDriftMonitor"]
    assert len(drift) == 1 and drift[0].every_n_steps == 5


def test_print_config_lists_the_monitors(run_cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", CONFIGS / "landsat7_x2.yaml", "--print_config")
    out = capsys.readouterr().out
    monitors = out.split("\nmonitors:\n", 1)[1]
    for name in ("gradient_norm", "weight_drift", "topology"):
        assert f"  {name}:\n" in monitors, name
    assert "    every_n_steps: 25\n    per_layer: true" in monitors  # gradient norms every 25 batches
    assert "    table_every_n_epochs: 5\n" in monitors and "    every_n_epochs: 20\n" in monitors
    assert "ModelCheckpoint" in out and "callbacks.GradientNormMonitor" not in out
    # a research config tunes them in its own `monitors:` section
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", CONFIGS / "theory" / "two_layer_supervised.yaml", "--print_config")
    theory = capsys.readouterr().out.split("\nmonitors:\n", 1)[1]
    assert "    every_n_steps: 10\n" in theory and "    every_n_epochs: 1000\n" in theory


def test_landsat_config_fit_has_monitors(run_cli, shared_data: Path, tmp_path: Path) -> None:
    run_cli(
        "fit", "--config", CONFIGS / "landsat7_x2.yaml",
        "--data.init_args.paths", f"[{shared_data / 'landsat7_rgb_byte.tif'}]",
        "--data.init_args.samples_per_epoch", "8", "--data.init_args.batch_size", "4",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
        "--trainer.accelerator", "cpu",
    )  # fmt: skip
    run = sorted((tmp_path / "runs" / "landsat7_x2").glob("version_*"))[-1]
    events = load_events(run)
    scalars = events.Tags()["scalars"]
    for prefix in ("grad_norm/", "weight_drift/"):
        assert any(t.startswith(prefix) for t in scalars), prefix
    assert any(t.startswith("topology/") for t in events.Tags()["images"])
    assert (run / "checkpoints" / "last.ckpt").is_file()  # the base config's checkpoint still applies


def test_predict_returns_physical_sr(run_cli, tmp_path: Path) -> None:
    cli = run_cli("fit", "--config", TINY)
    model = cli.model.eval()
    dm = cli.datamodule
    batch = next(iter(dm.val_dataloader()))
    pair = dm.make_pair(batch["image"])
    out = model.predict_step(pair, 0)
    assert out.shape == pair["target"].shape
    # physical units: same order of magnitude as reflectance, not normalised values
    assert (out.mean() - pair["target"].mean()).abs() < 0.05


def test_print_config_shows_links_and_base(run_cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", TINY, "--print_config")
    out = capsys.readouterr().out
    assert "aerogan.SuperResolution" in out
    assert "TensorBoardLogger" in out  # from the base trainer config
    assert "ModelCheckpoint" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.init_args.patch_size", "15"], "patch_size=15 must be a positive multiple of data.scale=2"),
        (["--data.init_args.patch_size", "1"], "patch_size=1"),
        (["--data.init_args.input_bands", "[0, 7]"], "data.input_bands=[0, 7]"),
        (["--data.init_args.patch_size", "64"], "data.patch_size=64 is larger than data.scene_size=48"),
        (["--data.init_args.rgb_bands", "[0, 1, 5]"], "data.rgb_bands=[0, 1, 5]"),
        (["--model.init_args.generator.init_args.skip_bands", "[0, 9, 1]"], "skip_bands"),
    ],
)
def test_bad_configuration_stops_before_training(run_cli, args: list[str], message: str) -> None:
    with pytest.raises((ValueError, SystemExit)) as info:
        run_cli("fit", "--config", TINY, *args)
    assert message in str(info.value) or message in str(info.value.__context__)


def test_unknown_loss_name_is_rejected(run_cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli("fit", "--config", TINY, "--model.init_args.adversarial_loss", "wgan-xx")
    err = capsys.readouterr().err
    assert "adversarial_loss" in err and "wgan-gp" in err


RUN_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("name", RUN_CONFIGS)
def test_every_run_config_parses_with_the_monitors(name: str, run_cli, capsys: pytest.CaptureFixture[str]) -> None:
    """Each run config (templates included) is a valid LightningCLI config, and its runs get the monitors."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli("fit", "--config", CONFIGS / name, "--print_config")
    assert exit_info.value.code in (0, None)
    monitors = yaml.safe_load(capsys.readouterr().out)["monitors"]
    assert all(monitors[m]["enabled"] is True for m in ("gradient_norm", "weight_drift", "topology"))


@pytest.mark.parametrize("config", ["sentinel2_t2.yaml", "sentinel2_s6.yaml"])
def test_sentinel2_multires_configs_run_with_the_supervised_overlay(config: str, run_cli, shared_data: Path) -> None:
    """The guided configs train on the real crop (a few batches), regularized and with the supervised overlay."""
    sources = [str(shared_data / "sentinel2_multires" / Path(f).name)
               for f in yaml.safe_load((CONFIGS / config).read_text())["data"]["init_args"]["sources"]]
    for overlay in ([], ["--config", CONFIGS / "objective" / "supervised.yaml"]):
        cli = run_cli(
            "fit", "--config", CONFIGS / config, *overlay, "--data.init_args.sources", f"[{', '.join(sources)}]", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
            "--trainer.accelerator", "cpu", "--data.init_args.samples_per_epoch", "8", "--data.init_args.batch_size", "4",
            "--data.init_args.stats_cache_dir", "stats",
        )  # fmt: skip
        gen = cli.model.generator
        assert len(gen.guide_channels) == len(cli.datamodule.guide_band_names()) >= 1
        assert cli.trainer.callback_metrics["val/rmse"].isfinite()
        assert cli.model.objective == ("supervised" if overlay else "regularized")


def test_srgan_controls_overlay_trains_and_logs_the_ramp(run_cli, tmp_path: Path) -> None:
    """The controls overlay applies to any run: pretraining, a cosine ramp, RaGAN + R1 and the SAM term."""
    cli = run_cli(
        "fit", "--config", TINY, "--config", CONFIGS / "objective" / "srgan_controls.yaml",
        "--monitors.topology.enabled", "false", "--trainer.max_epochs", "2",
        "--model.init_args.pretrain_steps", "2", "--model.init_args.lambda_ramp_start", "2",
        "--model.init_args.lambda_ramp_steps", "3",
    )  # fmt: skip
    model = cli.model
    assert model.adversarial_weight(1) == 0.0 and model.adversarial_weight(5) == pytest.approx(model.lambda_adv)
    run = sorted((tmp_path / "runs" / "tiny").glob("version_*"))[-1]
    scalars = set(load_events(run).Tags()["scalars"])
    assert {"train/lambda_adv", "train/r1_penalty", "train/spectral_angle"} <= scalars
