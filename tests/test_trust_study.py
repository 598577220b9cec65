"""The "does the critic invent detail?" runner: the grid, the deltas and sentences, bad input, one tiny end-to-end study."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from aerogan.trust_study import (
    COLUMNS,
    METRICS,
    Cell,
    format_lambda,
    grid,
    load_trust_preset,
    main,
    markdown,
    select_tasks,
    summarize,
)


# ------------------------------------------------------------------------------------------------ pure parts
def test_grid_is_eight_runs_per_task() -> None:
    specs = grid(load_trust_preset("cpu"))
    assert [s.name for s in specs] == [
        "supervised", "supervised_proj",
        "regularized_1e-3", "regularized_1e-3_proj",
        "regularized_1e-2", "regularized_1e-2_proj",
        "regularized_1e-1", "regularized_1e-1_proj",
    ]  # fmt: skip
    assert Cell("regularized", 0.01, True).overrides() == [
        "--model.init_args.objective", "regularized", "--model.init_args.consistency_projection", "true",
        "--model.init_args.lambda_adv", "0.01",
    ]  # fmt: skip
    assert "--model.init_args.lambda_adv" not in Cell("supervised", None, False).overrides()
    with pytest.raises(ValueError, match="preset lambdas"):
        grid({"lambdas": [0.0]})
    with pytest.raises(ValueError, match="preset objectives"):
        grid({"objectives": ["adversarial"]})


def test_format_lambda() -> None:
    assert [format_lambda(v) for v in (0.001, 0.01, 0.1, 0.025, 1.0)] == ["1e-3", "1e-2", "1e-1", "2.5e-2", "1e0"]


def test_cpu_preset_budgets() -> None:
    preset = load_trust_preset("cpu")
    tasks = preset["tasks"]
    assert (tasks["quickstart"]["epochs"], tasks["sentinel2_t2"]["epochs"]) == (8, 12)
    # T2's cosine schedule spans the budget
    assert "--model.init_args.scheduler_g.init_args.T_max=12" in tasks["sentinel2_t2"]["overrides"]


def _record(run: str, rmse: float, hallucination: float, projection: bool, lam: float | None = None, **extra: float) -> dict[str, Any]:
    metrics = {tag: 0.5 for tag in METRICS.values()}
    metrics.update({"test/rmse": rmse, "test/correctness/hallucination": hallucination,
                    "test/consistency/rmse": extra.get("cons", 0.004),
                    "test/rmse_bicubic": 0.025, "test/sre_bicubic": 18.0, "test/consistency/rmse_bicubic": 0.004,
                    "test/consistency/l1_bicubic": 0.003, "test/consistency/sam_bicubic": 0.6,
                    "test/consistency/shift_bicubic": 0.02})  # fmt: skip
    return {"task": "toy", "run": run, "objective": "supervised" if lam is None else "regularized", "lambda_adv": lam,
            "projection": projection, "epochs": 1, "seed": 0, "fit_time_s": 1.0, "test_time_s": 1.0,
            "run_dir": "x", "metrics": metrics}  # fmt: skip


def test_deltas_and_sentences_by_hand() -> None:
    records = [
        _record("supervised", 0.020, 0.10, False),
        _record("supervised_proj", 0.021, 0.05, True, cons=1e-9),
        _record("regularized_1e-2", 0.018, 0.13, False, 0.01),
        _record("regularized_1e-1", 0.02001, 0.1004, False, 0.1),  # +0.05 %, +0.04 points: shown as unchanged
    ]
    result = summarize(records)
    rows = {r["run"]: r for r in result["tasks"]["toy"]["rows"]}
    assert list(rows) == ["bicubic", "supervised", "supervised_proj", "regularized_1e-2", "regularized_1e-1"]
    # ΔRMSE = 100 (rmse - 0.020) / 0.020 %, Δhallucination = 100 (h - 0.10) points
    assert rows["regularized_1e-2"]["delta_rmse_pct"] == pytest.approx(-10.0)
    assert rows["regularized_1e-2"]["delta_hallucination_pts"] == pytest.approx(3.0)
    assert rows["supervised_proj"]["delta_rmse_pct"] == pytest.approx(5.0)
    assert rows["supervised_proj"]["delta_hallucination_pts"] == pytest.approx(-5.0)
    assert rows["supervised"]["delta_rmse_pct"] == 0.0
    assert rows["bicubic"]["rmse"] == 0.025 and rows["bicubic"]["delta_rmse_pct"] == pytest.approx(25.0)
    assert (rows["bicubic"]["synthesis_l1"], rows["bicubic"]["omission"], rows["bicubic"]["hallucination"]) == (0.0, 1.0, 0.0)
    assert rows["bicubic"]["delta_hallucination_pts"] == pytest.approx(-10.0)
    text = " ".join(result["tasks"]["toy"]["sentences"])
    assert "λ=1e-2 lowers RMSE by 10.0 % and raises hallucination by 3.0 points" in text
    assert "λ=1e-1 leaves RMSE and hallucination unchanged" in text
    assert "supervised raises RMSE by 5.0 % and lowers hallucination by 5.0 points" in text
    assert "consistency RMSE goes from 0.004 to 1e-09" in text
    assert "Lowest RMSE: λ=1e-2 (0.018); lowest hallucination: supervised + proj. (5.0 %)" in text
    md = markdown(result)
    assert "| regularized_1e-2 | regularized | 1e-2 | no | 0.018 |" in md and "| -10.0 | +3.0 |" in md


def test_no_reference_run() -> None:
    result = summarize([_record("regularized_1e-2", 0.018, 0.13, False, 0.01)])
    row = result["tasks"]["toy"]["rows"][0]
    assert row["delta_rmse_pct"] is None and "no reference" in result["tasks"]["toy"]["sentences"][0]


# ------------------------------------------------------------------------------------------------ bad input
def test_unknown_preset_and_task(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown preset 'nope'.*known presets: cpu, quick"):
        load_trust_preset("nope")
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['mars'\].*'quickstart', 'sentinel2_t2'"):
        select_tasks(load_trust_preset("quick"), ["quickstart", "mars"])
    with pytest.raises(SystemExit) as err:
        main(["--quick", "--tasks", "mars", "--out", str(tmp_path)])
    assert err.value.code == 2 and "unknown task(s) ['mars']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--quick", "--preset", "cpu"])
    assert "give one" in capsys.readouterr().err
    bad = tmp_path / "preset_bad.yaml"
    bad.write_text("tasks: {quickstart: {config: configs/quickstart.yaml}}\n")
    with pytest.raises(ValueError, match="needs `config`.*`epochs`"):
        load_trust_preset(str(bad))


def test_missing_shared_data(tmp_path: Path) -> None:
    preset = load_trust_preset("quick")
    missing = tmp_path / "nowhere" / "S2_10m.tif"
    preset["tasks"]["sentinel2_t2"]["data"] = {"data.init_args.sources": [str(missing)]}
    with pytest.raises(FileNotFoundError, match=re.escape(f"'sentinel2_t2' needs {missing}")):
        select_tasks(preset, ["sentinel2_t2"])
    with pytest.warns(UserWarning, match=re.escape(f"skipping task 'sentinel2_t2': its data {missing}")):
        assert select_tasks(preset) == ["quickstart"]


def test_trust_is_an_aerogan_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aerogan.cli import TOOLS, cli_main

    assert TOOLS["trust"] == "aerogan.trust_study"
    with pytest.raises(SystemExit):
        cli_main(["trust", "--preset", "nope", "--out", str(tmp_path)])
    assert "unknown preset 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def quick_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``--quick`` on quickstart: 8 runs of 2 training batches each (about 30 s on one core)."""
    out = tmp_path_factory.mktemp("trust") / "study"
    main(["--quick", "--tasks", "quickstart", "--out", str(out)])
    return out


