r"""Does the critic invent detail? The measured answer: one grid of runs per task, one table per task.

For each task (``quickstart``: the embedded synthetic scenes, x2; ``sentinel2_t2``: the real Sentinel-2 crop,
20 m bands to 10 m with the 10 m guide) the runner fits 8 models with the same seed, data and epoch budget:

* ``supervised`` and ``regularized`` with ``lambda_adv`` in {1e-3, 1e-2, 1e-1},
* each with ``consistency_projection`` false and true,

then tests each on the task's held-out split with its ``last.ckpt`` (``aerogan fit`` then ``aerogan test``
through :func:`aerogan.cli.cli_main`, in-process, as :mod:`aerogan.study` does) and collects the test metrics of
README "Does the critic invent detail?": RMSE, SRE, consistency RMSE / SAM / shift, synthesis L1 and the
improvement / omission / hallucination fractions. The cost of each gain is stated against the supervised run
without projection: ΔRMSE (relative, %) and Δhallucination (percentage points), plus generated sentences;
bicubic figures head each table (its synthesis is 0 and its classified pixels are all omissions, by definition).

Presets (``configs/trust/preset_<name>.yaml``) set the budget per task, the grid and the overrides:

* ``cpu``: quickstart 8 epochs, T2 12 epochs (the cosine schedule spans the 12), topology snapshots and sample
  panels off, one intra-op thread. Measured first one run of each (regularized, λ = 1e-2, projection; load
  average about 1): quickstart 65 s, T2 248 s. The whole preset, on the shared 2-core machine with other jobs
  running (load average 2–3): 36.0 min wall; per run fit + test, quickstart 29–30 s without and 59–62 s with the
  projection, T2 198–214 s without and 226–252 s with it (testing takes about 1 s).
* ``quick`` (``--quick``): 1 epoch of 2 training batches, 1 validation and 2 test batches per run; T2 only where
  the shared data exist (for tests and smoke checks).

Usage::

    python -m aerogan.trust_study --preset cpu --out runs/trust            # or: aerogan trust --preset cpu ...
    python -m aerogan.trust_study --preset cpu --out runs/trust --tasks quickstart
    python -m aerogan.trust_study --preset cpu --out runs/trust --readme   # print the README section

Runs land in ``<out>/<task>/<run>/version_<n>/`` (TensorBoard events, checkpoints, ``test/`` for the test
run, ``trust_run.json`` with every test metric); finished runs are reused unless ``--force``. The aggregate is
``<out>/trust.json``, ``<out>/trust.csv`` (one row per run, bicubic rows included) and ``<out>/trust.md``.
With the default ``--tasks``, a task whose data are missing is skipped with a warning; named explicitly, it
is an error naming the missing file.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aerogan.atomic import atomic_output
from aerogan.study import load_preset, preset_path

__all__ = [
    "RunSpec",
    "grid",
    "load_trust_preset",
    "main",
    "markdown",
    "run_trust_study",
    "select_tasks",
    "summarize",
]

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs" / "trust"
RECORD_NAME = "trust_run.json"
REFERENCE = "supervised"

#: Table fields -> the test tags they read (``SuperResolution._log_epoch_metrics``).
METRICS = {
    "rmse": "test/rmse",
    "sre": "test/sre",
    "consistency_rmse": "test/consistency/rmse",
    "consistency_l1": "test/consistency/l1",
    "consistency_sam": "test/consistency/sam",
    "consistency_shift": "test/consistency/shift",
    "synthesis_l1": "test/synthesis/l1",
    "improvement": "test/correctness/improvement",
    "omission": "test/correctness/omission",
    "hallucination": "test/correctness/hallucination",
}
#: The bicubic baseline's tags; synthesis and correctness have none (0 and all-omission by definition).
BICUBIC = {
    "rmse": "test/rmse_bicubic",
    "sre": "test/sre_bicubic",
    "consistency_rmse": "test/consistency/rmse_bicubic",
    "consistency_l1": "test/consistency/l1_bicubic",
    "consistency_sam": "test/consistency/sam_bicubic",
    "consistency_shift": "test/consistency/shift_bicubic",
}
BICUBIC_DEFINED = {"synthesis_l1": 0.0, "improvement": 0.0, "omission": 1.0, "hallucination": 0.0}

#: Markdown columns: header, field, format.
COLUMNS = [
    ("RMSE", "rmse", "{:.4g}"),
    ("SRE (dB)", "sre", "{:.2f}"),
    ("cons. RMSE", "consistency_rmse", "{:.3g}"),
    ("cons. SAM (°)", "consistency_sam", "{:.3g}"),
    ("cons. shift (LR px)", "consistency_shift", "{:.3g}"),
    ("synth. L1", "synthesis_l1", "{:.4g}"),
    ("improv. (%)", "improvement", "pct"),
    ("omission (%)", "omission", "pct"),
    ("halluc. (%)", "hallucination", "pct"),
    ("ΔRMSE (%)", "delta_rmse_pct", "{:+.1f}"),
    ("Δhalluc. (pts)", "delta_hallucination_pts", "{:+.1f}"),
]
CSV_FIELDS = ["task", "run", "objective", "lambda_adv", "projection", "epochs", "seed", *METRICS,
              "delta_rmse_pct", "delta_hallucination_pts", "fit_time_s", "test_time_s", "run_dir"]  # fmt: skip


# ------------------------------------------------------------------------------------------------ the grid
@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: an objective, its λ (None for supervised) and the projection switch."""

    objective: str
    lambda_adv: float | None
    projection: bool

    @property
    def name(self) -> str:
        lam = "" if self.lambda_adv is None else f"_{format_lambda(self.lambda_adv)}"
        return f"{self.objective}{lam}{'_proj' if self.projection else ''}"

    @property
    def label(self) -> str:
        """Short human name: ``supervised``, ``λ=1e-2``, with ``+ proj.`` when projected."""
        base = "supervised" if self.lambda_adv is None else f"λ={format_lambda(self.lambda_adv)}"
        return base + (" + proj." if self.projection else "")

    def overrides(self) -> list[str]:
        args = ["--model.init_args.objective", self.objective,
                "--model.init_args.consistency_projection", str(self.projection).lower()]  # fmt: skip
        if self.lambda_adv is not None:
            args += ["--model.init_args.lambda_adv", repr(float(self.lambda_adv))]
        return args


