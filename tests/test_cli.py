"""End-to-end: ``aerogan fit/validate/test/predict`` through LightningCLI on a tiny config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tb import load_events

TINY = Path(__file__).parent / "conf" / "tiny.yaml"


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