def test_quick_study_writes_every_file(quick_study: Path) -> None:
    for name in ("trust.json", "trust.csv", "trust.md"):
        assert (quick_study / name).is_file()
    data = json.loads((quick_study / "trust.json").read_text())
    assert len(data["runs"]) == 8 and set(data["tasks"]) == {"quickstart"}
    for record in data["runs"]:
        folder = Path(record["run_dir"])
        assert folder.parent == quick_study.resolve() / "quickstart" / f"{record['run']}_s0"
        assert (folder / "run.json").is_file() and Path(record["ckpt_path"]).name == "last.ckpt"
    with open(quick_study / "trust.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows][:2] == ["bicubic", "supervised"] and len(rows) == 9


def test_quick_study_table_is_filled(quick_study: Path) -> None:
    md = (quick_study / "trust.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| run ")]
    assert len(lines) == 9 and lines[0].startswith("| bicubic |")
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 4 + len(COLUMNS) and "n/a" not in cells and all(cells), line
    data = json.loads((quick_study / "trust.json").read_text())
    for row in data["tasks"]["quickstart"]["rows"]:
        assert all(isinstance(row[f], float) for f in METRICS), row["run"]
    assert len(data["tasks"]["quickstart"]["sentences"]) == 3


def test_quick_study_deltas_match_the_raw_metrics(quick_study: Path) -> None:
    data = json.loads((quick_study / "trust.json").read_text())
    raw = {r["run"]: r["metrics"] for r in data["runs"]}
    ref_rmse, ref_hall = raw["supervised"]["test/rmse"], raw["supervised"]["test/correctness/hallucination"]
    rows = data["tasks"]["quickstart"]["rows"]
    for row in rows[1:]:
        m = raw[row["run"]]
        assert row["rmse"] == m["test/rmse"] and row["consistency_sam"] == m["test/consistency/sam"]
        assert row["delta_rmse_pct"] == pytest.approx(100 * (m["test/rmse"] - ref_rmse) / ref_rmse)
        assert row["delta_hallucination_pts"] == pytest.approx(100 * (m["test/correctness/hallucination"] - ref_hall))
    assert rows[0]["rmse"] == raw["supervised"]["test/rmse_bicubic"]
    # the projection makes the output consistent with its input: consistency RMSE near 0, far below without it
    for name in ("supervised", "regularized_1e-2"):
        assert raw[f"{name}_proj"]["test/consistency/rmse"] < 1e-3 * raw[name]["test/consistency/rmse"]