def format_lambda(value: float) -> str:
    """``0.001`` -> ``1e-3``, ``0.025`` -> ``2.5e-2``."""
    mantissa, exponent = f"{float(value):e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def grid(preset: dict[str, Any]) -> list[RunSpec]:
    """The preset's runs: each objective (``regularized`` once per λ) × each projection setting."""
    objectives = list(preset.get("objectives", ["supervised", "regularized"]))
    lambdas = [float(v) for v in preset.get("lambdas", [1e-3, 1e-2, 1e-1])]
    projections = [bool(v) for v in preset.get("projections", [False, True])]
    bad = [o for o in objectives if o not in ("supervised", "regularized")]
    if bad:
        raise ValueError(f"preset objectives: expected 'supervised' and/or 'regularized', got {bad}")
    if "regularized" in objectives and (not lambdas or any(not (v > 0 and math.isfinite(v)) for v in lambdas)):
        raise ValueError(f"preset lambdas: expected a non-empty list of positive numbers, got {lambdas}")
    specs = []
    for objective in objectives:
        for lam in [None] if objective == "supervised" else lambdas:
            specs.extend(RunSpec(objective, lam, proj) for proj in projections)
    return specs


# ------------------------------------------------------------------------------------------------ presets
def load_trust_preset(name: str) -> dict[str, Any]:
    """``configs/trust/preset_<name>.yaml`` (or a path to a preset file), checked for a ``tasks`` mapping."""
    path = preset_path(name, CONFIG_DIR)
    preset = load_preset(str(path))
    tasks = preset.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError(f"preset {path}: expected a `tasks:` mapping of task name -> {{config, epochs}}")
    for task, spec in tasks.items():
        if not isinstance(spec, dict) or "config" not in spec or int(spec.get("epochs", 0)) < 1:
            raise ValueError(f"preset {path}: task {task!r} needs `config` (a run config) and `epochs` (>= 1)")
    return preset


def _data_files(spec: dict[str, Any]) -> dict[str, list[Path]]:
    """A task's data: config key -> absolute files (relative entries are taken from the repository root)."""
    return {key: [p if p.is_absolute() else (REPO / p).resolve() for p in map(Path, paths)]
            for key, paths in (spec.get("data") or {}).items()}  # fmt: skip


