"""Loading recorded runs: run folders, their TensorBoard scalars, CSV tables and configuration.

A run folder (``runs/<name>/version_<k>``) is any folder holding one of :data:`RUN_MARKERS`. :func:`load_run` reads
everything it holds into a :class:`Run`; the accessors below (:func:`layer_names`, :func:`drift_series`,
:func:`hidden_top_params`) answer the questions the figures and claims ask of a list of runs, with tag names
built by :mod:`callbacks.tags`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from callbacks.tags import FROBENIUS, NONFINITE_COUNT, TOTAL, WEIGHT_DRIFT, weight_drift_tag

__all__ = [
    "COLORS",
    "RUN_MARKERS",
    "Run",
    "Series",
    "drift_series",
    "find_runs",
    "hidden_top_params",
    "layer_names",
    "load_config",
    "load_drift_table",
    "load_run",
    "load_scalars",
    "param_names",
    "read_csv",
    "tracked_layers",
]

#: (steps, values) of one scalar, sorted by step.
Series = tuple[np.ndarray, np.ndarray]
#: A drift statistic: maximum / mean over neurons, or the layer's Frobenius norm.
DriftStat = Literal["max", "mean", "frob"]

#: Plot colour of each objective.
COLORS = {"supervised": "tab:blue", "regularized": "tab:red", "adversarial": "tab:green"}
#: Files whose presence makes a folder a run folder (glob patterns).
RUN_MARKERS = ("events.out.tfevents.*", "theory.csv", "weight_drift.csv", "study_summary.json")
#: The scalar Lightning logs with every metric: completed epochs at that logger step.
EPOCH_SCALAR = "epoch"
#: Names of the hidden and top layers of the two-layer theory generator.
HIDDEN_LAYER, TOP_LAYER = "generator.hidden", "generator.output"


@dataclass
class Run:
    """Everything recorded in one run folder."""

    path: Path
    label: str
    objective: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    scalars: dict[str, Series] = field(default_factory=dict)
    #: ``theory.csv`` columns (see ``callbacks.theory.COLUMNS``).
    theory: dict[str, np.ndarray] | None = None
    #: layer -> {"step", "epoch", "max", "mean", "frob"} per write of ``weight_drift.csv``.
    drift_table: dict[str, dict[str, np.ndarray]] | None = None
    study: dict[str, Any] | None = None

    @property
    def color(self) -> str | None:
        """The plot colour of this run's objective."""
        return COLORS.get(self.objective or "")

    def scalar(self, tag: str) -> Series | None:
        """The recorded series of ``tag``, or ``None``."""
        return self.scalars.get(tag)

    def step_to_epoch(self, steps: np.ndarray, recorded: np.ndarray | None = None) -> np.ndarray:
        """Epochs at logger steps: from ``theory.csv``, else Lightning's ``epoch`` scalar, else the ``recorded``
        epochs of the same records (a table's own epoch column), else the steps themselves."""
        ep = self.scalars.get(EPOCH_SCALAR)
        if self.theory is not None and len(self.theory.get("step", [])) > 1:
            return np.interp(steps, self.theory["step"], self.theory["epoch"])
        if ep is not None and len(ep[0]) > 1:
            return np.interp(steps, ep[0], ep[1])
        return np.asarray(recorded if recorded is not None else steps, dtype=float)


def _is_run_folder(path: Path) -> bool:
    return any(any(path.glob(pattern)) for pattern in RUN_MARKERS)


def find_runs(inputs: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """(run folders, study folders) under ``inputs``; a study folder's runs are listed in its ``study.json``.

    Each input may be a run folder, a folder above run folders (every run folder below it is taken) or a study
    output folder. Raises ``SystemExit`` naming the inputs when none holds anything readable.
    """
    runs: list[Path] = []
    studies: list[Path] = []
    for item in inputs:
        root = Path(item)
        if not root.exists():
            raise SystemExit(f"aerogan report: {root} does not exist")
        if (root / "study.json").is_file():
            studies.append(root)
        if _is_run_folder(root):
            runs.append(root)
            continue
        found = {p.parent for pattern in RUN_MARKERS for p in root.rglob(pattern)}
        # hidden folders (e.g. atomic_output's staging folders) are never runs
        below = sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts))
        runs.extend(p for p in below if p not in runs)
    if not runs and not studies:
        raise SystemExit(
            "aerogan report: no run folder (TensorBoard events, theory.csv, weight_drift.csv or study_summary.json) "
            f"under {', '.join(map(str, inputs))}"
        )
    return list(dict.fromkeys(runs)), studies


def load_scalars(path: Path) -> dict[str, Series]:
    """Every TensorBoard scalar of the event files in ``path``, merged across files and sorted by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, tuple[list[int], list[float]]] = {}
    for events in sorted(path.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 1, "histograms": 1, "tensors": 1})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            steps, values = out.setdefault(tag, ([], []))
            for e in acc.Scalars(tag):
                steps.append(e.step)
                values.append(e.value)
    result = {}
    for tag, (steps, values) in out.items():
        s, v = np.asarray(steps), np.asarray(values, dtype=float)
        order = np.argsort(s, kind="stable")
        result[tag] = (s[order], v[order])
    return result


def read_csv(path: Path) -> dict[str, np.ndarray]:
    """A CSV table as columns: numeric columns as float arrays (empty cells NaN), others as string arrays."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    out = {}
    for key in rows[0]:
        try:
            out[key] = np.asarray([float(r[key]) if r[key] not in ("", None) else math.nan for r in rows])
        except ValueError:
            out[key] = np.asarray([r[key] for r in rows])
    return out


