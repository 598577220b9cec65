"""``aerogan report`` on a study folder (``study.json`` only, synthetic numbers): the epochs table, the verdict of the
acceleration claim and the two study figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _summary(arch: str, objective: str, seed: int, epochs: int | None, cap: int = 20) -> dict:
    n = epochs or cap
    return {
        "architecture": arch, "objective": objective, "seed": seed, "epochs_to_threshold": epochs,
        "max_epochs": cap, "epochs_run": n, "best_value": 0.01, "total_time_s": 1.0, "threshold": 0.02,
        "monitor": "val/rmse", "rule": "linear_baseline", "factor": 1.0,
        "baselines": {"mean_baseline": 0.05, "linear_baseline": 0.02},
        "history": [{"epoch": e, "value": 0.05 / (e + 1)} for e in range(n)],
        "run_dir": f"/nonexistent/{arch}_{objective}_s{seed}/version_0",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("reg_epochs", "verdict"),
    [((3, 4, 2, 3), "**holds**"), ((3, 4, 12, None), "**does not hold**")],
)
def test_study_folder_report(tmp_path: Path, reg_epochs: tuple, verdict: str) -> None:
    from aerogan.report import main

    study = tmp_path / "study"
    study.mkdir()
    sup = (10, 12, 12, 14)
    runs = []
    for i, (arch, seed) in enumerate((("mlp_deep", 0), ("mlp_deep", 1), ("cnn_resnet", 0), ("cnn_resnet", 1))):
        runs += [_summary(arch, "supervised", seed, sup[i]), _summary(arch, "regularized", seed, reg_epochs[i])]
    (study / "study.json").write_text(json.dumps({"runs": runs}))
    main([str(study), "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Epochs-to-threshold study" in text and "MLP-Deep" in text and "CNN-ResNet" in text
    claim = next(line for line in text.splitlines() if line.startswith("- **Adversarial acceleration"))
    assert claim.endswith(f"{verdict}.")
    assert "Theory checks" not in text  # no theory run among the inputs
    for name in ("study_epochs.png", "study_curves.png"):
        assert (tmp_path / "out" / name).stat().st_size > 5000 and f"({name})" in text