def select_tasks(preset: dict[str, Any], tasks: Sequence[str] | None = None) -> list[str]:
    """The tasks to run: ``tasks`` (every one must exist and have its data) or all of the preset's.

    Unknown names are a ``ValueError`` listing the known ones. A named task whose data are missing is a
    ``FileNotFoundError`` naming the file; with the default (all tasks) it is skipped with a warning.
    """
    known = list(preset["tasks"])
    chosen = list(dict.fromkeys(tasks)) if tasks else known
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}: --tasks takes names among {known}")
    kept = []
    for task in chosen:
        missing = [p for files in _data_files(preset["tasks"][task]).values() for p in files if not p.exists()]
        if not missing:
            kept.append(task)
        elif tasks:
            raise FileNotFoundError(f"task {task!r} needs {missing[0]}, which does not exist (shared data missing?)")
        else:
            warnings.warn(f"skipping task {task!r}: its data {missing[0]} does not exist", UserWarning, stacklevel=2)
    return kept


# ------------------------------------------------------------------------------------------------ running
@contextlib.contextmanager
def _bare_argv() -> Iterator[None]:
    """LightningCLI warns when given args while ``sys.argv`` also holds a command line."""
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        yield
    finally:
        sys.argv = argv


def _finished(folder: Path, fit_args: Sequence[str]) -> dict[str, Any] | None:
    """The newest finished record under ``<out>/<task>/<run>/`` that was fitted with exactly ``fit_args``."""
    for path in sorted(folder.glob(f"version_*/{RECORD_NAME}"), key=lambda p: p.stat().st_mtime, reverse=True):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            record = json.loads(path.read_text())
            if record.get("finished") and record.get("fit_args") == list(fit_args):
                return record
    return None


def task_args(task: str, preset: dict[str, Any], extra: Sequence[str] = ()) -> list[str]:
    """The CLI arguments every run of ``task`` shares (config, seed, budget, data, overrides), fit and test alike."""
    spec = preset["tasks"][task]
    config = Path(spec["config"])
    args = ["--config", str(config if config.is_absolute() else REPO / config),
            "--seed_everything", str(int(preset.get("seed", 0))),
            "--trainer.max_epochs", str(int(spec["epochs"]))]  # fmt: skip
    for key, files in _data_files(spec).items():
        args += [f"--{key}", json.dumps([str(p) for p in files])]
    return args + [str(a) for a in (*preset.get("overrides", []), *spec.get("overrides", []), *extra)]


def fit_arguments(task: str, spec: RunSpec, preset: dict[str, Any], out: Path, extra: Sequence[str] = ()) -> list[str]:
    """``aerogan fit`` arguments of one grid cell, logging to ``<out>/<task>/<run>/version_<n>/``."""
    return ["fit", *task_args(task, preset, extra), *spec.overrides(),
            "--trainer.logger.init_args.save_dir", str(out / task), "--trainer.logger.init_args.name", spec.name]  # fmt: skip


