"""The epochs-to-converge study: its six generator configurations, the weight penalty, the threshold, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aerogan import AdversarialRegularization
from aerogan.nets import CNNDenseNet, CNNResNet, MLPDeep
from aerogan.study import ARCHITECTURES, _median_with_cap, load_study_preset, run_study
from datamodules.baselines import baseline_rmse

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "configs" / "study"


def _from_config(name: str, in_ch: int, out_ch: int, scale: int) -> torch.nn.Module:
    import importlib

    import yaml

    gen = yaml.safe_load((STUDY / f"{name}.yaml").read_text())["model"]["init_args"]["generator"]
    module, cls = gen["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)(in_ch, out_ch, scale, **gen.get("init_args", {}))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize(("in_ch", "out_ch", "scale"), [(4, 2, 1), (3, 3, 2)])
def test_study_architectures_shapes(name: str, in_ch: int, out_ch: int, scale: int) -> None:
    torch.manual_seed(0)
    net = _from_config(name, in_ch, out_ch, scale)
    out = net(torch.randn(2, in_ch, 9, 11))
    assert out.shape == (2, out_ch, 9 * scale, 11 * scale)
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_mlp_deep_is_per_pixel_with_six_layers() -> None:
    net = MLPDeep(4, 2, width=8)
    weights = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(weights) == 6 and all(m.kernel_size == (1, 1) for m in weights)
    assert any(isinstance(m, torch.nn.ELU) for m in net.modules())
    x = torch.randn(1, 4, 5, 5)
    y = torch.randn(1, 4, 5, 5)
    y[..., 2, 2] = x[..., 2, 2]
    assert torch.allclose(net(x)[..., 2, 2], net(y)[..., 2, 2])  # a pixel depends on its own input only


def test_weight_penalty_values_and_module_term() -> None:
    torch.manual_seed(0)
    plain = CNNDenseNet(4, 2, num_features=8, growth=4, num_layers=2, num_blocks=1)
    assert plain.regularization_loss() is None
    for kind, coef in (("l1", 1e-3), ("l2", 1e-2)):
        net = CNNDenseNet(
            4,
            2,
            num_features=8,
            growth=4,
            num_layers=2,
            num_blocks=1,
            weight_penalty=kind,
            weight_penalty_coef=coef,
        )
        convs = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        expected = coef * sum((w.abs() if kind == "l1" else w**2).sum() for w in convs)
        assert torch.allclose(net.regularization_loss(), expected)
        module = AdversarialRegularization(net, objective="supervised", supervised_loss="l1")
        batch = {"input": torch.randn(2, 4, 6, 6), "target": torch.randn(2, 2, 6, 6)}
        terms = module.loss_terms(batch)
        assert set(terms) == {"supervised", "weight_penalty"} and torch.allclose(
            terms["weight_penalty"], expected
        )
    with pytest.raises(ValueError, match="weight_penalty"):
        CNNResNet(4, 2, weight_penalty="l3")  # type: ignore[arg-type]


def test_median_with_cap() -> None:
    assert _median_with_cap([3, 5, None]) == 5
    assert _median_with_cap([None, None, 4]) is None
    assert _median_with_cap([2, 4]) == 3


def test_study_base_config_uses_the_callback() -> None:
    import yaml

    base = yaml.safe_load((STUDY / "base.yaml").read_text())
    paths = [cb["class_path"] for cb in base["trainer"]["callbacks"]]
    assert paths == ["callbacks.EpochsToThreshold"]


def test_tiny_study_on_sentinel2(shared_data: Path, tmp_path: Path) -> None:
    preset = load_study_preset("cpu")
    preset["overrides"] = [
        "--trainer.max_epochs=2",
        "--trainer.accelerator=cpu",
        f"--data.init_args.path={shared_data / 'sentinel2_l1c_scenes.npy'}",
        "--data.init_args.samples_per_epoch=16",
        "--model.init_args.n_critic=1",
    ]
    summaries = run_study(preset, tmp_path / "study", architectures=["mlp_deep"], seeds=[0])
    assert [(s["architecture"], s["objective"]) for s in summaries] == [
        ("mlp_deep", "supervised"),
        ("mlp_deep", "regularized"),
    ]
    for s in summaries:
        assert s["rule"] == "linear_baseline" and s["factor"] == 1.0
        assert s["threshold"] == pytest.approx(s["baselines"]["linear_baseline"])
        assert 0 < s["baselines"]["linear_baseline"] < s["baselines"]["mean_baseline"]
        assert len(s["history"]) == s["epochs_run"] and s["max_epochs"] == 2
        assert Path(s["run_dir"], "study_summary.json").is_file()
    # identical thresholds and initial weights for both objectives (same seed, same data)
    assert summaries[0]["threshold"] == pytest.approx(summaries[1]["threshold"], rel=1e-9)
    data = json.loads((tmp_path / "study" / "study.json").read_text())
    assert data["table"][0]["architecture"] == "mlp_deep"
    assert (tmp_path / "study" / "study.md").read_text().count("MLP-Deep") == 1
    # rerunning skips finished runs
    again = run_study(preset, tmp_path / "study", architectures=["mlp_deep"], seeds=[0])
    assert [s["run_dir"] for s in again] == [s["run_dir"] for s in summaries]
    # the report reads a study folder
    from aerogan.report import main as report

    report([str(tmp_path / "study"), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Epochs-to-threshold study" in text and (tmp_path / "report" / "study_epochs.png").is_file()


def test_baseline_rmse_matches_direct_fit(shared_data: Path) -> None:
    from datamodules import ArrayDataModule

    names = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    dm = ArrayDataModule(
        layout="channels_last", path=str(shared_data / "sentinel2_l1c_scenes.npy"), band_names=names, bin_factor=2,
        input_bands=["B02", "B03", "B04", "B08"], target_bands=["B11", "B12"], scale=1, patch_size=16,
        val_scenes=[3], test_scenes=[4],
    )  # fmt: skip
    dm.setup("fit")
    b = baseline_rmse(dm)
    # mean baseline by hand on the validation patches
    vals = torch.stack(
        [dm.datasets["val"][i]["image"][[4, 5]] for i in range(len(dm.datasets["val"]))]
    ).double()
    train_mean = (
        torch.stack([dm.datasets["train"][i]["image"][[4, 5]] for i in range(len(dm.datasets["train"]))])
        .double()
        .mean((0, 2, 3))
    )
    direct = ((vals - train_mean[None, :, None, None]) ** 2).mean((0, 2, 3)).sqrt()
    assert b["mean_baseline_per_band"] == pytest.approx(direct.tolist(), rel=1e-6)
    assert b["linear_baseline"] < b["mean_baseline"]


def test_study_with_two_seeds_gives_intervals_and_a_verdict(shared_data: Path, tmp_path: Path) -> None:
    """``aerogan study --seeds 2``: both seeds per objective, mean ± 95 % interval, a paired claim with its verdict."""
    from aerogan.cli import cli_main

    out = tmp_path / "study2"
    cli_main(["study", "--architectures", "mlp_deep", "--seeds", "2", "--out", str(out), "--",
              "--trainer.max_epochs=2", f"--data.init_args.path={shared_data / 'sentinel2_l1c_scenes.npy'}",
              "--data.init_args.samples_per_epoch=16", "--model.init_args.n_critic=1"])  # fmt: skip
    data = json.loads((out / "study.json").read_text())
    assert sorted((r["objective"], r["seed"]) for r in data["runs"]) == [
        ("regularized", 0), ("regularized", 1), ("supervised", 0), ("supervised", 1)]  # fmt: skip
    (row,) = data["table"]
    for obj in ("supervised", "regularized"):
        ci = row[f"{obj}_interval"]
        assert ci["n"] == 2 and ci["low"] is not None and ci["low"] <= ci["mean"] <= ci["high"]
    claim = row["claim"]
    assert claim["seeds"] == [0, 1] and claim["verdict"] in ("holds", "does not hold", "not resolved at this budget")
    md = (out / "study.md").read_text()
    assert claim["verdict"] in md and "mean" in md
