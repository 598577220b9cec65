r"""Does the critic invent detail? The measured answer: one grid of runs per task, one table per task.

For each task (``quickstart``: the embedded synthetic scenes, x2; ``sentinel2_t2``: the real Sentinel-2 crop,
20 m bands to 10 m with the 10 m guide) the runner fits 8 models with the same seed, data and epoch budget:

* ``supervised`` and ``regularized`` with ``lambda_adv`` in {1e-3, 1e-2, 1e-1},
* each with ``consistency_projection`` false and true,

then tests each on the task's held-out split with its ``last.ckpt`` (one fit-and-test path for every runner:
:mod:`aerogan.experiments`) and collects the test metrics of
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

    aerogan trust --preset cpu --out runs/trust            # or: python -m aerogan.trust_study ...
    aerogan trust --preset cpu --out runs/trust --tasks quickstart --seeds 3
    aerogan trust --preset cpu --out runs/trust --readme   # print the README section
    aerogan trust --merge runs/a runs/b --out runs/ab      # one table from separate jobs

With ``--seeds K`` every cell runs K seeds: the table gives means ± 95 % interval, the deltas are paired (same
seed) and each claim (a λ lowers RMSE / hallucination against supervised; the projection lowers consistency RMSE)
reads "holds", "does not hold" or "not resolved at this budget".

Runs land in ``<out>/<task>/<run>_s<seed>/version_<n>/`` (TensorBoard events with the test metrics, checkpoints,
``run.json`` with every test metric); a finished run with the same resolved configuration is reused unless
``--force``. The aggregate is
``<out>/trust.json``, ``<out>/trust.csv`` (one row per run, bicubic rows included) and ``<out>/trust.md``.
With the default ``--tasks``, a task whose data are missing is skipped with a warning; named explicitly, it
is an error naming the missing file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aerogan.experiments import (
    RunSpec,
    interval,
    load_preset,
    merge_runs,
    paired_claim,
    read_results,
    run_specs,
    seed_list,
    write_outputs,
)
from aerogan.experiments.arguments import add_runner_arguments
from aerogan.metrics import tags

__all__ = [
    "Cell",
    "grid",
    "load_trust_preset",
    "main",
    "markdown",
    "run_trust_study",
    "select_tasks",
    "specs",
    "summarize",
]

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "configs" / "trust"
REFERENCE = "supervised"

#: Table fields -> the test tags they read (``SuperResolution._log_epoch_metrics``).
METRICS = {
    "rmse": tags.TEST_RMSE,
    "sre": tags.TEST_SRE,
    "consistency_rmse": tags.TEST_CONSISTENCY_RMSE,
    "consistency_l1": tags.tag(tags.TEST, tags.CONSISTENCY_L1),
    "consistency_sam": tags.tag(tags.TEST, tags.CONSISTENCY_SAM),
    "consistency_shift": tags.tag(tags.TEST, tags.CONSISTENCY_SHIFT),
    "synthesis_l1": tags.tag(tags.TEST, tags.SYNTHESIS_L1),
    "improvement": tags.tag(tags.TEST, tags.IMPROVEMENT),
    "omission": tags.tag(tags.TEST, tags.OMISSION),
    "hallucination": tags.TEST_HALLUCINATION,
}
#: The bicubic baseline's tags; synthesis and correctness have none (0 and all-omission by definition).
BICUBIC = {field: tag + tags.BICUBIC for field, tag in METRICS.items() if field in
           ("rmse", "sre", "consistency_rmse", "consistency_l1", "consistency_sam", "consistency_shift")}  # fmt: skip
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
CSV_FIELDS = ["task", "run", "objective", "lambda_adv", "projection", "epochs", "seeds", *METRICS,
              *(f"{f}_ci" for f in METRICS), "delta_rmse_pct", "delta_rmse_pct_ci", "delta_hallucination_pts",
              "delta_hallucination_pts_ci", "fit_time_s", "test_time_s"]  # fmt: skip


# ------------------------------------------------------------------------------------------------ the grid
@dataclass(frozen=True)
class Cell:
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


def grid(preset: dict[str, Any]) -> list[Cell]:
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
            specs.extend(Cell(objective, lam, proj) for proj in projections)
    return specs


# ------------------------------------------------------------------------------------------------ presets
def load_trust_preset(name: str) -> dict[str, Any]:
    """``configs/trust/preset_<name>.yaml`` (or a path to a preset file), checked for a ``tasks`` mapping."""
    preset = load_preset("trust", name, keys=("objectives", "lambdas", "projections", "tasks"))
    path = preset["_path"]
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
def task_args(task: str, preset: dict[str, Any], extra: Sequence[str] = ()) -> list[str]:
    """The CLI arguments every run of ``task`` shares (budget, data, overrides), fit and test alike."""
    spec = preset["tasks"][task]
    args = ["--trainer.max_epochs", str(int(spec["epochs"]))]
    for key, files in _data_files(spec).items():
        args += [f"--{key}", json.dumps([str(p) for p in files])]
    return args + [str(a) for a in (*preset.get("overrides", []), *spec.get("overrides", []), *extra)]


def specs(preset: dict[str, Any], out: Path, tasks: Sequence[str], seeds: Sequence[int], extra: Sequence[str] = ()) -> list[RunSpec]:
    """Every (task, cell, seed) as a run: fit, then test ``last.ckpt`` on the held-out split."""
    cells = grid(preset)
    runs = []
    for task in tasks:
        config = Path(preset["tasks"][task]["config"])
        config = config if config.is_absolute() else REPO / config
        epochs = int(preset["tasks"][task]["epochs"])
        for cell in cells:
            for seed in seeds:
                labels = {"task": task, "run": cell.name, "objective": cell.objective, "lambda_adv": cell.lambda_adv,
                          "projection": cell.projection, "epochs": epochs}  # fmt: skip
                runs.append(RunSpec(cell.name, (str(config),), (*task_args(task, preset, extra), *cell.overrides()), seed,
                                    str(out), group=task, labels=labels, num_threads=preset.get("num_threads")))  # fmt: skip
    return runs


def run_trust_study(preset: dict[str, Any], out: Path, tasks: Sequence[str] | None = None, extra: Sequence[str] = (),
                    force: bool = False, seeds: Sequence[int] | None = None, devices: int = 1) -> dict[str, Any]:  # fmt: skip
    """Run every grid cell of every selected task and seed not already finished under ``out``; write the aggregate."""
    chosen = select_tasks(preset, tasks)
    out = Path(out).resolve()
    start = time.perf_counter()

    def write(records: list[dict[str, Any]]) -> None:
        write_result(out, summarize(records, preset, time.perf_counter() - start))

    records = run_specs(specs(preset, out, chosen, seed_list(preset) if seeds is None else seeds, extra), devices, force, "[trust]", write)
    return summarize(records, preset, time.perf_counter() - start)  # write() has written this table already


# ------------------------------------------------------------------------------------------------ tables
def _values(record: dict[str, Any], tags_of: dict[str, str]) -> dict[str, float | None]:
    return {field: record["metrics"].get(tag) for field, tag in tags_of.items()}


def _mean_row(base: dict[str, Any], runs: Sequence[dict[str, float | None]]) -> dict[str, Any]:
    """``base`` plus, per metric, the mean over ``runs`` (one dict per seed) and its 95 % half-width ``<field>_ci``."""
    row = dict(base)
    for field in runs[0]:
        ci = interval([r[field] for r in runs])
        row[field], row[f"{field}_ci"] = ci.mean, ci.half_width
    return row


def _paired_delta(row_runs: dict[int, dict[str, Any]], ref_runs: dict[int, dict[str, Any]], field: str, pct: bool) -> tuple[float | None, float | None]:
    """Mean and 95 % half-width over seeds of ``row − reference`` (relative in % for ``pct``, else in points ×100)."""
    diffs = []
    for seed, values in row_runs.items():
        ref = ref_runs.get(seed)
        a, b = values.get(field), None if ref is None else ref.get(field)
        if a is None or b is None or (pct and b == 0):
            continue
        diffs.append(100.0 * (a - b) / b if pct else 100.0 * (a - b))
    ci = interval(diffs)
    return ci.mean, ci.half_width


def _claims(task: str, by_run: dict[str, dict[int, dict[str, Any]]], labels: dict[str, Cell]) -> list[dict[str, Any]]:
    """Paired claims of one task: each λ against the supervised run (RMSE, hallucination), the projection against
    the same run without it (consistency RMSE)."""
    out = []
    ref = by_run.get(REFERENCE)
    for run, values in by_run.items():
        cell = labels[run]
        if cell.objective == "regularized" and not cell.projection and ref is not None:
            for field, what in (("rmse", "RMSE"), ("hallucination", "hallucination")):
                out.append(paired_claim(f"{task}: {cell.label} lowers {what} against supervised",
                                        {s: v[field] for s, v in values.items()}, {s: v[field] for s, v in ref.items()}))  # fmt: skip
        twin = by_run.get(run.removesuffix("_proj")) if cell.projection else None
        if twin is not None:
            out.append(paired_claim(f"{task}: the projection lowers consistency RMSE of {labels[run.removesuffix('_proj')].label}",
                                    {s: v["consistency_rmse"] for s, v in values.items()},
                                    {s: v["consistency_rmse"] for s, v in twin.items()}))  # fmt: skip
    return out


def summarize(records: Sequence[dict[str, Any]], preset: dict[str, Any] | None = None, wall_s: float | None = None) -> dict[str, Any]:
    """Per task: the bicubic row, one row per grid cell (means ± 95 % interval over seeds, paired deltas against
    the supervised run without projection), the generated sentences and the paired claims."""
    tasks: dict[str, Any] = {}
    for task in dict.fromkeys(r["task"] for r in records):
        mine = [r for r in records if r["task"] == task]
        by_run: dict[str, dict[int, dict[str, Any]]] = {}
        cells: dict[str, Cell] = {}
        for r in mine:
            by_run.setdefault(r["run"], {})[int(r.get("seed") or 0)] = _values(r, METRICS)
            cells[r["run"]] = Cell(r["objective"], r["lambda_adv"], bool(r["projection"]))
        ref = by_run.get(REFERENCE)
        rows = []
        for run, per_seed in by_run.items():
            first = next(r for r in mine if r["run"] == run)
            runs = [r for r in mine if r["run"] == run]
            base = {k: first.get(k) for k in ("task", "run", "objective", "lambda_adv", "projection", "epochs")}
            base |= {"seeds": sorted(per_seed), "fit_time_s": sum(r.get("fit_time_s") or 0.0 for r in runs) / len(runs),
                     "test_time_s": sum(r.get("test_time_s") or 0.0 for r in runs) / len(runs),
                     "run_dirs": [r.get("run_dir") for r in runs]}  # fmt: skip
            row = _mean_row(base, [per_seed[s] for s in sorted(per_seed)])
            for field, name, pct in (("rmse", "delta_rmse_pct", True), ("hallucination", "delta_hallucination_pts", False)):
                row[name], row[f"{name}_ci"] = (None, None) if ref is None else _paired_delta(per_seed, ref, field, pct)
            rows.append(row)
        if ref is not None:
            ref_records = [r for r in mine if r["run"] == REFERENCE]
            bicubic = {int(r.get("seed") or 0): _values(r, BICUBIC) | BICUBIC_DEFINED for r in ref_records}
            row = _mean_row({"task": task, "run": "bicubic", "objective": "bicubic", "lambda_adv": None, "projection": None,
                             "epochs": None, "seeds": sorted(bicubic)}, [bicubic[s] for s in sorted(bicubic)])  # fmt: skip
            for field, name, pct in (("rmse", "delta_rmse_pct", True), ("hallucination", "delta_hallucination_pts", False)):
                row[name], row[f"{name}_ci"] = _paired_delta(bicubic, ref, field, pct)
            rows.insert(0, row)
        tasks[task] = {"reference": REFERENCE if ref else None, "rows": rows, "sentences": sentences(rows),
                       "claims": _claims(task, by_run, cells)}  # fmt: skip
    meta = {k: v for k, v in (preset or {}).items() if not k.startswith("_")} | {"preset_file": (preset or {}).get("_path")}
    run_s = sum((r.get("fit_time_s") or 0.0) + (r.get("test_time_s") or 0.0) for r in records)
    seeds = sorted({int(r.get("seed") or 0) for r in records})
    return {"preset": meta, "seeds": seeds, "wall_time_s": wall_s, "run_time_s": run_s, "tasks": tasks, "runs": list(records)}


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
        spec = Cell(r["objective"], r["lambda_adv"], False)
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
    label = {r["run"]: Cell(r["objective"], r["lambda_adv"], r["projection"]).label for r in runs}
    out.append(f"Lowest RMSE: {label[best['run']]} ({best['rmse']:.4g}); lowest hallucination: "
               f"{label[least['run']]} ({100 * least['hallucination']:.1f} %).")  # fmt: skip
    return out


def _span(values: Sequence[float]) -> str:
    lo, hi = f"{min(values):.3g}", f"{max(values):.3g}"
    return lo if lo == hi else f"{lo}–{hi}"


def _cell(value: Any, fmt: str, ci: float | None = None) -> str:
    """One number as ``fmt`` says, with its 95 % half-width (``± 0.3``) when it is a mean over seeds."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if fmt == "pct":
        text = f"{100 * value:.1f}"
        return text if ci is None else f"{text} ± {100 * ci:.1f}"
    if fmt.startswith("{:+"):  # a delta: no "-0.0"
        value = round(value, 1) + 0.0
    text = fmt.format(value)
    return text if ci is None else f"{text} ± {ci:.2g}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """One task's markdown table: the bicubic row first, then the runs."""
    head = ["run", "objective", "λ", "projection", *(h for h, _, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        bicubic = r["run"] == "bicubic"
        first = ["bicubic", "—", "—", "—"] if bicubic else [
            r["run"], r["objective"], "—" if r["lambda_adv"] is None else format_lambda(r["lambda_adv"]),
            "yes" if r["projection"] else "no"]  # fmt: skip
        lines.append("| " + " | ".join(first + [_cell(r.get(f), fmt, r.get(f"{f}_ci")) for _, f, fmt in COLUMNS]) + " |")
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
    seeds = result.get("seeds") or [0]
    what = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): means ± 95 % interval"
    parts.append(f"Preset `{Path(str(preset.get('preset_file'))).stem.removeprefix('preset_')}`"
                 + (f" ({budgets})" if budgets else "") + f", {what}; test split, last checkpoint"
                 + (f"; {run_s / 60:.1f} min of fit + test in all" if run_s else "") + ".\n")  # fmt: skip
    if command:
        parts.append(f"```bash\n{command}\n```\n")
    for task, data in result["tasks"].items():
        parts.append(f"{h}# {task}\n")
        parts.append(table(data["rows"]))
        parts.append("\n" + " ".join(data["sentences"]) + "\n")
        if data.get("claims"):
            parts.append("Paired claims (same seed and data; the 95 % interval of the mean paired difference decides):\n\n"
                         + "\n".join(f"- {c['text']}" for c in data["claims"]) + "\n")
    parts.append("\nΔ columns: against the supervised run without projection (RMSE relative, hallucination in "
                 "percentage points). Bicubic synthesis L1 is 0 and its classified pixels are all omissions, by "
                 "definition. Consistency: the output degraded by the data's degradation against the input "
                 "(RMSE in data units, SAM in degrees, shift in LR pixels).\n")  # fmt: skip
    return "\n".join(parts)


def write_result(out: Path, result: dict[str, Any]) -> None:
    """``trust.json`` (everything), ``trust.csv`` (one row per grid cell and per bicubic baseline), ``trust.md``."""
    rows = [row for data in result["tasks"].values() for row in data["rows"]]
    write_outputs(out, "trust", result, rows, CSV_FIELDS, markdown(result))


# ------------------------------------------------------------------------------------------------ command
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aerogan trust", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="configs/trust/preset_<name>.yaml or a preset file (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="the tiny preset (same as --preset quick)")
    add_runner_arguments(parser, "trust", "runs/trust")
    parser.add_argument("--tasks", nargs="+", help="subset of the preset's tasks (default: all; missing data skipped)")
    parser.add_argument("--readme", action="store_true", help="print the markdown section for README.md at the end")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI arguments after `--`, e.g. -- --trainer.max_epochs=2")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.quick and args.preset not in (None, "quick"):
        parser.error(f"--quick and --preset {args.preset} name two presets: give one")
    name = "quick" if args.quick else (args.preset or "cpu")
    out = Path(args.out)
    try:
        if args.merge:
            found = read_results(args.merge, "trust", "aerogan trust")
            result = summarize(merge_runs(found, ("task", "run", "seed")), found[0][1].get("preset"))
            write_result(out, result)
        else:
            preset = load_trust_preset(name)
            if args.threads:
                preset["num_threads"] = args.threads
            result = run_trust_study(preset, out, args.tasks, args.overrides, args.force,
                                     seed_list(preset, args.seeds, args.seed), args.devices)  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"\n[trust] {len(result['runs'])} runs, {result['wall_time_s'] or 0:.0f} s; tables in {out / 'trust.md'}\n")
    if args.readme:
        tasks = "" if not args.tasks else " --tasks " + " ".join(args.tasks)
        seeds = "" if args.seeds is None else f" --seeds {args.seeds}"
        print(markdown(result, level=3, command=f"aerogan trust --preset {name} --out {args.out}{tasks}{seeds}"))


if __name__ == "__main__":
    main()
