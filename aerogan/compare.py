r"""``aerogan compare``: the talk's four-network table (AeroGAN, DeepAWiFS, DSen2, ALERT) regenerated on real data.

The talk compares four remote-sensing networks by parameters, training epochs, training RMSE and inference time,
with a "% gain" row for ALERT against DSen2. This runner measures the same table for any task config, and fits
every architecture under *both* objectives (supervised and adversarially regularized), so the table says how much
of each gain comes from the architecture and how much from the critic:

* **Rows**: one YAML overlay per architecture in ``configs/compare/`` (``aerogan.yaml``: SRResNet-style, 1.97 M;
  ``deepawifs.yaml``: deeper SRResNet, 4.75 M; ``dsen2.yaml``: DSen2 as published, 128 features x 6 blocks,
  1.79 M; ``alert.yaml``: residual-dense blocks, 2.81 M; counts on Sentinel-2 T2). Each file sets the
  architecture's own objective (row ``AeroGAN``, ``DSen2``, ...); the same file under the other objective is the
  row ``AeroGAN-sup``, ``DSen2-reg``, ... so both rows of an architecture share it exactly. Supervised rows train no
  critic (``n_critic 0``: the critic never reaches a supervised generator). Any other ``*.yaml`` dropped there is
  one more architecture (display name: its file name).
* **Threshold**, fixed from the data before any run and the same for every row: ``factor x`` the bicubic
  validation RMSE of the task's data (``val/rmse``: per band in data units, then averaged), factor 0.5 by default;
  band synthesis (no bicubic baseline) uses the validation RMSE of a per-pixel linear least-squares map fitted on
  the training pixels (:func:`datamodules.baselines.baseline_rmse`), factor 1.0. Every row trains its whole
  epoch budget; :class:`callbacks.EpochsToThreshold` records the first epoch at or below the threshold. Never
  reached is reported as "not reached in N epochs", never as a number.
* **Columns**: the real parameter count of the instantiated generator; epochs to threshold; training RMSE (the
  final model evaluated on a fixed subset of training-split windows, no augmentation, LR made as for validation:
  data units, averaged over bands: "val on the train split", not the running training loss); held-out RMSE and
  SRE on the test split with their bicubic baselines; consistency RMSE (output degraded back against the input,
  with its bicubic twin) and hallucination fraction (``test/correctness/hallucination``); inference time of the
  whole crop (multi-resolution data: :func:`aerogan.inference.super_resolve_product`, every band on the finest
  grid written as a COG; scene data: ``aerogan predict``'s Trainer path), wall seconds including file writing.
* **% gain** of a pair (``--pair ALERT DSen2``), as the seed computes it: ``(reference - row) / reference``, in
  percent truncated to two decimals, for the lower-is-better columns; SRE as a difference in dB.

Outputs in ``--out``: ``compare.md``, ``compare.csv``, ``compare.json``, ``compare_val_rmse.png`` (validation RMSE
against epochs per row) and ``compare_inference.png`` (inference time against parameters), and one run folder per
row (``<arch>_<objective>_s<seed>/version_<n>/``: TensorBoard events, ``study_summary.json``, ``last.ckpt``,
``compare_row.json``, the predicted product). A finished row is reused unless ``--force``, and the table holds
every finished row of the folder for the same task, seed and threshold (so ``--only`` calls add up).

Presets (``configs/compare/preset_<name>.yaml``: epochs per architecture, samples per epoch, threads):

* ``cpu``: the 8 rows on T2 on 2 CPU cores in about 34 min (budget: 45): 15 epochs of 256 patches per row, one
  intra-op thread. Measured on a 2-core machine shared with another training job, one epoch of 256 patches with its
  validation (regularized / supervised): AeroGAN 9.2 / 6.3 s, DeepAWiFS 16.6 / 13.8 s, DSen2 24 / 21 s, ALERT
  12.6 / 10 s (about 1700 s of training in all); whole-crop inference 13-37 s per row (about 220 s for the 8);
  test and training-split RMSE a few seconds per row. Two intra-op threads were up to 14x slower on that machine.
* ``full``: one GPU, about 10 minutes for the 8 rows (20 epochs of 1024 patches; estimated, not yet timed on a GPU).
* ``quick`` (``--quick``): one epoch of a few patches, for tests.

Usage::

    python -m aerogan.compare --preset cpu --out runs/compare
    python -m aerogan.compare --preset full --out runs/compare_gpu --devices 4     # rows side by side, one GPU each
    python -m aerogan.compare --task configs/sentinel2_swir_synthesis.yaml --only AeroGAN DSen2 --out runs/swir
    python -m aerogan.compare --only DSen2 DSen2-reg --out runs/a && python -m aerogan.compare --only ALERT --out runs/b
    python -m aerogan.compare --merge runs/a runs/b --out runs/ab                  # one table from separate jobs
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from aerogan.atomic import atomic_output

__all__ = [
    "InputError",
    "Row",
    "discover_rows",
    "fix_threshold",
    "format_gain",
    "main",
    "merge",
    "pair_gains",
    "percent_gain",
    "run_compare",
    "select_rows",
]

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs" / "compare"
DEFAULT_TASK = "configs/sentinel2_t2.yaml"
#: Display names of the architecture files, in table order (other files follow, named by their stem).
NAMES = {"aerogan": "AeroGAN", "deepawifs": "DeepAWiFS", "dsen2": "DSen2", "alert": "ALERT"}
OBJECTIVES = ("supervised", "regularized")
SHORT = {"supervised": "sup", "regularized": "reg"}
#: Default threshold factor per rule (the preset's ``threshold_factor`` overrides).
FACTORS = {"bicubic": 0.5, "linear_baseline": 1.0}
#: Data arguments naming files or folders, checked before anything runs.
DATA_PATH_KEYS = ("sources", "path", "paths", "lr_paths", "predict_sources")
ROW_FILE = "compare_row.json"


class InputError(ValueError):
    """Bad input to the comparison (row, preset, task, data path, merge), reported before anything runs."""


#: The seed's table (the talk): parameters (M), training epochs, training RMSE, inference time (s).
SEED_TABLE = {
    "AeroGAN": (2.0, 100, 41.57, 64),
    "DeepAWiFS": (4.7, 1000, 18.2, 495),
    "DSen2": (4.7, 1000, 21.2, 456),
    "ALERT": (2.8, 50, 10.3, 70),
}
#: Columns with a % gain (lower is better): key in a row's values -> heading.
GAIN_COLUMNS = {
    "generator_params": "Parameters",
    "epochs_to_threshold": "Epochs to threshold",
    "train_rmse": "Training RMSE",
    "test_rmse": "Held-out RMSE",
    "test_consistency_rmse": "Consistency RMSE",
    "test_hallucination": "Hallucination",
    "inference_s": "Inference time",
}
#: Test metrics kept per row: tag -> key in the row's values.
TEST_METRICS = {
    "test/rmse": "test_rmse",
    "test/rmse_bicubic": "test_rmse_bicubic",
    "test/sre": "test_sre",
    "test/sre_bicubic": "test_sre_bicubic",
    "test/consistency/rmse": "test_consistency_rmse",
    "test/consistency/rmse_bicubic": "test_consistency_rmse_bicubic",
    "test/correctness/hallucination": "test_hallucination",
}


# ---------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """One table row: an architecture file fitted under one objective."""

    name: str
    architecture: str
    objective: str
    own: bool
    config: Path

    @property
    def display(self) -> str:
        return NAMES.get(self.architecture, self.architecture)


def discover_rows(config_dir: Path = CONFIG_DIR) -> list[Row]:
    """Two rows per architecture file of ``config_dir`` (its own objective first, then the other)."""
    files = [p for p in config_dir.glob("*.yaml") if p.stem != "base" and not p.stem.startswith("preset_")]
    order = list(NAMES)
    files.sort(key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem))
    rows = []
    for path in files:
        model = (yaml.safe_load(path.read_text()) or {}).get("model", {}).get("init_args", {})
        own = model.get("objective", "regularized")
        if own not in OBJECTIVES:
            raise InputError(f"{path}: model.init_args.objective={own!r}; a comparison row is one of {list(OBJECTIVES)}")
        other = OBJECTIVES[1 - OBJECTIVES.index(own)]
        name = NAMES.get(path.stem, path.stem)
        rows.append(Row(name, path.stem, own, True, path))
        rows.append(Row(f"{name}-{SHORT[other]}", path.stem, other, False, path))
    return rows


def select_rows(rows: Sequence[Row], names: Sequence[str] | None, label: str = "--only") -> list[Row]:
    """The rows named in ``names`` (case-insensitive; all when ``None``), in table order."""
    if not names:
        return list(rows)
    by = {r.name.lower(): r for r in rows}
    unknown = [n for n in names if n.lower() not in by]
    if unknown:
        raise InputError(f"{label}: unknown row(s) {unknown}; known rows: {', '.join(r.name for r in rows)}")
    wanted = {n.lower() for n in names}
    return [r for r in rows if r.name.lower() in wanted]


# ---------------------------------------------------------------------------------------------- task and preset
def resolve_config(path: str | os.PathLike[str], label: str) -> Path:
    """``path`` as given (relative to the working directory), else relative to the repository."""
    for candidate in (Path(path), REPO / path):
        if candidate.is_file():
            return candidate.resolve()
    raise InputError(f"{label} {path}: no such config file")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str | os.PathLike):
        yield str(value)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def load_task(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The task config's identity and data section; its data files must exist (named when missing)."""
    config = resolve_config(path, "--task")
    cfg = yaml.safe_load(config.read_text()) or {}
    data = cfg.get("data")
    if not isinstance(data, dict) or "class_path" not in data:
        raise InputError(f"--task {path}: the config has no `data:` section with a class_path (a datamodule)")
    args = data.get("init_args") or {}
    for key in DATA_PATH_KEYS:
        for item in _strings(args.get(key)):
            if not Path(item).exists():
                raise InputError(
                    f"--task {path}: data.init_args.{key} names {item}, which does not exist (looked for "
                    f"{Path(item).resolve()}; paths in configs are relative to the directory the command runs in, "
                    "normally the repository root)"
                )
    ident = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
    scheduler = ((cfg.get("model") or {}).get("init_args") or {}).get("scheduler_g") or {}
    return {"config": str(config), "name": config.stem, "id": ident, "data": data,
            "cosine_t_max": "T_max" in (scheduler.get("init_args") or {})}  # fmt: skip