def load_drift_table(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per layer and write (step) of ``weight_drift.csv``: max, mean and Frobenius norm of the per-neuron drifts."""
    acc: dict[str, dict[int, list[float]]] = {}
    epochs: dict[tuple[str, int], int] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            layer, step = row["layer"], int(row["step"])
            acc.setdefault(layer, {}).setdefault(step, []).append(float(row["drift"]))
            epochs[(layer, step)] = int(row["epoch"])
    out = {}
    for layer, by_step in acc.items():
        steps = sorted(by_step)
        arrays = [np.asarray(by_step[s]) for s in steps]
        out[layer] = {
            "step": np.asarray(steps),
            "epoch": np.asarray([epochs[(layer, s)] for s in steps]),
            "max": np.asarray([a.max() for a in arrays]),
            "mean": np.asarray([a.mean() for a in arrays]),
            "frob": np.asarray([np.sqrt((a * a).sum()) for a in arrays]),
        }
    return out


def load_config(path: Path) -> dict[str, Any]:
    """LightningCLI's ``config.yaml`` copy in the run folder; ``{}`` when absent or unreadable."""
    cfg = path / "config.yaml"
    if not cfg.is_file():
        return {}
    import yaml

    try:
        with open(cfg) as f:
            return yaml.safe_load(f) or {}
    except yaml.YAMLError:
        return {}


def load_run(path: Path) -> Run:
    """Read everything a run folder holds; the label is ``<name>/<version>`` (the folder's last two parts)."""
    config = load_config(path)
    objective = (((config.get("model") or {}).get("init_args") or {}).get("objective")) if config else None
    study = None
    if (path / "study_summary.json").is_file():
        study = json.loads((path / "study_summary.json").read_text())
        objective = objective or study.get("objective")
    label = "/".join(path.parts[-2:]) if len(path.parts) >= 2 else path.name
    run = Run(path=path, label=label, objective=objective, config=config, study=study)
    run.scalars = load_scalars(path)
    if (path / "theory.csv").is_file():
        run.theory = read_csv(path / "theory.csv") or None
    if (path / "weight_drift.csv").is_file():
        run.drift_table = load_drift_table(path / "weight_drift.csv")
    if objective and objective not in run.label:
        run.label = f"{run.label} ({objective})"
    return run


# ---------------------------------------------------------------------------------------------- accessors
def tracked_layers(run: Run) -> list[str]:
    """Layers whose drift ``run`` recorded: the drift table's, else those of the Frobenius drift scalars."""
    return list(run.drift_table) if run.drift_table else _scalar_layers(run)


def _scalar_layers(run: Run) -> list[str]:
    """Layers with a Frobenius drift scalar ``weight_drift/<layer>/frobenius``."""
    prefix, suffix = f"{WEIGHT_DRIFT}/", f"/{FROBENIUS}"
    return [t[len(prefix) : -len(suffix)] for t in run.scalars if t.startswith(prefix) and t.endswith(suffix)]


def layer_names(runs: Sequence[Run]) -> tuple[str | None, str | None]:
    """(hidden, top) layer names: the generator's ``hidden``/``output``, else its first and last tracked layers."""
    layers: list[str] = []
    for run in runs:
        for name in [*(run.drift_table or []), *_scalar_layers(run)]:
            if name not in layers:
                layers.append(name)
    gen = [n for n in layers if n.startswith("generator.")] or layers
    hidden = HIDDEN_LAYER if HIDDEN_LAYER in gen else (gen[0] if gen else None)
    top = TOP_LAYER if TOP_LAYER in gen else (gen[-1] if gen else None)
    return hidden, top


def drift_series(run: Run, layer: str, stat: DriftStat) -> Series | None:
    """(epochs, drift statistic) of ``layer``: the TensorBoard scalars (the finest record), else the drift table."""
    s = run.scalar(weight_drift_tag(layer, FROBENIUS if stat == "frob" else stat))
    if s is not None and len(s[0]):
        return run.step_to_epoch(s[0]), s[1]
    if run.drift_table and layer in run.drift_table:
        t = run.drift_table[layer]
        return run.step_to_epoch(t["step"], t["epoch"]), t[stat]
    return None


def param_names(runs: Sequence[Run], prefix: str) -> list[str]:
    """Parameter names of the scalars under ``prefix`` (e.g. ``loss_term_tag("supervised", "")``), first seen first."""
    names: list[str] = []
    for run in runs:
        for tag in run.scalars:
            if tag.startswith(prefix) and (name := tag[len(prefix) :]) not in names:
                names.append(name)
    return names


def hidden_top_params(runs: Sequence[Run], prefix: str) -> list[str]:
    """The weights of the hidden and top layer among the parameters under ``prefix``, else the first and last weight."""
    names = [n for n in param_names(runs, prefix) if n not in (TOTAL, NONFINITE_COUNT)]
    hidden, top = layer_names(runs)
    chosen = []
    for layer in (hidden, top):
        if layer and f"{layer}.weight" in names and f"{layer}.weight" not in chosen:
            chosen.append(f"{layer}.weight")
    if not chosen:
        weights = [n for n in names if n.endswith("weight")] or names
        chosen = list(dict.fromkeys([weights[0], weights[-1]])) if weights else []
    return chosen
