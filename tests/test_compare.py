"""``aerogan.compare``: the % gain arithmetic, rows and presets, the threshold, bad input, merge, a quick run on T2."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from aerogan.compare import (
    CONFIG_DIR,
    InputError,
    discover_rows,
    fix_threshold,
    format_gain,
    load_compare_preset,
    load_task,
    main,
    merge,
    pair_gains,
    percent_gain,
    select_rows,
)

REPO = Path(__file__).resolve().parents[1]
T2 = REPO / "configs" / "sentinel2_t2.yaml"
SWIR = REPO / "configs" / "sentinel2_swir_synthesis.yaml"
HAS_DATA = (REPO / "../shared/data/sentinel2_multires").is_dir()


# ---------------------------------------------------------------------------------------------- % gain
@pytest.mark.parametrize(
    ("alert", "dsen2", "printed"),
    [(2.8, 4.7, "40.42"), (50, 1000, "95.00"), (10.3, 21.2, "51.41"), (70, 456, "84.64")],
)
def test_percent_gain_reproduces_the_seed_row(alert: float, dsen2: float, printed: str) -> None:
    gain = percent_gain(alert, dsen2)
    assert gain == pytest.approx((dsen2 - alert) / dsen2 * 100)
    assert format_gain(gain) == printed  # the seed truncates: 40.425 -> 40.42, 51.415 -> 51.41, 84.649 -> 84.64


def test_percent_gain_edge_cases() -> None:
    assert percent_gain(6.0, 4.0) == pytest.approx(-50.0)
    assert format_gain(-12.349) == "-12.34"
    assert format_gain(0.004) == "0.00"
    assert format_gain(None) == "n/a"
    assert percent_gain(None, 3.0) is None and percent_gain(1.0, 0.0) is None and percent_gain(1.0, None) is None


def test_pair_gains_on_hand_values() -> None:
    alert = {"generator_params": 2_800_000, "epochs_to_threshold": 5, "train_rmse": 10.3, "test_rmse": 20.0,
             "test_consistency_rmse": 1.0, "test_hallucination": 0.02, "inference_s": 70.0, "test_sre": 31.5}  # fmt: skip
    dsen2 = {"generator_params": 4_700_000, "epochs_to_threshold": None, "train_rmse": 21.2, "test_rmse": 25.0,
             "test_consistency_rmse": 4.0, "test_hallucination": 0.01, "inference_s": 456.0, "test_sre": 30.0}  # fmt: skip
    g = pair_gains(alert, dsen2)
    assert format_gain(g["generator_params"]) == "40.42"
    assert g["epochs_to_threshold"] is None  # the reference never reached the threshold: no number
    assert g["test_rmse"] == pytest.approx(20.0)
    assert g["test_consistency_rmse"] == pytest.approx(75.0)
    assert g["test_hallucination"] == pytest.approx(-100.0)
    assert g["test_sre_db"] == pytest.approx(1.5)


# ---------------------------------------------------------------------------------------------- rows and presets
def test_rows_are_four_architectures_under_both_objectives() -> None:
    rows = discover_rows()
    names = [r.name for r in rows]
    assert names == ["AeroGAN", "AeroGAN-sup", "DeepAWiFS", "DeepAWiFS-reg", "DSen2", "DSen2-reg", "DSen2-published",
                     "DSen2-published-reg", "ALERT", "ALERT-sup"]  # fmt: skip
    for arch in {r.architecture for r in rows}:
        mine = [r for r in rows if r.architecture == arch]
        assert {r.objective for r in mine} == {"supervised", "regularized"}
        assert len({r.config for r in mine}) == 1  # both objectives share one architecture file
    own = {r.name: r.objective for r in rows if r.own}
    assert own == {"AeroGAN": "regularized", "DeepAWiFS": "supervised", "DSen2": "supervised",
                   "DSen2-published": "supervised", "ALERT": "regularized"}  # fmt: skip
    assert [r.name for r in select_rows(rows, ["alert", "DSen2"])] == ["DSen2", "ALERT"]


def _generator(arch: str) -> torch.nn.Module:
    import importlib

    spec = yaml.safe_load((CONFIG_DIR / f"{arch}.yaml").read_text())["model"]["init_args"]["generator"]
    module, name = spec["class_path"].rsplit(".", 1)
    # T2: 6 target bands x2 with one 4-band guide group on the output grid (guide ratio 1)
    return getattr(importlib.import_module(module), name)(6, 6, 2, guide_channels=[4], guide_ratios=[1], **spec["init_args"])


@pytest.mark.parametrize(("arch", "low", "high"), [("aerogan", 1.9e6, 2.1e6), ("deepawifs", 4.5e6, 4.9e6), ("alert", 2.7e6, 2.9e6)])
def test_architectures_have_the_talks_sizes(arch: str, low: float, high: float) -> None:
    assert low <= sum(p.numel() for p in _generator(arch).parameters()) <= high


def test_dsen2_is_the_published_one() -> None:
    net = _generator("dsen2")
    assert len(net.blocks) == 6
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(m.out_channels for m in convs) == 128
    # head conv (6 + 4 bands -> 128) + 6 blocks x 2 convs (128 -> 128) + tail (128 -> 6), biases included
    expected = (10 * 128 * 9 + 128) + 12 * (128 * 128 * 9 + 128) + (128 * 6 * 9 + 6)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_dsen2_published_row_runs_its_own_recipe_for_the_same_steps(tmp_path: Path) -> None:
    """The DSen2-published row: Nadam at a constant 1e-4, bilinear upsampling, no projection, supervised; every row of
    a preset gets the same epochs (so the same steps) and the same data settings."""
    from aerogan.compare import row_specs
    from aerogan.experiments import resolve_config

    rows = discover_rows()
    preset = load_compare_preset("cpu")
    task = {"config": str(T2), "name": "t2", "id": "x", "cosine_t_max": True}
    specs = row_specs(rows, task, preset, tmp_path, [0], tmp_path / "threshold.yaml", 1.0)
    assert {next(a for a in s.overrides if a.startswith("--trainer.max_epochs")) for s in specs} == {"--trainer.max_epochs=15"}
    assert {tuple(a for a in s.overrides if a.startswith("--data.")) for s in specs} == {("--data.init_args.samples_per_epoch=256",)}
    published = next(s for s in specs if s.labels["row"] == "DSen2-published")
    assert Path(published.configs[1]).name == "dsen2_published.yaml" and published.labels["objective"] == "supervised"
    cfg = resolve_config(["--config", str(T2), "--config", published.configs[1], "--model.init_args.scheduler_g.init_args.T_max=15"])
    model = cfg["model"]["init_args"]
    assert model["optimizer_g"]["class_path"] == "torch.optim.NAdam" and model["optimizer_g"]["init_args"]["lr"] == 1e-4
    sched = model["scheduler_g"]["init_args"]
    assert sched["eta_min"] == model["optimizer_g"]["init_args"]["lr"]  # cosine from lr to lr: constant
    assert model["generator"]["init_args"]["interpolation"] == "bilinear" and model["consistency_projection"] is False
    assert model["objective"] == "supervised" and model["generator"]["init_args"]["num_features"] == 128


def test_presets_cover_every_architecture() -> None:
    archs = {r.architecture for r in discover_rows()}
    for name in ("cpu", "full", "quick"):
        preset = load_compare_preset(name)
        epochs = preset["epochs"]
        assert all(isinstance(epochs.get(a, epochs.get("default")), int) for a in archs), name


# ---------------------------------------------------------------------------------------------- threshold
class _TinyData:
    """A datamodule stand-in: LR input constant 5 (bicubic keeps constants), targets 5 + (+-1 checkerboard, 3)."""

    scale, out_channels, batch_size, target_in_input = 2, 2, 2, [0, 1]

    def __init__(self) -> None:
        self.datasets: dict[str, Any] = {}

    def setup(self, stage: str) -> None:
        checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 * 2.0 - 1.0
        target = torch.stack([5 + checker, torch.full((4, 4), 8.0)])
        for split in ("train", "val"):
            self.datasets[split] = [{"input": torch.full((2, 2, 2), 5.0), "target": target} for _ in range(3)]

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        return batch


def test_threshold_is_a_factor_of_the_bicubic_validation_rmse() -> None:
    thr = fix_threshold(_TinyData())
    # band RMSEs 1 and 3 -> mean 2; half of it
    assert thr["rule"] == "bicubic" and thr["baseline"] == pytest.approx(2.0)
    assert thr["value"] == pytest.approx(1.0)
    assert fix_threshold(_TinyData(), {"bicubic": 0.25})["value"] == pytest.approx(0.5)
    assert "bicubic" in thr["text"] and "before any run" in thr["text"]


# ---------------------------------------------------------------------------------------------- bad input
def test_unknown_row_and_preset_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unknown row\(s\) \['VDSR'\].*known rows: AeroGAN"):
        select_rows(discover_rows(), ["VDSR"])
    with pytest.raises(SystemExit, match="unknown preset 'huge'.*known presets: cpu, full, quick"):
        main(["--preset", "huge", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"unknown row\(s\) \['Nope'\]"):
        main(["--quick", "--only", "Nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--pair: unknown row\(s\) \['X'\]"):
        main(["--quick", "--only", "AeroGAN", "--pair", "X", "DSen2", "--out", str(tmp_path)])
    assert not (tmp_path / "compare.json").exists()


def test_task_whose_data_is_missing_is_named(tmp_path: Path) -> None:
    cfg = yaml.safe_load(T2.read_text())
    cfg["data"]["init_args"]["sources"] = [str(tmp_path / "absent_10m.tif"), str(tmp_path / "absent_20m.tif")]
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match=r"data.init_args.sources names .*absent_10m.tif, which does not exist"):
        load_task(task)
    with pytest.raises(SystemExit, match="absent_10m.tif"):
        main(["--quick", "--task", str(task), "--out", str(tmp_path / "out")])
    with pytest.raises(InputError, match="no such config file"):
        load_task(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------------- merge
def _record(row: str, arch: str, objective: str, params: int, rmse: float, seconds: float, epochs: int | None, seed: int = 0) -> dict[str, Any]:
    return {"row": row, "seed": seed, "steps": 4, "architecture": arch, "architecture_name": row.split("-")[0], "objective": objective,
            "generator": "Net", "generator_params": params, "max_epochs": 4, "epochs_run": 4, "epochs_to_threshold": epochs,
            "history": [{"epoch": e, "value": 100.0 / e} for e in range(1, 5)], "train_rmse": rmse / 2, "test_rmse": rmse,
            "test_rmse_bicubic": 150.0, "test_sre": 30.0, "test_sre_bicubic": 25.0, "test_consistency_rmse": 2.0,
            "test_consistency_rmse_bicubic": 50.0, "test_hallucination": 0.01, "inference_s": seconds,
            "inference_how": "hand", "samples_per_epoch": 16, "preset": "quick", "run_dir": "x"}  # fmt: skip


def _job(folder: Path, records: list[dict[str, Any]], task_id: str = "t2", seed: int = 0, threshold: float = 70.0) -> Path:
    folder.mkdir(parents=True)
    records = [r | {"seed": seed} for r in records]
    result = {"task": {"config": "configs/sentinel2_t2.yaml", "name": f"task_{task_id}", "id": task_id},
              "threshold": {"value": threshold, "text": f"val/rmse <= {threshold}"}, "preset": {}, "device": "cpu",
              "runs": records, "pair": None}  # fmt: skip
    (folder / "compare.json").write_text(json.dumps(result))
    return folder


def test_merge_joins_jobs_and_computes_the_gain_row(tmp_path: Path) -> None:
    a = _job(tmp_path / "a", [_record("DSen2", "dsen2", "supervised", 4_700_000, 21.2, 456.0, None)])
    b = _job(tmp_path / "b", [_record("ALERT", "alert", "regularized", 2_800_000, 10.3, 70.0, 3)])
    out = tmp_path / "ab"
    result = merge([a, b], out, ["ALERT", "DSen2"])
    assert [r["row"] for r in result["rows"]] == ["DSen2", "ALERT"]  # table order, whatever the job order
    md = (out / "compare.md").read_text()
    gain_line = next(line for line in md.splitlines() if line.startswith("| % gain ALERT vs DSen2"))
    assert "| 40.42 |  | n/a | 51.41 | 51.41 |" in gain_line and gain_line.rstrip().endswith("| 84.64 |")
    assert "not reached in 4 epochs" in md
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["row"] for r in rows] == ["DSen2", "ALERT", "% gain ALERT vs DSen2"]
    assert rows[-1]["inference_s"] == "84.64" and rows[0]["epochs_cell"] == "not reached in 4 epochs"


def test_merge_joins_seeds_into_intervals_and_paired_claims(tmp_path: Path) -> None:
    """Seeds run as separate jobs merge into means ± 95 % interval; the pair's claim is decided on paired seeds."""
    jobs = []
    for seed, (dsen2, alert) in enumerate([(21.0, 10.0), (22.0, 10.5), (20.0, 10.2)]):
        jobs.append(_job(tmp_path / f"s{seed}", [_record("DSen2", "dsen2", "supervised", 4_700_000, dsen2, 456.0, None),
                                                 _record("ALERT", "alert", "regularized", 2_800_000, alert, 70.0, 3)], seed=seed))  # fmt: skip
    result = merge(jobs, tmp_path / "all", ["ALERT", "DSen2"])
    rows = {r["row"]: r for r in result["rows"]}
    assert rows["DSen2"]["seeds"] == [0, 1, 2] and rows["DSen2"]["test_rmse"] == pytest.approx(21.0)
    assert rows["DSen2"]["test_rmse_ci"] == pytest.approx(4.303 * 1.0 / 3**0.5)  # sd 1 over 3 seeds, t(0.975, 2)
    claim = result["pair"]["claim"]
    assert claim["seeds"] == [0, 1, 2] and claim["verdict"] == "holds"  # differences -11, -11.5, -9.8
    md = (tmp_path / "all" / "compare.md").read_text()
    assert "3 seeds (0, 1, 2): means ± 95 % interval" in md and "21 ± 2.5" in md
    assert "ALERT lowers held-out RMSE against DSen2: holds" in md