def test_rerun_reuses_runs_and_prints_readme(quick_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = json.loads((quick_study / "trust.json").read_text())
    main(["--quick", "--tasks", "quickstart", "--out", str(quick_study), "--readme"])
    out = capsys.readouterr().out
    assert out.count("already done") == 8
    assert "### Does the critic invent detail? Measured" in out and "#### quickstart" in out and "| bicubic |" in out
    assert "aerogan trust --preset quick" in out
    after = json.loads((quick_study / "trust.json").read_text())
    assert [r["run_dir"] for r in after["runs"]] == [r["run_dir"] for r in before["runs"]]


def test_changed_arguments_are_not_reused(quick_study: Path) -> None:
    from aerogan.trust_study import run_trust_study

    preset = load_trust_preset("quick") | {"objectives": ["supervised"], "projections": [False]}
    result = run_trust_study(preset, quick_study, ["quickstart"], extra=["--trainer.limit_train_batches=1"])
    (record,) = result["runs"]
    assert Path(record["run_dir"]).name == "version_1" and "--trainer.limit_train_batches=1" in record["args"]
    assert (Path(record["run_dir"]).parent / "version_0" / "run.json").is_file()  # the first run is kept


def test_seeds_give_intervals_and_paired_claims_by_hand() -> None:
    """Two seeds: each row is the mean with its 95 % half-width (t(0.975, 1) = 12.706), the deltas are paired."""
    records = []
    for seed, (sup, reg) in enumerate([(0.020, 0.018), (0.022, 0.0199)]):
        for rec in (_record("supervised", sup, 0.10, False), _record("regularized_1e-2", reg, 0.10 + 0.01 * seed, False, 0.01)):
            records.append(rec | {"seed": seed})
    result = summarize(records)
    rows = {r["run"]: r for r in result["tasks"]["toy"]["rows"]}
    assert rows["supervised"]["rmse"] == pytest.approx(0.021) and rows["supervised"]["seeds"] == [0, 1]
    assert rows["supervised"]["rmse_ci"] == pytest.approx(12.706 * 0.002 / 2)
    # paired ΔRMSE: -10 % and -9.55 %, half-width 12.706 * sd / sqrt(2)
    d = [-10.0, 100 * (0.0199 - 0.022) / 0.022]
    assert rows["regularized_1e-2"]["delta_rmse_pct"] == pytest.approx(sum(d) / 2)
    assert rows["regularized_1e-2"]["delta_rmse_pct_ci"] == pytest.approx(12.706 * abs(d[0] - d[1]) / 2)  # sd/√n of two values
    claims = {c["claim"]: c for c in result["tasks"]["toy"]["claims"]}
    rmse = claims["toy: λ=1e-2 lowers RMSE against supervised"]
    assert rmse["seeds"] == [0, 1] and rmse["difference"]["mean"] == pytest.approx((-0.002 - 0.0021) / 2)
    assert rmse["verdict"] == "holds"  # differences -0.002 and -0.0021: mean -0.00205 ± 0.00064 excludes 0
    hall = claims["toy: λ=1e-2 lowers hallucination against supervised"]
    assert hall["verdict"] == "not resolved at this budget"  # differences 0 and +0.01: the interval contains 0
    md = markdown(result)
    assert "2 seeds (0, 1): means ± 95 % interval" in md and "0.021 ± " in md and "holds" in md


def test_two_seeds_end_to_end(tmp_path: Path) -> None:
    """``aerogan trust --seeds 2`` on a reduced quickstart grid: rows with ± intervals, paired claims with verdicts."""
    import yaml

    preset = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/trust/preset_quick.yaml").read_text())
    preset.update(objectives=["supervised", "regularized"], lambdas=[0.01], projections=[False])
    del preset["tasks"]["sentinel2_t2"]
    path = tmp_path / "preset_two.yaml"
    path.write_text(yaml.safe_dump(preset))
    out = tmp_path / "two"
    main(["--preset", str(path), "--seeds", "2", "--out", str(out)])
    data = json.loads((out / "trust.json").read_text())
    assert data["seeds"] == [0, 1] and len(data["runs"]) == 4
    rows = {r["run"]: r for r in data["tasks"]["quickstart"]["rows"]}
    assert rows["regularized_1e-2"]["seeds"] == [0, 1] and rows["regularized_1e-2"]["rmse_ci"] is not None
    assert {c["claim"] for c in data["tasks"]["quickstart"]["claims"]} == {
        "quickstart: λ=1e-2 lowers RMSE against supervised", "quickstart: λ=1e-2 lowers hallucination against supervised"}
    assert all(c["verdict"] in ("holds", "does not hold", "not resolved at this budget") and c["seeds"] == [0, 1]
               for c in data["tasks"]["quickstart"]["claims"])  # fmt: skip
    md = (out / "trust.md").read_text()
    assert "2 seeds (0, 1): means ± 95 % interval" in md and "- quickstart: λ=1e-2 lowers RMSE against supervised:" in md
