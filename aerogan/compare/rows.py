"""The comparison's rows (one architecture file under each objective), its task and preset, one run per row and seed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aerogan.experiments import RunSpec, build, config_key, load_preset, resolve_config

__all__ = ["CONFIG_DIR", "InputError", "Row", "discover_rows", "epochs_for", "load_compare_preset", "load_task", "row_specs",
           "select_rows"]

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs" / "compare"
DEFAULT_TASK = "configs/sentinel2_t2.yaml"
#: Display names of the architecture files, in table order (other files follow, named by their stem).
NAMES = {"aerogan": "AeroGAN", "deepawifs": "DeepAWiFS", "dsen2": "DSen2", "dsen2_published": "DSen2-published", "alert": "ALERT"}
OBJECTIVES = ("supervised", "regularized")
SHORT = {"supervised": "sup", "regularized": "reg"}
#: Data arguments naming files or folders, checked before anything runs.
DATA_PATH_KEYS = ("sources", "path", "paths", "lr_paths", "predict_sources")
#: Preset keys of the comparison (besides seeds, num_threads and overrides).
PRESET_KEYS = ("epochs", "data", "train_windows", "threshold_factor")


class InputError(ValueError):
    """Bad input to the comparison (row, preset, task, data path, merge), reported before anything runs."""


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


def resolve_config_file(path: str | os.PathLike[str], label: str) -> Path:
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


def data_overrides(preset: dict[str, Any]) -> list[str]:
    """The preset's ``data:`` settings as CLI arguments."""
    return [f"--data.init_args.{k}={json.dumps(v)}" for k, v in (preset.get("data") or {}).items()]


def load_task(path: str | os.PathLike[str], preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task config resolved by the ``aerogan`` parser (with the preset's data settings): its identity (a hash
    of the resolved data section) and whether its schedule is cosine; its data files must exist (named when missing)."""
    config = resolve_config_file(path, "--task")
    try:
        resolved = resolve_config(["--config", str(config), *data_overrides(preset or {})])
    except (SystemExit, Exception) as err:  # noqa: BLE001 - jsonargparse's errors, re-raised with the task named
        raise InputError(f"--task {path}: the config does not parse: {err}") from err
    data = resolved.get("data") or {}
    if not isinstance(data, dict) or not data.get("class_path"):
        raise InputError(f"--task {path}: the config has no `data:` section with a class_path (a datamodule)")
    for key in DATA_PATH_KEYS:
        for item in _strings((data.get("init_args") or {}).get(key)):
            if not Path(item).exists():
                raise InputError(
                    f"--task {path}: data.init_args.{key} names {item}, which does not exist (looked for "
                    f"{Path(item).resolve()}; paths in configs are relative to the directory the command runs in, "
                    "normally the repository root)"
                )
    scheduler = ((resolved.get("model") or {}).get("init_args") or {}).get("scheduler_g") or {}
    return {"config": str(config), "name": config.stem, "id": config_key(data),
            "cosine_t_max": "T_max" in (scheduler.get("init_args") or {})}  # fmt: skip


def load_compare_preset(name: str) -> dict[str, Any]:
    """``configs/compare/preset_<name>.yaml`` or a preset file (the runners' one schema plus :data:`PRESET_KEYS`)."""
    try:
        return load_preset("compare", name, PRESET_KEYS)
    except ValueError as err:
        raise InputError(f"--preset: {err}") from err


def epochs_for(preset: dict[str, Any], architecture: str) -> int:
    """The epoch budget of ``architecture`` (both of its rows): ``epochs[<arch>]``, else ``epochs[default]``."""
    table = preset.get("epochs") or {}
    value = table.get(architecture, table.get("default"))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{preset.get('_path')}: epochs.{architecture} (or epochs.default) must be an integer >= 1, got {value!r}")
    return value


def build_datamodule(task: dict[str, Any], preset: dict[str, Any]) -> Any:
    """The task's datamodule with the preset's data settings, instantiated by the ``aerogan`` parser."""
    try:
        return build(["--config", task["config"], *data_overrides(preset), "--trainer.logger=false",
                      "--trainer.callbacks=[]"]).datamodule  # fmt: skip
    except ValueError as err:  # the datamodule's own checks (band names, patch size, grids) name the parameter
        raise InputError(f"--task {task['config']}: {err}") from err


def row_specs(rows: Sequence[Row], task: dict[str, Any], preset: dict[str, Any], out: Path, seeds: Sequence[int],
              overlay: Path, threshold: float) -> list[RunSpec]:  # fmt: skip
    """One run per (row, seed): task config, the architecture's file, the shared settings, the threshold overlay."""
    specs = []
    for row in rows:
        epochs = epochs_for(preset, row.architecture)
        extra = [f"--trainer.max_epochs={epochs}", f"--model.init_args.objective={row.objective}"]
        if task["cosine_t_max"]:
            extra.append(f"--model.init_args.scheduler_g.init_args.T_max={epochs}")
        if row.objective == "supervised":
            extra.append("--model.init_args.n_critic=0")  # no critic is trained for a supervised row
        labels = {"row": row.name, "architecture": row.architecture, "architecture_name": row.display,
                  "objective": row.objective, "own_objective": row.own, "threshold": threshold,
                  "task": {k: task[k] for k in ("config", "name", "id")}, "preset": preset.get("name"),
                  "train_windows": int(preset.get("train_windows", 256))}  # fmt: skip
        for seed in seeds:
            specs.append(RunSpec(f"{row.architecture}_{row.objective}", (task["config"], str(row.config), str(CONFIG_DIR / "base.yaml"), str(overlay)),
                                 (*extra, *data_overrides(preset), *preset["overrides"]), seed, str(out),
                                 after="aerogan.compare.scores:score_row", labels=labels, num_threads=preset.get("num_threads")))  # fmt: skip
    return specs
