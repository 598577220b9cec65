"""The experiment engine: intervals and paired verdicts, presets, the resolved-configuration key, reuse and reruns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aerogan.experiments import (
    HOLDS,
    NOT_HOLD,
    UNRESOLVED,
    RunSpec,
    interval,
    load_preset,
    merge_runs,
    paired_claim,
    resolve_key,
    run_specs,
    seed_list,
)
from aerogan.experiments.stats import t975

REPO = Path(__file__).resolve().parents[1]
QUICK = ("--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
         "--trainer.limit_test_batches=1", "--trainer.enable_progress_bar=false", "--monitors.topology.enabled=false",
         "--model.init_args.num_panels=0", "--trainer.accelerator=cpu")  # fmt: skip


def test_t_quantiles() -> None:
    assert t975(1) == pytest.approx(12.706) and t975(2) == pytest.approx(4.303) and t975(30) == pytest.approx(2.042)
    assert t975(40) == pytest.approx(2.021, abs=2e-3) and t975(120) == pytest.approx(1.980, abs=2e-3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t975(0)


def test_interval_by_hand() -> None:
    ci = interval([1.0, 2.0, 3.0, None, math.nan])  # non-finite and missing values are left out
    assert ci.n == 3 and ci.mean == pytest.approx(2.0)
    assert ci.half_width == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert ci.format(3) == f"2 ± {4.303 / math.sqrt(3):.2g}"
    single = interval([5.0])
    assert single.low is None and single.format() == "5"
    assert interval([]).format() == "n/a"


def test_paired_claim_verdicts() -> None:
    ref = {0: 10.0, 1: 11.0, 2: 12.0}
    lower = paired_claim("x lowers it", {0: 9.0, 1: 10.1, 2: 10.9}, ref)  # differences -1, -0.9, -1.1
    assert lower["verdict"] == HOLDS and lower["seeds"] == [0, 1, 2]
    higher = paired_claim("x lowers it", {0: 11.0, 1: 11.9, 2: 13.1}, ref)  # +1, +0.9, +1.1
    assert higher["verdict"] == NOT_HOLD
    noise = paired_claim("x lowers it", {0: 9.0, 1: 12.0, 2: 12.0}, ref)  # -1, +1, 0
    assert noise["verdict"] == UNRESOLVED
    one = paired_claim("x lowers it", {0: 1.0}, {0: 10.0})
    assert one["verdict"] == UNRESOLVED and "1 seed)" in one["text"]  # one pair decides nothing
    raised = paired_claim("x raises it", {0: 11.0, 1: 11.9, 2: 13.1}, ref, lower_is_claimed=False)
    assert raised["verdict"] == HOLDS
    # only seeds both sides have are paired
    assert paired_claim("c", {0: 1.0, 5: 2.0}, {0: 2.0, 1: 3.0})["seeds"] == [0]


def test_preset_schema(tmp_path: Path) -> None:
    preset = load_preset("study", "cpu", ("base", "architectures", "objectives"))
    assert preset["seeds"] == 3 and preset["name"] == "cpu" and seed_list(preset) == [0, 1, 2]
    assert seed_list(preset, 2, first=5) == [5, 6]
    bad = tmp_path / "preset_bad.yaml"
    bad.write_text("seeds: 2\narchitecture: [mlp_deep]\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['architecture'\]"):
        load_preset("study", str(bad), ("base", "architectures", "objectives"))
    bad.write_text("seeds: [0, 1]\n")
    with pytest.raises(ValueError, match="seeds must be the number of seeds"):
        load_preset("study", str(bad))
    with pytest.raises(ValueError, match=r"unknown preset 'nope'.*known presets: cpu, full"):
        load_preset("study", "nope")


def test_merge_runs_refuses_a_run_twice() -> None:
    a = ("a", {"runs": [{"name": "x", "group": "", "seed": 0}]})
    b = ("b", {"runs": [{"name": "x", "group": "", "seed": 1}, {"name": "x", "group": "", "seed": 0}]})
    with pytest.raises(ValueError, match="run /x/0 is in both a and b"):
        merge_runs([a, b])
    assert len(merge_runs([a, ("b", {"runs": b[1]["runs"][:1]})])) == 2


def test_spec_round_trip_and_arguments(tmp_path: Path) -> None:
    spec = RunSpec("net_sup", ("a.yaml", "b.yaml"), ("--x=1",), seed=3, out=str(tmp_path), group="task",
                   labels={"objective": "supervised"}, num_threads=1)  # fmt: skip
    assert RunSpec.from_json(spec.to_json()) == spec and RunSpec.from_json(spec.to_json()).labels == spec.labels
    assert spec.folder == tmp_path / "task" / "net_sup_s3"
    assert spec.cli_args()[:6] == ["--config", "a.yaml", "--config", "b.yaml", "--seed_everything", "3"]


def test_key_follows_the_resolved_configuration(tmp_path: Path) -> None:
    """Same resolved settings, same key (however they are spelled); a change in a config file or an override changes it."""
    extra = tmp_path / "extra.yaml"
    extra.write_text("trainer:\n  max_epochs: 2\n")
    base = RunSpec("q", (str(REPO / "configs/quickstart.yaml"), str(extra)), QUICK[1:], out=str(tmp_path))
    same = RunSpec("q", (str(REPO / "configs/quickstart.yaml"),), ("--trainer.max_epochs=2", *QUICK[1:]), out=str(tmp_path))
    assert resolve_key(base) == resolve_key(same)
    key = resolve_key(base)
    extra.write_text("trainer:\n  max_epochs: 3\n")
    assert resolve_key(base) != key
    assert resolve_key(RunSpec("q", base.configs, (*QUICK[1:], "--model.init_args.lambda_adv=0.5"), out=str(tmp_path))) != resolve_key(base)


def test_finished_runs_are_reused_and_changed_ones_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = RunSpec("q", (str(REPO / "configs/quickstart.yaml"),), QUICK, out=str(tmp_path), labels={"objective": "regularized"})
    seen: list[int] = []
    (first,) = run_specs([spec], on_record=lambda records: seen.append(len(records)))
    assert seen == [1] and first["finished"] and first["objective"] == "regularized" and first["steps"] == 2
    assert first["metrics"]["test/rmse"] > 0 and Path(first["ckpt_path"]).name == "last.ckpt"
    assert json.loads((Path(first["run_dir"]) / "run.json").read_text())["key"] == first["key"]
    (again,) = run_specs([spec])
    assert again["run_dir"] == first["run_dir"] and "already done" in capsys.readouterr().out
    changed = RunSpec("q", spec.configs, (*QUICK, "--model.init_args.lambda_adv=0.5"), out=str(tmp_path))
    (other,) = run_specs([changed])
    assert Path(other["run_dir"]).name == "version_1" and other["key"] != first["key"]
    (forced,) = run_specs([spec], force=True)
    assert Path(forced["run_dir"]).name == "version_2"