def load_compare_preset(name: str) -> dict[str, Any]:
    """``configs/compare/preset_<name>.yaml`` or a preset file (read by :func:`aerogan.study.load_preset`)."""
    from aerogan.study import load_preset, preset_path

    try:
        path = preset_path(name, CONFIG_DIR)
    except ValueError as err:
        raise InputError(f"--preset: {err}") from err
    preset = load_preset(str(path))
    preset["name"] = path.stem.removeprefix("preset_")
    return preset


def epochs_for(preset: dict[str, Any], architecture: str) -> int:
    """The epoch budget of ``architecture`` (both of its rows): ``epochs[<arch>]``, else ``epochs[default]``."""
    table = preset.get("epochs") or {}
    value = table.get(architecture, table.get("default"))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{preset.get('_path')}: epochs.{architecture} (or epochs.default) must be an integer >= 1, got {value!r}")
    return value


def build_datamodule(task: dict[str, Any], preset: dict[str, Any]) -> Any:
    """The task's datamodule with the preset's data overrides, instantiated as the CLI does (jsonargparse)."""
    import lightning as L
    from jsonargparse import ArgumentParser

    import datamodules  # noqa: F401 - short class names

    spec = {"class_path": task["data"]["class_path"], "init_args": {**(task["data"].get("init_args") or {}), **(preset.get("data") or {})}}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    try:
        cfg = parser.parse_object({"data": spec})
    except Exception as err:  # noqa: BLE001 - jsonargparse's errors, re-raised with the task named
        raise InputError(f"--task {task['config']}: its data section does not parse: {err}") from err
    try:
        return parser.instantiate_classes(cfg).data
    except ValueError as err:  # the datamodule's own checks (band names, patch size, grids) name the parameter
        raise InputError(f"--task {task['config']}: {err}") from err


