"""``aerogan report`` on two tiny theory runs (supervised and regularized) fitted through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _tiny_config(tmp_path: Path, objective: str) -> Path:
    """The real theory config, shrunk: 6 epochs, width 16, n = 20, every monitor every epoch."""
    cfg = yaml.safe_load((REPO / "configs" / "theory" / f"two_layer_{objective}.yaml").read_text())
    trainer = cfg["trainer"]
    trainer.update({"max_epochs": 6, "check_val_every_n_epoch": 3, "log_every_n_steps": 1})
    trainer["logger"]["init_args"]["save_dir"] = str(tmp_path / "runs")
    cadences = {
        "GradientNormMonitor": {"every_n_steps": 1, "loss_terms_every_n_steps": 1},
        "WeightDriftMonitor": {"every_n_steps": 1, "table_every_n_epochs": 2},
        "TopologySnapshot": {
            "every_n_epochs": 100,
            "modules": ["generator.hidden"],
            "embedding": False,
            "max_neurons": 4,
            "top_k": 2,
        },
        "CapacityMonitor": {"every_n_epochs": 1},
        "TwoLayerTheoryMonitor": {"every_n_epochs": 1},
    }
    for cb in trainer["callbacks"]:
        cb.setdefault("init_args", {}).update(cadences.get(cb["class_path"].rsplit(".", 1)[-1], {}))
    model = cfg["model"]["init_args"]
    model["generator"]["init_args"]["width"] = 16
    model["critic"]["init_args"]["width"] = 16
    model["n_critic"] = 1
    model["lambda_adv"] = 20.0
    cfg["data"]["init_args"].update({"num_train": 20, "num_val": 10})
    path = tmp_path / f"{objective}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def two_runs(run_cli, tmp_path: Path) -> list[Path]:
    dirs = []
    for objective in ("supervised", "regularized"):
        cli = run_cli("fit", "--config", _tiny_config(tmp_path, objective))
        dirs.append(Path(cli.trainer.logger.log_dir))
    return dirs


def test_report_on_two_theory_runs(two_runs: list[Path], run_cli, tmp_path: Path) -> None:
    for run in two_runs:
        for name in ("theory.csv", "weight_drift.csv", "config.yaml"):
            assert (run / name).is_file(), (run, name)
    out = tmp_path / "report"
    assert run_cli("report", *two_runs, "--out", out) is None  # dispatched to aerogan.report.main
    for name in (
        "drift.png",
        "drift_layers.png",
        "reaction_diffusion.png",
        "grad_norms.png",
        "residual.png",
        "gram.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 5000, name
    text = (out / "report.md").read_text()
    assert "objective supervised" in text and "objective regularized" in text
    assert "Regularized vs supervised" in text and "generator.hidden" in text
    assert "Theory checks" in text and ("**holds**" in text or "**does not hold**" in text)
    assert text.count("- **") >= 10  # one bullet per claim, measurable or not
    assert "**not measurable**" in text  # a single width cannot show the 1/√m scaling
    assert not list(out.glob(".*"))  # no temporary left by the atomic writes
    # a folder above the run folders works too
    run_cli("report", tmp_path / "runs", "--out", tmp_path / "report2")
    assert (tmp_path / "report2" / "report.md").read_text().count("two_layer_") >= 2


def test_report_errors_on_empty_folder(tmp_path: Path) -> None:
    from aerogan.report import main

    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no run folder"):
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