def test_merge_refuses_other_tasks_thresholds_and_duplicates(tmp_path: Path) -> None:
    base = _job(tmp_path / "base", [_record("DSen2", "dsen2", "supervised", 1, 1.0, 1.0, 1)])
    other_task = _job(tmp_path / "swir", [_record("ALERT", "alert", "regularized", 1, 1.0, 1.0, 1)], task_id="swir")
    other_thr = _job(tmp_path / "thr", [_record("ALERT", "alert", "regularized", 1, 1.0, 1.0, 1)], threshold=60.0)
    twice = _job(tmp_path / "twice", [_record("DSen2", "dsen2", "supervised", 1, 1.0, 1.0, 1)])
    with pytest.raises(InputError, match=rf"{other_task} holds results of task task_swir .* but {base} of task task_t2"):
        merge([base, other_task], tmp_path / "m1")
    with pytest.raises(InputError, match="threshold 60 but .* 70"):
        merge([base, other_thr], tmp_path / "m3")
    with pytest.raises(InputError, match=rf"run DSen2/0 is in both {base} and {twice}"):
        merge([base, twice], tmp_path / "m4")
    with pytest.raises(SystemExit, match="holds no compare.json"):
        main(["--merge", str(base), str(tmp_path), "--out", str(tmp_path / "m5")])
    assert not any((tmp_path / f"m{i}").exists() for i in (1, 3, 4, 5))


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.skipif(not HAS_DATA, reason="needs ../shared/data/sentinel2_multires")
def test_quick_comparison_on_t2_fills_every_column(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    main(["--quick", "--only", "AeroGAN", "ALERT-sup", "--pair", "ALERT-sup", "AeroGAN", "--out", str(out)])
    result = json.loads((out / "compare.json").read_text())
    assert result["threshold"]["rule"] == "bicubic" and result["threshold"]["value"] > 0
    rows = {r["row"]: r for r in result["rows"]}
    assert set(rows) == {"AeroGAN", "ALERT-sup"}
    assert rows["ALERT-sup"]["objective"] == "supervised" and rows["AeroGAN"]["objective"] == "regularized"
    assert rows["AeroGAN"]["steps"] == rows["ALERT-sup"]["steps"] == 1  # one batch of 16 patches: the same budget
    for rec in result["runs"]:
        ckpt = torch.load(rec["checkpoint"], map_location="cpu", weights_only=False)
        n = sum(v.numel() for k, v in ckpt["state_dict"].items() if k.startswith("generator."))
        assert rec["generator_params"] == n  # the real count of the instantiated generator
        assert rec["epochs_to_threshold"] is None or rec["epochs_to_threshold"] == 1
        for key in ("train_rmse", "test_rmse", "test_rmse_bicubic", "test_sre", "test_sre_bicubic",
                    "test_consistency_rmse", "test_consistency_rmse_bicubic", "test_hallucination", "inference_s"):  # fmt: skip
            assert rec[key] is not None and math.isfinite(rec[key]), key
        assert rec["inference_s"] > 0 and all(Path(p).is_file() for p in rec["products"])
        assert len(rec["history"]) == 1
    md = (out / "compare.md").read_text()
    main_table = md.split("\n## ")[0]  # before the architecture x objective and the talk's tables
    table = [line for line in main_table.splitlines() if line.startswith(("| AeroGAN", "| ALERT-sup"))]
    assert len(table) == 2 and all("n/a" not in line for line in table)
    assert all(("| 1 |" in line) or ("not reached in 1 epochs" in line) for line in table)
    gain = result["pair"]["gain"]
    a, b = rows["ALERT-sup"], rows["AeroGAN"]
    assert gain["inference_s"] == pytest.approx((b["inference_s"] - a["inference_s"]) / b["inference_s"] * 100)
    assert f"| {format_gain(gain['generator_params'])} |" in md
    assert "threshold" in md.lower() and "val on the train split" in md
    for name in ("compare.csv", "compare_val_rmse.png", "compare_inference.png"):
        assert (out / name).is_file(), name
    # a second call reuses the finished row (no refit) and its table still holds both rows of the folder
    main(["--quick", "--only", "AeroGAN", "--out", str(out)])
    assert sorted(p.name for p in (out / "aerogan_regularized_s0").iterdir()) == ["version_0"]
    assert {r["row"] for r in json.loads((out / "compare.json").read_text())["rows"]} == {"AeroGAN", "ALERT-sup"}


@pytest.mark.skipif(not (REPO / "../shared/data/sentinel2_l1c_scenes.npy").is_file(), reason="needs ../shared/data")
def test_quick_band_synthesis_in_two_worker_processes(tmp_path: Path) -> None:
    out = tmp_path / "swir"
    main(["--quick", "--task", str(SWIR), "--only", "AeroGAN", "DSen2", "--pair", "AeroGAN", "DSen2",
          "--devices", "2", "--out", str(out)])  # fmt: skip
    result = json.loads((out / "compare.json").read_text())
    # no bicubic baseline for band synthesis: the linear least-squares baseline, factor 1
    assert result["threshold"]["rule"] == "linear_baseline" and result["threshold"]["factor"] == 1.0
    rows = {r["row"]: r for r in result["rows"]}
    assert set(rows) == {"AeroGAN", "DSen2"}
    for rec in result["runs"]:
        assert rec["threshold"] == result["threshold"]["value"]  # the workers used the parent's threshold
        assert rec["test_rmse"] > 0 and rec["train_rmse"] > 0 and rec["inference_s"] > 0
        assert rec["test_rmse_bicubic"] is None and rec["test_hallucination"] is None
        assert [Path(p).parent for p in rec["products"]] == [Path(rec["run_dir"]) / "predictions"]
        assert (out / "logs" / f"{Path(rec['run_dir']).parent.name}.log").is_file()
    line = next(x for x in (out / "compare.md").read_text().splitlines() if x.startswith("| DSen2 |"))
    assert line.count("n/a (band synthesis)") == 2