# ---------------------------------------------------------------------------------------------- data-only scores
def eval_batches(dm: Any, split: str, max_windows: int | None = None) -> Iterator[dict[str, Any]]:
    """Deterministic batches ``{"input", "target"[, "guides"]}`` of ``split`` (every k-th window, no augmentation)."""
    from torch.utils.data import DataLoader, Subset

    if split not in dm.datasets:
        dm.datasets[split] = dm._make_dataset(split)
    ds = dm.datasets[split]
    step = 1 if not max_windows else max(1, math.ceil(len(ds) / max_windows))
    for batch in DataLoader(Subset(ds, range(0, len(ds), step)), batch_size=dm.batch_size, shuffle=False):
        yield dm.on_after_batch_transfer(batch, 0)


def fix_threshold(dm: Any, factors: dict[str, float] | None = None) -> dict[str, Any]:
    """The validation-RMSE threshold, from the data alone: ``factor x`` the bicubic (or linear) baseline."""
    import torch.nn.functional as F

    from aerogan.metrics import BandRMSE

    factors = {**FACTORS, **(factors or {})}
    idx = dm.target_in_input
    if idx is not None and dm.scale > 1:
        rule, metric = "bicubic", BandRMSE(dm.out_channels)
        for batch in eval_batches(dm, "val"):
            up = F.interpolate(batch["input"][:, idx].float(), scale_factor=dm.scale, mode="bicubic", align_corners=False)
            metric.update(up, batch["target"].float())
        baseline = float(metric.compute().mean())
        what = "the bicubic validation RMSE of the task's data (bicubic upsampling of the LR target bands)"
    else:
        from datamodules.baselines import baseline_rmse

        rule = "linear_baseline"
        baseline = float(baseline_rmse(dm)["linear_baseline"])
        what = ("the validation RMSE of a per-pixel linear least-squares map (with intercept) from the input bands to "
                "the targets, fitted on the training pixels (the task has no bicubic baseline)")  # fmt: skip
    factor = float(factors[rule])
    value = factor * baseline
    text = (f"val/rmse <= {factor:g} x {what} = {factor:g} x {baseline:.6g} = {value:.6g} (per band in data units, "
            "then averaged over bands; computed from the data before any run)")  # fmt: skip
    return {"rule": rule, "factor": factor, "baseline": baseline, "value": value, "monitor": "val/rmse", "text": text}


