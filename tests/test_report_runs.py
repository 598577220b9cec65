"""Loading runs for ``aerogan report``: run folders found by any marker file, tables read, tags from callbacks.tags."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest

from aerogan.report.runs import Run, drift_series, find_runs, layer_names, load_run, read_csv, tracked_layers
from callbacks import tags

REPORT = Path(__file__).resolve().parents[1] / "aerogan" / "report"


def _write_drift_csv(path: Path, layers: dict[str, float], steps: int = 3, neurons: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "layer", "neuron", "drift"])
        for s in range(steps):
            for layer, rate in layers.items():
                for j in range(neurons):
                    w.writerow([10 * s, s, layer, j, rate * s * (j + 1)])


def test_find_runs_by_any_marker(tmp_path: Path) -> None:
    _write_drift_csv(tmp_path / "runs" / "a" / "version_0" / "weight_drift.csv", {"generator.hidden": 1.0})
    theory = tmp_path / "runs" / "b" / "version_0" / "theory.csv"
    theory.parent.mkdir(parents=True)
    theory.write_text("epoch,step,t,residual,note\n0,0,0.0,2.0,x\n1,10,0.1,,y\n")
    _write_drift_csv(tmp_path / "runs" / "a" / ".weight_drift.csv.x1.tmp" / "weight_drift.csv", {"g.h": 1.0})  # staging
    runs, studies = find_runs([tmp_path / "runs"])
    assert [p.parent.name for p in runs] == ["a", "b"] and studies == []
    assert find_runs([runs[0]]) == ([runs[0]], [])  # a run folder itself
    with pytest.raises(SystemExit, match="does not exist"):
        find_runs([tmp_path / "missing"])
    table = read_csv(theory)
    assert np.isnan(table["residual"][1]) and table["residual"][0] == 2.0 and list(table["note"]) == ["x", "y"]


def test_load_run_reads_config_and_drift_table(tmp_path: Path) -> None:
    run_dir = tmp_path / "two_layer" / "version_3"
    _write_drift_csv(run_dir / "weight_drift.csv", {"generator.hidden": 1.0, "generator.output": 0.5})
    (run_dir / "config.yaml").write_text("model:\n  init_args:\n    objective: supervised\n")
    run = load_run(run_dir)
    assert run.objective == "supervised" and run.label == "two_layer/version_3 (supervised)"
    assert run.color == "tab:blue" and run.scalars == {} and run.theory is None
    assert tracked_layers(run) == ["generator.hidden", "generator.output"]
    assert layer_names([run]) == ("generator.hidden", "generator.output")
    epochs, frob = drift_series(run, "generator.output", "frob")  # type: ignore[misc]
    assert list(epochs) == [0.0, 1.0, 2.0]  # no epoch scalar, no theory.csv: the table's own epoch column
    expected = 0.5 * 2 * np.sqrt(sum((j + 1) ** 2 for j in range(4)))
    assert frob[-1] == pytest.approx(expected)
    assert drift_series(run, "generator.missing", "max") is None


def test_scalars_take_precedence_and_steps_map_to_epochs(tmp_path: Path) -> None:
    tag = tags.weight_drift_tag("net.fc", tags.FROBENIUS)
    run = Run(path=tmp_path, label="x", scalars={
        tag: (np.array([0, 5, 10]), np.array([0.0, 1.0, 2.0])),
        "epoch": (np.array([0, 10]), np.array([0.0, 2.0])),
    })  # fmt: skip
    assert tracked_layers(run) == ["net.fc"] and layer_names([run]) == ("net.fc", "net.fc")
    epochs, values = drift_series(run, "net.fc", "frob")  # type: ignore[misc]
    assert list(epochs) == [0.0, 1.0, 2.0] and list(values) == [0.0, 1.0, 2.0]


def test_report_has_no_literal_tag_strings() -> None:
    prefixes = tuple(f"{p}/" for p in (tags.GRAD_NORM, tags.GRAD_HIST, tags.WEIGHT_DRIFT, tags.TOPOLOGY, tags.CAPACITY, tags.THEORY))
    found = []
    for path in sorted(REPORT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(prefixes):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not found, found