def run_one(task: str, spec: RunSpec, preset: dict[str, Any], out: Path, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Fit one grid cell, test its ``last.ckpt`` on the held-out split; returns (and writes) its record."""
    from aerogan.cli import cli_main

    shared = [*task_args(task, preset, extra), *spec.overrides()]
    fit_args = fit_arguments(task, spec, preset, out, extra)
    start = time.perf_counter()
    with _bare_argv():
        cli = cli_main(fit_args)
    fit_time = time.perf_counter() - start
    trainer = cli.trainer  # type: ignore[union-attr]
    folder = Path(trainer.logger.log_dir).resolve()
    ckpt = getattr(trainer.checkpoint_callback, "last_model_path", "")
    if not ckpt or not Path(ckpt).is_file():
        raise RuntimeError(f"{task}/{spec.name}: fit wrote no last.ckpt (the config's ModelCheckpoint needs save_last: true)")
    test_args = ["test", *shared, "--ckpt_path", ckpt, "--verbose", "false", "--trainer.logger.init_args.save_dir", str(folder.parent),
                 "--trainer.logger.init_args.name", folder.name, "--trainer.logger.init_args.version", "test"]  # fmt: skip
    start = time.perf_counter()
    with _bare_argv(), warnings.catch_warnings():
        # the config's ModelCheckpoint saves nothing at test; its note that the test folder differs is noise here
        warnings.filterwarnings("ignore", message="The dirpath has changed", category=UserWarning)
        tested = cli_main(test_args)
    test_time = time.perf_counter() - start
    metrics = {k: float(v) for k, v in tested.trainer.callback_metrics.items() if k.startswith("test/")}  # type: ignore[union-attr]
    if "test/rmse" not in metrics:
        raise RuntimeError(f"{task}/{spec.name}: the test run logged no test/rmse (got {sorted(metrics)})")
    record = {"task": task, "run": spec.name, "objective": spec.objective, "lambda_adv": spec.lambda_adv,
              "projection": spec.projection, "epochs": int(trainer.max_epochs),
              "seed": int(preset.get("seed", 0)), "fit_time_s": fit_time, "test_time_s": test_time,
              "ckpt_path": ckpt, "run_dir": str(folder), "metrics": metrics, "fit_args": fit_args,
              "finished": True}  # fmt: skip
    with atomic_output(folder / RECORD_NAME) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return record


def run_trust_study(
    preset: dict[str, Any],
    out: Path,
    tasks: Sequence[str] | None = None,
    extra: Sequence[str] = (),
    force: bool = False,
) -> dict[str, Any]:
    """Run every grid cell of every selected task not already finished under ``out``; write and return the aggregate."""
    chosen = select_tasks(preset, tasks)
    specs = grid(preset)
    threads = preset.get("num_threads")
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    for task in chosen:
        for spec in specs:
            done = None if force else _finished(out / task / spec.name, fit_arguments(task, spec, preset, out, extra))
            if done is not None:
                print(f"[trust] {task} {spec.name}: already done ({done['run_dir']})", flush=True)
            else:
                print(f"[trust] {task} {spec.name}: fitting", flush=True)
                done = run_one(task, spec, preset, out, extra)
                m = done["metrics"]
                print(f"[trust] {task} {spec.name}: test RMSE {m['test/rmse']:.4g} (bicubic {m.get('test/rmse_bicubic', math.nan):.4g}), "
                      f"fit {done['fit_time_s']:.0f} s, test {done['test_time_s']:.0f} s", flush=True)  # fmt: skip
            records.append(done)
            write_outputs(out, summarize(records, preset, time.perf_counter() - start))
    result = summarize(records, preset, time.perf_counter() - start)
    write_outputs(out, result)
    return result


# ------------------------------------------------------------------------------------------------ tables
def _row(record: dict[str, Any]) -> dict[str, Any]:
    m = record["metrics"]
    row = {k: record.get(k) for k in ("task", "run", "objective", "lambda_adv", "projection", "epochs", "seed",
                                      "fit_time_s", "test_time_s", "run_dir")}  # fmt: skip
    row.update({field: m.get(tag) for field, tag in METRICS.items()})
    return row


def _bicubic_row(reference: dict[str, Any]) -> dict[str, Any]:
    m = reference["metrics"]
    row: dict[str, Any] = {"task": reference["task"], "run": "bicubic", "objective": "bicubic", "lambda_adv": None,
                           "projection": None, "epochs": None, "seed": None, "fit_time_s": None,
                           "test_time_s": None, "run_dir": None}  # fmt: skip
    row.update({field: m.get(tag) for field, tag in BICUBIC.items()})
    return row | BICUBIC_DEFINED


def _deltas(row: dict[str, Any], ref: dict[str, Any] | None) -> None:
    """ΔRMSE in % of the reference RMSE, Δhallucination in percentage points; None where undefined."""
    ok = ref is not None and None not in (row["rmse"], ref["rmse"]) and ref["rmse"] > 0
    row["delta_rmse_pct"] = 100.0 * (row["rmse"] - ref["rmse"]) / ref["rmse"] if ok else None  # type: ignore[index]
    ok = ref is not None and None not in (row["hallucination"], ref["hallucination"])
    row["delta_hallucination_pts"] = 100.0 * (row["hallucination"] - ref["hallucination"]) if ok else None  # type: ignore[index]


def summarize(records: Sequence[dict[str, Any]], preset: dict[str, Any] | None = None, wall_s: float | None = None) -> dict[str, Any]:
    """Per task: the bicubic row, one row per run with its deltas against the supervised run without projection,
    and the generated sentences."""
    tasks: dict[str, Any] = {}
    for task in dict.fromkeys(r["task"] for r in records):
        mine = [r for r in records if r["task"] == task]
        ref_record = next((r for r in mine if r["run"] == REFERENCE), None)
        rows = [_row(r) for r in mine]
        ref = next((row for row in rows if row["run"] == REFERENCE), None)
        if ref_record is not None:
            rows.insert(0, _bicubic_row(ref_record))
        for row in rows:
            _deltas(row, ref)
        tasks[task] = {"reference": REFERENCE if ref else None, "rows": rows, "sentences": sentences(rows)}
    meta = {k: v for k, v in (preset or {}).items() if not k.startswith("_")} | {
        "preset_file": (preset or {}).get("_path")
    }
    run_s = sum((r.get("fit_time_s") or 0.0) + (r.get("test_time_s") or 0.0) for r in records)
    return {"preset": meta, "wall_time_s": wall_s, "run_time_s": run_s, "tasks": tasks, "runs": list(records)}


def _change(value: float | None, what: str, unit: str) -> str:
    """``lowers RMSE by 3.1 %`` / ``raises hallucination by 0.4 points`` / ``leaves RMSE unchanged``."""
    if value is None:
        return f"{what}: n/a"
    if round(value, 1) == 0:
        return f"leaves {what} unchanged"
    return f"{'raises' if value > 0 else 'lowers'} {what} by {abs(value):.1f}{unit}"


def _effect(label: str, d_rmse: float | None, d_hall: float | None) -> str:
    if d_rmse is not None and d_hall is not None and round(d_rmse, 1) == 0 == round(d_hall, 1):
        return f"{label} leaves RMSE and hallucination unchanged"
    return f"{label} {_change(d_rmse, 'RMSE', ' %')} and {_change(d_hall, 'hallucination', ' points')}"


def sentences(rows: Sequence[dict[str, Any]]) -> list[str]:
    """What the numbers say, generated from them: the λ effect, the projection effect, the extremes."""
    runs = [r for r in rows if r["run"] != "bicubic"]
    ref = next((r for r in runs if r["run"] == REFERENCE), None)
    if ref is None:
        return ["No supervised run without projection: no reference for the deltas."]
    out = []
    plain = [r for r in runs if r["objective"] == "regularized" and not r["projection"]]
    if plain:
        effects = "; ".join(_effect(f"λ={format_lambda(r['lambda_adv'])}", r["delta_rmse_pct"], r["delta_hallucination_pts"])
                            for r in plain)  # fmt: skip
        out.append(f"Against the supervised run (RMSE {ref['rmse']:.4g}, hallucination {100 * ref['hallucination']:.1f} %), "
                   f"without projection: {effects}.")  # fmt: skip
    twins = []
    by_name = {r["run"]: r for r in runs}
    for r in runs:
        base = by_name.get(r["run"].removesuffix("_proj")) if r["projection"] else None
        if base is None:
            continue
        spec = RunSpec(r["objective"], r["lambda_adv"], False)
        d_rmse = 100.0 * (r["rmse"] - base["rmse"]) / base["rmse"] if base["rmse"] else None
        d_hall = 100.0 * (r["hallucination"] - base["hallucination"])
        twins.append((spec.label, d_rmse, d_hall, base["consistency_rmse"], r["consistency_rmse"]))
    if twins:
        effects = "; ".join(_effect(label, dr, dh) for label, dr, dh, _, _ in twins)
        before = [t[3] for t in twins]
        after = [t[4] for t in twins]
        out.append(f"Adding the projection (against the same run without it): {effects}; consistency RMSE goes from "
                   f"{_span(before)} to {_span(after)}.")  # fmt: skip
    best = min(runs, key=lambda r: r["rmse"])
    least = min(runs, key=lambda r: r["hallucination"])
    label = {r["run"]: RunSpec(r["objective"], r["lambda_adv"], r["projection"]).label for r in runs}
    out.append(f"Lowest RMSE: {label[best['run']]} ({best['rmse']:.4g}); lowest hallucination: "
               f"{label[least['run']]} ({100 * least['hallucination']:.1f} %).")  # fmt: skip
    return out


def _span(values: Sequence[float]) -> str:
    lo, hi = f"{min(values):.3g}", f"{max(values):.3g}"
    return lo if lo == hi else f"{lo}–{hi}"


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if fmt == "pct":
        return f"{100 * value:.1f}"
    if fmt.startswith("{:+"):  # a delta: no "-0.0"
        value = round(value, 1) + 0.0
    return fmt.format(value)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """One task's markdown table: the bicubic row first, then the runs."""
    head = ["run", "objective", "λ", "projection", *(h for h, _, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        bicubic = r["run"] == "bicubic"
        first = ["bicubic", "—", "—", "—"] if bicubic else [
            r["run"], r["objective"], "—" if r["lambda_adv"] is None else format_lambda(r["lambda_adv"]),
            "yes" if r["projection"] else "no"]  # fmt: skip
        lines.append("| " + " | ".join(first + [_cell(r.get(f), fmt) for _, f, fmt in COLUMNS]) + " |")
    return "\n".join(lines) + "\n"


def markdown(result: dict[str, Any], level: int = 1, command: str | None = None) -> str:
    """The tables and sentences of every task; ``level`` is the heading level of the title."""
    h = "#" * level
    preset = result.get("preset", {})
    tasks = preset.get("tasks", {})
    run_s = result.get("run_time_s")
    parts = [f"{h} Does the critic invent detail? Measured\n"]
    epochs = {t: int(tasks[t]["epochs"]) for t in result["tasks"] if t in tasks}
    budgets = ", ".join(f"{t} {n} epoch{'s' * (n != 1)}" for t, n in epochs.items())
    parts.append(f"Preset `{Path(str(preset.get('preset_file'))).stem.removeprefix('preset_')}`"
                 + (f" ({budgets})" if budgets else "") + f", seed {preset.get('seed', 0)}; test split, last checkpoint"
                 + (f"; {run_s / 60:.1f} min of fit + test in all" if run_s else "") + ".\n")  # fmt: skip
    if command:
        parts.append(f"```bash\n{command}\n```\n")
    for task, data in result["tasks"].items():
        parts.append(f"{h}# {task}\n")
        parts.append(table(data["rows"]))
        parts.append("\n" + " ".join(data["sentences"]) + "\n")
    parts.append("\nΔ columns: against the supervised run without projection (RMSE relative, hallucination in "
                 "percentage points). Bicubic synthesis L1 is 0 and its classified pixels are all omissions, by "
                 "definition. Consistency: the output degraded by the data's degradation against the input "
                 "(RMSE in data units, SAM in degrees, shift in LR pixels).\n")  # fmt: skip
    return "\n".join(parts)


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    """``trust.json`` (everything), ``trust.csv`` (one row per run and per bicubic baseline), ``trust.md``."""
    with atomic_output(out / "trust.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_output(out / "trust.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for data in result["tasks"].values():
            writer.writerows(data["rows"])
    with atomic_output(out / "trust.md") as tmp:
        tmp.write_text(markdown(result))


# ------------------------------------------------------------------------------------------------ command
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aerogan.trust_study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="configs/trust/preset_<name>.yaml or a preset file (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="the tiny preset (same as --preset quick)")
    parser.add_argument("--tasks", nargs="+", help="subset of the preset's tasks (default: all; missing data skipped)")
    parser.add_argument("--out", default="runs/trust", help="output folder (runs, trust.json/.csv/.md)")
    parser.add_argument("--force", action="store_true", help="rerun runs that already have a finished record")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: the preset's num_threads)")
    parser.add_argument("--readme", action="store_true", help="print the markdown section for README.md at the end")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI arguments after `--`, e.g. -- --trainer.max_epochs=2")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.quick and args.preset not in (None, "quick"):
        parser.error(f"--quick and --preset {args.preset} name two presets: give one")
    name = "quick" if args.quick else (args.preset or "cpu")
    try:
        preset = load_trust_preset(name)
        if args.threads:
            preset["num_threads"] = args.threads
        result = run_trust_study(preset, Path(args.out), args.tasks, args.overrides, args.force)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"\n[trust] {len(result['runs'])} runs, {result['wall_time_s']:.0f} s; tables in {Path(args.out) / 'trust.md'}\n")
    if args.readme:
        tasks = "" if not args.tasks else " --tasks " + " ".join(args.tasks)
        print(markdown(result, level=3, command=f"python -m aerogan.trust_study --preset {name} --out {args.out}{tasks}"))


if __name__ == "__main__":
    main()