def write_threshold_overlay(out: Path, value: float) -> Path:
    """``<out>/threshold.yaml``: the fits' callbacks (the threshold recorder and a last-checkpoint writer)."""
    cfg = {"trainer": {"callbacks": [
        {"class_path": "callbacks.EpochsToThreshold",
         "init_args": {"monitor": "val/rmse", "rule": "absolute", "value": float(value), "stop_on_reach": False}},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True, "save_top_k": 0}},
    ]}}  # fmt: skip
    path = out / "threshold.yaml"
    with atomic_output(path) as tmp:
        tmp.write_text("# written by aerogan.compare: the threshold fixed before the runs\n" + yaml.safe_dump(cfg, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------- one row
def _device(preset: dict[str, Any]) -> torch.device:
    return torch.device("cuda" if preset.get("accelerator", "auto") != "cpu" and torch.cuda.is_available() else "cpu")


def held_out(model: Any, dm: Any, device: torch.device) -> dict[str, float]:
    """Every ``test/*`` metric of ``model`` on the task's test split (its own Trainer, nothing logged)."""
    import lightning as L

    trainer = L.Trainer(accelerator=device.type, devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    (results,) = trainer.test(model, datamodule=dm, verbose=False)
    return {k: float(v) for k, v in results.items()}


def split_rmse(model: Any, dm: Any, split: str, max_windows: int) -> float:
    """RMSE (data units, per band then averaged) of ``model`` on up to ``max_windows`` windows of ``split``."""
    from aerogan.metrics import BandRMSE

    metric = BandRMSE(dm.out_channels)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for batch in eval_batches(dm, split, max_windows):
            guides = [g.to(device) for g in batch.get("guides", ())]
            sr = model.super_resolve(batch["input"].to(device), guides)
            metric.update(sr.float().cpu(), batch["target"].float())
    return float(metric.compute().mean())


def inference(model: Any, dm: Any, folder: Path, device: torch.device, task: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
    """Wall seconds to predict the task's whole crop(s), as ``aerogan predict`` does, written under ``folder``.

    Scene datamodules fix their prediction plan (tiles, the overlap measured on the model) once, so each row
    predicts through a fresh one writing to ``folder``.
    """
    t0 = time.perf_counter()
    scenes = getattr(dm, "prediction_scenes", None)
    if scenes is not None:
        from aerogan.inference import super_resolve_product
        from aerogan.prediction.api import model_scale

        scale = model_scale(model)
        overlap = None if dm.overlap is None else dm.overlap * scale
        products = []
        for scene in scenes():
            report = super_resolve_product(model, scene, folder / dm.product_path(scene).name, nodata=dm.nodata,
                                           tile=dm.tile * scale, overlap=overlap, batch_size=dm.batch_size, device=device)  # fmt: skip
            products.append(str(report.out_path))
        how = "super_resolve_product: the whole crop, every band on the finest grid, written as a COG"
    else:
        import lightning as L

        fresh = build_datamodule(task, {**preset, "data": {**(preset.get("data") or {}), "output_dir": str(folder)}})
        trainer = L.Trainer(accelerator=device.type, devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.predict(model, datamodule=fresh, return_predictions=False)
        products = sorted(str(p) for p in folder.glob("*") if p.is_file())
        how = "aerogan predict's path (Trainer.predict with the scene writer): every prediction scene of the task"
    return {"inference_s": time.perf_counter() - t0, "inference_how": how, "products": products}


def _finished_row(out: Path, row: Row, seed: int, task: dict[str, Any], threshold: float) -> dict[str, Any] | None:
    """The newest finished record of ``row`` under ``out`` for this task, seed and threshold."""
    found = sorted((out / f"{row.architecture}_{row.objective}_s{seed}").glob(f"version_*/{ROW_FILE}"), key=lambda p: p.stat().st_mtime)
    for path in reversed(found):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("task", {}).get("id") == task["id"] and math.isclose(rec.get("threshold", -1.0), threshold, rel_tol=1e-9):
            return rec
    return None


def run_row(row: Row, task: dict[str, Any], preset: dict[str, Any], out: Path, seed: int, overlay: Path,
            threshold: float, dm: Any) -> dict[str, Any]:  # fmt: skip
    """Fit ``row`` through the ``aerogan`` CLI (:func:`aerogan.study.run_one`), then test, score and time it."""
    from aerogan.inference import load_model
    from aerogan.study import run_one

    epochs = epochs_for(preset, row.architecture)
    extra = ["--config", str(CONFIG_DIR / "base.yaml"), "--config", str(overlay), f"--trainer.max_epochs={epochs}"]
    if task["cosine_t_max"]:
        extra.append(f"--model.init_args.scheduler_g.init_args.T_max={epochs}")
    if row.objective == "supervised":
        extra.append("--model.init_args.n_critic=0")
    if preset.get("accelerator"):
        extra.append(f"--trainer.accelerator={preset['accelerator']}")
    extra += [f"--data.init_args.{k}={json.dumps(v)}" for k, v in (preset.get("data") or {}).items()]
    study_preset = {"config_dir": str(row.config.parent), "base": task["config"], "overrides": list(preset.get("overrides") or [])}
    summary = run_one(row.architecture, row.objective, seed, out, study_preset, extra)
    run_dir = Path(summary["run_dir"])
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    device = _device(preset)
    model = load_model(ckpt).to(device)
    test = held_out(model, dm, device)
    values: dict[str, Any] = {key: test.get(tag) for tag, key in TEST_METRICS.items()}
    values["train_rmse"] = split_rmse(model, dm, "train", int(preset.get("train_windows", 256)))
    values.update(inference(model, dm, run_dir / "predictions", device, task, preset))
    history = summary.get("history") or []
    record = {
        "row": row.name, "architecture": row.architecture, "architecture_name": row.display, "objective": row.objective,
        "own_objective": row.own, "generator": summary.get("generator"), "generator_params": summary.get("generator_params"),
        "max_epochs": epochs, "epochs_run": summary.get("epochs_run"), "epochs_to_threshold": summary.get("epochs_to_threshold"),
        "threshold": threshold, "best_val_rmse": summary.get("best_value"), "final_val_rmse": summary.get("final_value"),
        "history": [{"epoch": h["epoch"], "value": h["value"]} for h in history],
        "fit_time_s": summary.get("total_time_s"), "seconds_per_epoch": (summary.get("wall_time_s") or 0.0) / max(1, len(history)),
        **values, "test": test, "run_dir": str(run_dir), "checkpoint": str(ckpt),
        "task": {k: task[k] for k in ("config", "name", "id")}, "seed": seed, "preset": preset.get("name"),
        "samples_per_epoch": getattr(dm, "samples_per_epoch", None),
    }  # fmt: skip
    with atomic_output(run_dir / ROW_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return record


# ---------------------------------------------------------------------------------------------- the % gain
def percent_gain(value: float | None, reference: float | None) -> float | None:
    """``(reference - value) / reference`` in percent (lower is better), as the seed's % gain row; None if undefined."""
    if value is None or reference is None or reference == 0 or not (math.isfinite(value) and math.isfinite(reference)):
        return None
    return (reference - value) / reference * 100.0


def format_gain(gain: float | None) -> str:
    """Two decimals truncated toward zero, as the seed prints them ((21.2 - 10.3) / 21.2 = 51.415 -> ``51.41``)."""
    if gain is None:
        return "n/a"
    cents = math.floor(abs(gain) * 100.0 + 1e-6)
    return f"{'-' if gain < 0 and cents else ''}{cents // 100}.{cents % 100:02d}"


def pair_gains(row: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """% gain of ``row`` over ``reference`` per lower-is-better column, and the SRE difference in dB."""
    gains: dict[str, Any] = {key: percent_gain(row.get(key), reference.get(key)) for key in GAIN_COLUMNS}
    sre, ref = row.get("test_sre"), reference.get("test_sre")
    gains["test_sre_db"] = None if sre is None or ref is None else sre - ref
    return gains


# ---------------------------------------------------------------------------------------------- tables
def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def epochs_cell(rec: dict[str, Any]) -> str:
    e = rec.get("epochs_to_threshold")
    return str(e) if e is not None else f"not reached in {rec.get('epochs_run')} epochs"


def _with_base(value: float | None, base: float | None, digits: int = 4) -> str:
    return _num(value, digits) if base is None else f"{_num(value, digits)} ({_num(base, digits)})"


def cells(rec: dict[str, Any]) -> list[str]:
    """The markdown cells of one row (band synthesis has no bicubic or trust metric: "n/a (synthesis)")."""
    na = "n/a (band synthesis)"
    trust = rec.get("test_consistency_rmse") is not None
    return [
        rec["row"], rec["architecture_name"], rec["objective"], f"{rec['generator_params'] / 1e6:.2f} M ({rec['generator_params']:,})",
        epochs_cell(rec), _num(rec.get("train_rmse")), _with_base(rec.get("test_rmse"), rec.get("test_rmse_bicubic")),
        _with_base(rec.get("test_sre"), rec.get("test_sre_bicubic")),
        _with_base(rec.get("test_consistency_rmse"), rec.get("test_consistency_rmse_bicubic")) if trust else na,
        f"{100 * rec['test_hallucination']:.2f} %" if rec.get("test_hallucination") is not None else na,
        f"{rec['inference_s']:.1f} s",
    ]  # fmt: skip


HEADINGS = ["Row", "Architecture", "Objective", "Parameters", "Epochs to threshold", "Training RMSE",
            "Held-out RMSE (bicubic)", "SRE dB (bicubic)", "Consistency RMSE (bicubic)", "Hallucination", "Inference time"]  # fmt: skip


def gain_cells(pair: dict[str, Any]) -> list[str]:
    g = pair["gain"]
    pct = {k: format_gain(g.get(k)) for k in GAIN_COLUMNS}
    sre = "n/a" if g.get("test_sre_db") is None else f"{g['test_sre_db']:+.2f} dB"
    return [f"% gain {pair['row']} vs {pair['reference']}", "", "", pct["generator_params"], pct["epochs_to_threshold"],
            pct["train_rmse"], pct["test_rmse"], sre, pct["test_consistency_rmse"], pct["test_hallucination"], pct["inference_s"]]  # fmt: skip


def _md_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def objective_table(records: Sequence[dict[str, Any]]) -> str:
    """Architecture x objective: held-out RMSE, epochs and hallucination per objective, and reg - sup."""
    body = []
    for arch in dict.fromkeys(r["architecture"] for r in records):
        by = {r["objective"]: r for r in records if r["architecture"] == arch}
        sup, reg = by.get("supervised"), by.get("regularized")
        name = (sup or reg)["architecture_name"]  # type: ignore[index]
        diff = "n/a" if not (sup and reg) or sup.get("test_rmse") is None or reg.get("test_rmse") is None else f"{reg['test_rmse'] - sup['test_rmse']:+.4g}"

        def get(rec: dict[str, Any] | None, key: str) -> str:
            if rec is None:
                return "not run"
            if key == "epochs":
                return epochs_cell(rec)
            value = rec.get(key)
            return "n/a" if value is None else (f"{100 * value:.2f} %" if key == "test_hallucination" else _num(value))

        body.append([name, get(sup, "test_rmse"), get(reg, "test_rmse"), diff, get(sup, "epochs"), get(reg, "epochs"),
                     get(sup, "test_hallucination"), get(reg, "test_hallucination")])  # fmt: skip
    head = ["Architecture", "Held-out RMSE sup", "Held-out RMSE reg", "reg - sup", "Epochs sup", "Epochs reg",
            "Hallucination sup", "Hallucination reg"]  # fmt: skip
    return _md_table(head, body)


def seed_table() -> str:
    body = [[name, f"{p:g} M", str(e), f"{r:g}", f"{t:g} s"] for name, (p, e, r, t) in SEED_TABLE.items()]
    a, b = SEED_TABLE["ALERT"], SEED_TABLE["DSen2"]
    body.append(["% gain ALERT vs DSen2"] + [format_gain(percent_gain(x, y)) for x, y in zip(a, b, strict=True)])
    return _md_table(["Metrics", "Parameters", "Training epochs", "Training RMSE", "Inference Time"], body)


# ---------------------------------------------------------------------------------------------- aggregate
def aggregate(records: Sequence[dict[str, Any]], meta: dict[str, Any], pair: Sequence[str] | None) -> dict[str, Any]:
    """``compare.json``'s content: the run's settings, the rows in table order and the pair's % gain."""
    order = {r.name: i for i, r in enumerate(discover_rows())}
    rows = sorted(records, key=lambda r: (order.get(r["row"], len(order)), r["row"]))
    result = {**meta, "rows": rows, "pair": None, "pair_note": None}
    if pair:
        by = {r["row"].lower(): r for r in rows}
        a, b = (by.get(p.lower()) for p in pair)
        if a is None or b is None:
            missing = [p for p, r in zip(pair, (a, b), strict=True) if r is None]
            result["pair_note"] = f"no % gain row: {missing} not among the rows run"
        else:
            result["pair"] = {"row": a["row"], "reference": b["row"], "gain": pair_gains(a, b)}
    return result


def write_outputs(out: Path, result: dict[str, Any]) -> list[Path]:
    """``compare.json``, ``compare.csv``, ``compare.md`` and the plots (when matplotlib is installed)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    plots, note = [], None
    if importlib.util.find_spec("matplotlib") is None:
        note = "plots skipped: matplotlib is not installed (pip install matplotlib)"
    elif rows:
        plots = plot_curves(rows, result["threshold"]["value"], out), plot_inference(rows, out)
    result = {**result, "plots": [str(p) for p in plots], "plots_note": note}
    with atomic_output(out / "compare.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    fields = ["row", "architecture", "objective", "generator", "generator_params", "max_epochs", "epochs_run",
              "epochs_to_threshold", "epochs_cell", "train_rmse", *TEST_METRICS.values(), "inference_s", "run_dir"]  # fmt: skip
    with atomic_output(out / "compare.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for rec in rows:
            writer.writerow({**rec, "epochs_cell": epochs_cell(rec)})
        if result.get("pair"):
            p = result["pair"]
            gain = {k: format_gain(v) for k, v in p["gain"].items() if k in GAIN_COLUMNS}
            writer.writerow({"row": f"% gain {p['row']} vs {p['reference']}", **gain,
                             "test_sre": None if p["gain"]["test_sre_db"] is None else round(p["gain"]["test_sre_db"], 4)})  # fmt: skip
    with atomic_output(out / "compare.md") as tmp:
        tmp.write_text(markdown(result))
    return [out / "compare.json", out / "compare.csv", out / "compare.md", *plots]


def markdown(result: dict[str, Any]) -> str:
    """The report: settings and definitions, the table with the % gain row, architecture x objective, the seed."""
    task, thr = result["task"], result["threshold"]
    body = [cells(r) for r in result["rows"]]
    if result.get("pair"):
        body.append(gain_cells(result["pair"]))
    budgets = ", ".join(f"{r['row']} {r['max_epochs']}" for r in result["rows"])
    spe = sorted({str(r.get("samples_per_epoch")) for r in result["rows"]})
    text = [
        f"# Network comparison on `{task['name']}` (seed {result['seed']})\n",
        f"Task config: `{task['config']}`. Presets: {', '.join(sorted({str(r.get('preset')) for r in result['rows']}))}.\n",
        f"**Threshold** (fixed before the runs): {thr['text']}. A row that never reaches it reads \"not reached in N epochs\".\n",
        "**Training RMSE**: the final model on a fixed subset of training-split windows (no augmentation, LR made as "
        "for validation), data units, averaged over bands (val on the train split, not the running training loss).\n",
        "**Held-out**: the test split (`test/rmse`, `test/sre` with their bicubic baselines, `test/consistency/rmse`: "
        "output degraded back against the input; hallucination: `test/correctness/hallucination`, fraction of pixels).\n",
        f"**Inference time**: {result['rows'][0]['inference_how'] if result['rows'] else 'n/a'}; wall seconds on "
        f"{result.get('device', 'the run device')}, file writing included.\n",
        f"**Budgets** (epochs per row; both rows of an architecture get the same): {budgets}; samples per epoch: {', '.join(spe)}. "
        "Supervised rows train no critic.\n",
        _md_table(HEADINGS, body),
    ]
    if result.get("pair_note"):
        text.append(f"\n{result['pair_note']}\n")
    elif result.get("pair"):
        p = result["pair"]
        text.append(f"\n% gain = ({p['reference']} - {p['row']}) / {p['reference']} x 100, truncated to two decimals as in the "
                    "talk's table (lower is better in every such column); SRE as the difference in dB.\n")  # fmt: skip
    text += ["\n## Architecture x objective\n\n", objective_table(result["rows"]),
             "\nAcross a line: the critic's effect on one architecture; down a column: the architecture's effect under one objective.\n",
             "\n## The talk's table (for reference)\n\n", seed_table()]  # fmt: skip
    if result.get("plots_note"):
        text.append(f"\n{result['plots_note']}\n")
    return "\n".join(t.strip("\n") + "\n" for t in text)


def _colors(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    return {a: f"C{i % 10}" for i, a in enumerate(archs)}


def plot_curves(rows: Sequence[dict[str, Any]], threshold: float, out: Path) -> Path:
    """``compare_val_rmse.png``: validation RMSE against epochs, one line per row, the threshold dashed."""
    from aerogan.report.figures import _figure, _save

    fig, axes = _figure(1, 1, 8, 5)
    ax = axes[0, 0]
    colors = _colors(rows)
    for r in rows:
        h = r.get("history") or []
        ax.plot([p["epoch"] for p in h], [p["value"] for p in h], color=colors[r["architecture"]],
                ls="-" if r["objective"] == "regularized" else "--", marker="o", ms=3, label=r["row"])  # fmt: skip
    ax.axhline(threshold, color="0.3", ls=":", label=f"threshold {threshold:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation RMSE (data units)")
    ax.set_title("Validation RMSE per row (solid: regularized, dashed: supervised)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out / "compare_val_rmse.png")


def plot_inference(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """``compare_inference.png``: whole-crop inference time against the generator's parameter count."""
    from aerogan.report.figures import _figure, _save

    fig, axes = _figure(1, 1, 7, 4.5)
    ax = axes[0, 0]
    colors = _colors(rows)
    for r in rows:
        x, y = r["generator_params"] / 1e6, r["inference_s"]
        ax.scatter([x], [y], color=colors[r["architecture"]], marker="o" if r["objective"] == "regularized" else "s")
        ax.annotate(r["row"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("generator parameters (M)")
    ax.set_ylabel("whole-crop inference time (s)")
    ax.set_title("Inference time against parameters (circle: regularized, square: supervised)")
    ax.grid(alpha=0.3)
    return _save(fig, out / "compare_inference.png")


# ---------------------------------------------------------------------------------------------- runner
def _meta(task: dict[str, Any], preset: dict[str, Any], seed: int, threshold: dict[str, Any]) -> dict[str, Any]:
    return {"task": {k: task[k] for k in ("config", "name", "id")}, "seed": seed, "threshold": threshold,
            "preset": {k: v for k, v in preset.items() if not k.startswith("_")} | {"file": preset.get("_path")},
            "device": str(_device(preset))}  # fmt: skip


def run_compare(task_path: str, preset: dict[str, Any], out: Path, only: Sequence[str] | None = None,
                pair: Sequence[str] | None = ("ALERT", "DSen2"), seed: int = 0, threshold: float | None = None,
                devices: int = 1, force: bool = False, aggregate_outputs: bool = True) -> dict[str, Any]:  # fmt: skip
    """Check the inputs, fix the threshold, fit the rows (here or in ``devices`` processes) and write the table.

    The table holds every finished row under ``out`` for this task, seed and threshold, so rows run by earlier
    calls into the same folder join it (``--merge`` joins folders).
    """
    rows = select_rows(discover_rows(), only)
    if pair:
        if len(pair) != 2:
            raise InputError(f"--pair takes two row names (row, reference), got {list(pair)}")
        select_rows(discover_rows(), list(pair), "--pair")  # names checked before any run
    task = load_task(task_path)
    for r in rows:
        epochs_for(preset, r.architecture)
    if devices < 1:
        raise InputError(f"--devices must be >= 1, got {devices}")
    if preset.get("num_threads"):
        torch.set_num_threads(int(preset["num_threads"]))
    out.mkdir(parents=True, exist_ok=True)
    dm = build_datamodule(task, preset)
    if threshold is None:
        thr = fix_threshold(dm, preset.get("threshold_factor"))
    else:
        thr = {"rule": "absolute", "factor": 1.0, "baseline": None, "value": float(threshold), "monitor": "val/rmse",
               "text": f"val/rmse <= {threshold:.6g} (given with --threshold)"}  # fmt: skip
    print(f"[compare] threshold: {thr['text']}", flush=True)
    overlay = write_threshold_overlay(out, thr["value"])
    meta = _meta(task, preset, seed, thr)
    if devices > 1 and len(rows) > 1:
        run_parallel(rows, task, preset, out, seed, thr["value"], devices, force)
        missing = [r.name for r in rows if _finished_row(out, r, seed, task, thr["value"]) is None]
        if missing:
            raise RuntimeError(f"rows {missing} left no {ROW_FILE} under {out} (see {out / 'logs'}/<row>.log)")
    else:
        for r in rows:
            done = None if force else _finished_row(out, r, seed, task, thr["value"])
            if done is not None:
                print(f"[compare] {r.name}: already done ({done['run_dir']})", flush=True)
                continue
            print(f"[compare] {r.name}: fitting {epochs_for(preset, r.architecture)} epochs", flush=True)
            rec = run_row(r, task, preset, out, seed, overlay, thr["value"], dm)
            print(f"[compare] {r.name}: {rec['generator_params']:,} parameters, epochs to threshold {epochs_cell(rec)}, "
                  f"held-out RMSE {_num(rec['test_rmse'])}, inference {rec['inference_s']:.1f} s, fit {rec['fit_time_s']:.0f} s", flush=True)  # fmt: skip
            if aggregate_outputs:
                write_outputs(out, aggregate(_collect(out, seed, task, thr["value"]), meta, pair))
    result = aggregate(_collect(out, seed, task, thr["value"]), meta, pair)
    if aggregate_outputs:
        write_outputs(out, result)
    return result


def _collect(out: Path, seed: int, task: dict[str, Any], threshold: float) -> list[dict[str, Any]]:
    """Every finished row under ``out`` for this task, seed and threshold (this call's and earlier calls')."""
    found = (_finished_row(out, r, seed, task, threshold) for r in discover_rows())
    return [rec for rec in found if rec is not None]


def run_parallel(rows: Sequence[Row], task: dict[str, Any], preset: dict[str, Any], out: Path, seed: int,
                 threshold: float, devices: int, force: bool) -> None:  # fmt: skip
    """Fit ``rows`` in up to ``devices`` worker processes at once (one row each; on GPUs one device each)."""
    gpu = _device(preset).type == "cuda"
    if gpu and devices > torch.cuda.device_count():
        raise InputError(f"--devices {devices}: this machine has {torch.cuda.device_count()} GPU(s)")
    threads = int(preset.get("num_threads") or max(1, (os.cpu_count() or 1) // devices))
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue, free, running, failed = list(rows), list(range(devices)), {}, []
    while queue or running:
        while queue and free:
            slot, row = free.pop(0), queue.pop(0)
            env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": str(slot)} if gpu else {})}
            cmd = [sys.executable, "-m", "aerogan.compare", "--preset", preset["_path"], "--task", task["config"],
                   "--out", str(out), "--seed", str(seed), "--only", row.name, "--threshold", repr(threshold),
                   "--threads", str(threads), "--worker", *(["--force"] if force else [])]  # fmt: skip
            log = open(logs / f"{row.name}.log", "w")  # noqa: SIM115 - closed when the worker ends
            print(f"[compare] {row.name}: worker on {'GPU ' + str(slot) if gpu else 'CPU'} (log {log.name})", flush=True)
            running[slot] = (row, subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd()), log)
        time.sleep(0.5)
        for slot, (row, proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[slot]
            free.append(slot)
            print(f"[compare] {row.name}: worker ended ({'ok' if proc.returncode == 0 else f'exit {proc.returncode}'})", flush=True)
            if proc.returncode:
                failed.append(row.name)
    if failed:
        raise RuntimeError(f"rows {failed} failed; see {logs}/<row>.log")


# ---------------------------------------------------------------------------------------------- merge
def merge(dirs: Sequence[str | os.PathLike[str]], out: Path, pair: Sequence[str] | None = None) -> dict[str, Any]:
    """One table from the ``compare.json`` of separate jobs: same task, seed and threshold, each row once."""
    results = []
    for d in dirs:
        path = Path(d) / "compare.json"
        if not path.is_file():
            raise InputError(f"--merge: {d} holds no compare.json (a folder written by aerogan.compare --out)")
        results.append((str(d), json.loads(path.read_text())))
    first_dir, first = results[0]
    for d, r in results[1:]:
        if r["task"]["id"] != first["task"]["id"]:
            raise InputError(f"--merge: {d} holds results of task {r['task']['name']} ({r['task']['config']}) but {first_dir} of "
                             f"task {first['task']['name']} ({first['task']['config']}); merge results of one task only")  # fmt: skip
        if r["seed"] != first["seed"]:
            raise InputError(f"--merge: {d} was run with seed {r['seed']} but {first_dir} with seed {first['seed']}; merge one seed only")
        if not math.isclose(r["threshold"]["value"], first["threshold"]["value"], rel_tol=1e-9):
            raise InputError(f"--merge: {d} used the threshold {r['threshold']['value']:.6g} but {first_dir} "
                             f"{first['threshold']['value']:.6g} (different data settings); merge runs of one threshold only")  # fmt: skip
    seen: dict[str, str] = {}
    records = []
    for d, r in results:
        for rec in r["rows"]:
            if rec["row"] in seen:
                raise InputError(f"--merge: row {rec['row']} is in both {seen[rec['row']]} and {d}; keep it in one folder only")
            seen[rec["row"]] = d
            records.append(rec)
    meta = {k: first[k] for k in ("task", "seed", "threshold", "preset", "device") if k in first} | {"merged_from": [d for d, _ in results]}
    pair = pair if pair is not None else ((first.get("pair") or {}).get("row"), (first.get("pair") or {}).get("reference"))
    result = aggregate(records, meta, pair if all(pair) else None)
    write_outputs(out, result)
    return result


# ---------------------------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aerogan.compare", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="cpu, full, quick (configs/compare/preset_<name>.yaml) or a preset file")
    parser.add_argument("--quick", action="store_true", help="the tiny preset (tests): same as --preset quick")
    parser.add_argument("--out", default="runs/compare", help="output folder (run folders, compare.md/.csv/.json, plots)")
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"task config (default {DEFAULT_TASK}; e.g. configs/sentinel2_swir_synthesis.yaml)")
    parser.add_argument("--only", nargs="+", metavar="ROW", help="rows to run, e.g. AeroGAN DSen2 ALERT-sup (default: all)")
    parser.add_argument("--pair", nargs=2, metavar=("ROW", "REFERENCE"), default=["ALERT", "DSen2"], help="the %% gain row (default ALERT DSen2)")
    parser.add_argument("--merge", nargs="+", metavar="DIR", help="merge the compare.json of separate jobs into --out (runs nothing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, default=1, help="rows side by side in N processes (GPUs: one device each)")
    parser.add_argument("--threshold", type=float, help="an absolute validation-RMSE threshold instead of the data's rule")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: the preset's num_threads)")
    parser.add_argument("--force", action="store_true", help="refit rows that already have a finished record")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one row of --devices: no aggregate
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    out = Path(args.out)
    start = time.perf_counter()
    try:
        if args.merge:
            result = merge(args.merge, out, args.pair)
        else:
            preset = load_compare_preset("quick" if args.quick else args.preset)
            if args.threads:
                preset["num_threads"] = args.threads
            result = run_compare(args.task, preset, out, args.only, args.pair, args.seed, args.threshold, args.devices,
                                 args.force, aggregate_outputs=not args.worker)  # fmt: skip
    except InputError as err:
        raise SystemExit(f"aerogan compare: {err}") from err
    if not args.worker:
        print(f"\n[compare] {len(result['rows'])} rows, {time.perf_counter() - start:.0f} s; table in {out / 'compare.md'}\n")
        print(markdown(result).split("\n## ")[0])


if __name__ == "__main__":
    main()
