r"""Epochs-to-converge study: supervised vs adversarially regularized, six generator families (docs/science.md §3).

The talk behind arXiv 2010.00522 reports epochs to convergence for six architectures (e.g. MLP-Deep 391
supervised vs 55 regularized). Its criterion, data and optimizer are unpublished; this runner measures the same
kind of table on a real dense task with a criterion fixed *before* training:

* **Task** (``configs/study/base.yaml``): band synthesis of Sentinel-2 SWIR (B11, B12) from B02 B03 B04 B08 on the
  real sample ``../shared/data/sentinel2_l1c_scenes.npy`` (``datamodules.ArrayDataModule``; 2×2 binning to the
  20 m grid of the SWIR bands; scenes 0–2 train, 3 validation, 4 test). The data module is a config entry, so any
  ``SuperResolutionDataModule`` can be swapped in.
* **Criterion** (:class:`callbacks.EpochsToThreshold`, an ``EarlyStopping`` in the base config): the first epoch
  whose validation RMSE (``val/rmse``: per-band RMSE in reflectance, averaged over bands) is at or below a
  threshold computed from the data at fit start, before any training (:func:`datamodules.baselines.baseline_rmse`):
  ``factor ×`` the validation RMSE of a baseline fitted on the training pixels: ``linear_baseline`` (per-pixel
  least squares with intercept from the input bands to the targets; the default, factor 1.0: "converged" means
  "at least as good as the best linear map"), ``mean_baseline`` (the training mean of each target band), or an
  ``absolute`` value.
* **Protocol**: the same seed, data, generator optimizer, learning rate, batch and epoch length for both
  objectives; the critic is trained in both runs (so the random streams match), but only the regularized
  generator sees it. A run stops at the threshold; runs that never reach it report ``None`` (shown ``> cap``).

Usage::

    python -m aerogan.study --preset cpu --out runs/study          # about 6 min on 2 CPU cores
    python -m aerogan.study --preset cpu --out runs/study --architectures mlp_deep cnn_resnet --seeds 0 1
    aerogan report runs/study --out reports/study

Each run writes ``study_summary.json`` in its run folder (``<out>/<arch>_<objective>_s<seed>/version_0/``); the
runner aggregates them into ``<out>/study.json``, ``<out>/study.csv`` and ``<out>/study.md``. Presets are YAML
files ``configs/study/preset_<name>.yaml``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from aerogan.atomic import atomic_output
from callbacks.epochs_to_threshold import SUMMARY_NAME

__all__ = ["main", "run_study", "summarize"]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "study"

#: Display names of the architectures, in the paper's table order.
ARCHITECTURES = {
    "mlp_deep": "MLP-Deep (6 layers, ELU, 2 ResBlocks)",
    "cnn_resnet": "CNN-ResNet",
    "cnn_densenet": "CNN-DenseNet",
    "cnn_densenet_l1": "CNN-DenseNet-L1",
    "cnn_densenet_l2": "CNN-DenseNet-L2",
    "cnn_resnet_avgpool": "CNN-ResNet-AvgPool",
}
#: The talk's numbers (docs/science.md §3), for the side-by-side table.
PAPER_EPOCHS = {
    "mlp_deep": (391, 55),
    "cnn_resnet": (215, 41),
    "cnn_densenet": (163, 39),
    "cnn_densenet_l1": (1000, 39),
    "cnn_densenet_l2": (155, 39),
    "cnn_resnet_avgpool": (109, 29),
}


# ---------------------------------------------------------------------------------------------- runner
def preset_path(name: str, config_dir: Path = CONFIG_DIR) -> Path:
    """The preset file ``name`` (a path) or ``config_dir/preset_<name>.yaml``; a ``ValueError`` listing the
    known presets otherwise. Shared by the study, trust and compare runners."""
    path = Path(name)
    if not path.is_file():
        path = config_dir / f"preset_{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("preset_") for p in config_dir.glob("preset_*.yaml"))
        raise ValueError(f"unknown preset {name!r}: no {path} (known presets: {', '.join(known) or 'none'})")
    return path


def load_preset(name: str) -> dict[str, Any]:
    """``configs/study/preset_<name>.yaml`` (or a path to a preset file)."""
    import yaml

    try:
        path = preset_path(name)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    with open(path) as f:
        preset = yaml.safe_load(f) or {}
    preset["_path"] = str(path)
    return preset


def _run_dir(out: Path, run_name: str) -> Path | None:
    """The newest run folder holding a finished summary for ``run_name``."""
    found = sorted((out / run_name).glob(f"version_*/{SUMMARY_NAME}"), key=lambda p: p.stat().st_mtime)
    for path in reversed(found):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("finished"):
            return path.parent
    return None


def run_one(
    arch: str, objective: str, seed: int, out: Path, preset: dict[str, Any], extra: Sequence[str] = ()
) -> dict[str, Any]:
    """Fit one (architecture, objective, seed) through the ``aerogan`` CLI; returns its summary."""
    from aerogan.cli import cli_main

    config_dir = Path(preset.get("config_dir", CONFIG_DIR))
    run_name = f"{arch}_{objective}_s{seed}"
    args = [
        "fit",
        "--config", str(config_dir / preset.get("base", "base.yaml")),
        "--config", str(config_dir / f"{arch}.yaml"),
        "--seed_everything", str(seed),
        "--model.init_args.objective", objective,
        "--trainer.logger.init_args.save_dir", str(out),
        "--trainer.logger.init_args.name", run_name,
        *[str(a) for a in preset.get("overrides", [])],
        *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when args and a command line are both given
    try:
        cli = cli_main(args)
    finally:
        sys.argv = argv
    elapsed = time.perf_counter() - start
    trainer = cli.trainer  # type: ignore[union-attr]
    folder = Path(trainer.logger.log_dir).resolve()
    path = folder / SUMMARY_NAME
    if not path.is_file():
        raise RuntimeError(
            f"{run_name}: no {SUMMARY_NAME} in {folder}; is callbacks.EpochsToThreshold in the config's trainer.callbacks?"
        )
    summary = json.loads(path.read_text())
    summary.update({"architecture": arch, "objective": objective, "seed": seed, "run_dir": str(folder),
                    "total_time_s": elapsed, "finished": True, "args": args})  # fmt: skip
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    return summary


def run_study(
    preset: dict[str, Any],
    out: Path,
    architectures: Sequence[str] | None = None,
    objectives: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    extra: Sequence[str] = (),
    force: bool = False,
) -> list[dict[str, Any]]:
    """Run every (architecture, seed, objective) of ``preset`` not already finished under ``out``."""
    threads = preset.get("num_threads")
    if threads:  # small convolutions: one intra-op thread is faster than two fighting over shared cores
        torch.set_num_threads(int(threads))
    archs = list(architectures or preset.get("architectures", list(ARCHITECTURES)))
    objs = list(objectives or preset.get("objectives", ["supervised", "regularized"]))
    seed_list = [int(s) for s in (seeds if seeds is not None else preset.get("seeds", [0]))]
    unknown = [a for a in archs if not (Path(preset.get("config_dir", CONFIG_DIR)) / f"{a}.yaml").is_file()]
    if unknown:
        raise SystemExit(f"unknown architecture(s) {unknown}: no configs/study/<name>.yaml")
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for arch in archs:
        for seed in seed_list:
            for obj in objs:
                done = None if force else _run_dir(out, f"{arch}_{obj}_s{seed}")
                if done is not None:
                    print(f"[study] {arch} {obj} seed {seed}: already done ({done})", flush=True)
                    summaries.append(json.loads((done / SUMMARY_NAME).read_text()))
                    continue
                print(f"[study] {arch} {obj} seed {seed}: fitting", flush=True)
                s = run_one(arch, obj, seed, out, preset, extra)
                print(
                    f"[study] {arch} {obj} seed {seed}: epochs to threshold {s['epochs_to_threshold']} "
                    f"(threshold {s['threshold']:.5g}, best {s['best_value']:.5g}, {s['total_time_s']:.0f} s)",
                    flush=True,
                )
                summaries.append(s)
                write_aggregate(out, summaries, preset)
    write_aggregate(out, summaries, preset)
    return summaries


def summarize(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per architecture: epochs to threshold per objective and seed, medians, speed-up, paired counts."""
    rows = []
    archs = list(dict.fromkeys(s["architecture"] for s in summaries))
    for arch in archs:
        row: dict[str, Any] = {"architecture": arch, "name": ARCHITECTURES.get(arch, arch)}
        mine = [s for s in summaries if s["architecture"] == arch]
        seeds = sorted({s.get("seed") for s in mine}, key=lambda v: (v is None, v))
        row["seeds"] = seeds
        by = {(s["objective"], s.get("seed")): s for s in mine}
        for obj in ("supervised", "regularized"):
            runs = [by[(obj, seed)] for seed in seeds if (obj, seed) in by]
            row[f"{obj}_epochs"] = [s["epochs_to_threshold"] for s in runs]
            row[f"{obj}_cap"] = max((s.get("max_epochs") or 0 for s in runs), default=None) or None
            row[f"{obj}_median"] = _median_with_cap(row[f"{obj}_epochs"])
            row[f"{obj}_best_rmse"] = [s.get("best_value") for s in runs]
            row[f"{obj}_time_s"] = [round(s.get("total_time_s", s.get("wall_time_s", 0.0)), 1) for s in runs]
        sup, reg = row["supervised_median"], row["regularized_median"]
        row["speedup"] = (
            sup / reg if isinstance(sup, (int, float)) and isinstance(reg, (int, float)) and reg > 0 else None
        )
        pairs = [
            (
                by[("supervised", seed)]["epochs_to_threshold"],
                by[("regularized", seed)]["epochs_to_threshold"],
            )
            for seed in seeds
            if ("supervised", seed) in by and ("regularized", seed) in by
        ]
        inf = math.inf
        diffs = [(inf if a is None else a) - (inf if b is None else b) for a, b in pairs]
        row["paired"] = {
            "faster": sum(1 for d in diffs if d > 0),
            "tied": sum(1 for d in diffs if d == 0 or (math.isnan(d))),
            "slower": sum(1 for d in diffs if d < 0),
            "differences": [d if math.isfinite(d) else None for d in diffs],
        }
        row["threshold"] = next((s["threshold"] for s in mine), None)
        row["paper"] = PAPER_EPOCHS.get(arch)
        rows.append(row)
    return rows


def paired_totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Over all (architecture, seed) pairs: how often the regularized run was faster, and the mean difference."""
    faster = sum(r["paired"]["faster"] for r in rows)
    tied = sum(r["paired"]["tied"] for r in rows)
    slower = sum(r["paired"]["slower"] for r in rows)
    diffs = [d for r in rows for d in r["paired"]["differences"] if d is not None]
    mean = sum(diffs) / len(diffs) if diffs else None
    sd = (
        math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
        if mean is not None and len(diffs) > 1
        else None
    )
    # two-sided sign test over the untied pairs
    n = faster + slower
    k = min(faster, slower)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else None
    return {"pairs": faster + tied + slower, "faster": faster, "tied": tied, "slower": slower,
            "mean_difference": mean, "sd_difference": sd, "sign_test_p": p}  # fmt: skip


def _median_with_cap(values: Sequence[int | None]) -> float | None:
    """Median where a never-reached run counts as +inf; ``None`` if the median itself is not reached."""
    if not values:
        return None
    xs = sorted(math.inf if v is None else float(v) for v in values)
    k = len(xs)
    med = xs[k // 2] if k % 2 else (xs[k // 2 - 1] + xs[k // 2]) / 2
    return None if math.isinf(med) else med


def format_epochs(median: float | None, cap: int | None) -> str:
    if median is None:
        return f"> {cap}" if cap else "not reached"
    return f"{median:g}"


def table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The epochs table as markdown (medians over seeds, each seed in brackets), the talk's numbers beside ours."""
    lines = [
        "| Architecture | Sup. epochs | Reg. epochs | Speed-up | Reg. faster / tied / slower (seeds) | Paper sup / reg |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = f"{r['speedup']:.2f}×" if r["speedup"] is not None else "n/a"
        cells = []
        for obj in ("supervised", "regularized"):
            med = format_epochs(r[f"{obj}_median"], r[f"{obj}_cap"])
            each = ", ".join("–" if e is None else str(e) for e in r[f"{obj}_epochs"])
            cells.append(f"{med} [{each}]" if len(r[f"{obj}_epochs"]) > 1 else med)
        paired = r["paired"]
        paper = (
            f"{r['paper'][0]} / {r['paper'][1]} ({r['paper'][0] / r['paper'][1]:.1f}×)"
            if r.get("paper")
            else "n/a"
        )
        lines.append(
            f"| {r['name']} | {cells[0]} | {cells[1]} | {speed} | {paired['faster']} / {paired['tied']} / {paired['slower']} | {paper} |"
        )
    return "\n".join(lines) + "\n"


def paired_sentence(totals: dict[str, Any]) -> str:
    """One honest sentence on the paired (same seed) comparison."""
    if not totals["pairs"]:
        return "No (architecture, seed) pair has both objectives."
    mean, sd, p = totals["mean_difference"], totals["sd_difference"], totals["sign_test_p"]
    diff = (
        f"mean (sup − reg) {mean:+.2f} epochs" + (f" (sd {sd:.2f})" if sd is not None else "")
        if mean is not None
        else ""
    )
    test = f"; two-sided sign test p = {p:.3g}" if p is not None else ""
    return (
        f"Over {totals['pairs']} (architecture, seed) pairs the regularized run reached the threshold first in "
        f"{totals['faster']}, tied in {totals['tied']} and was later in {totals['slower']}; {diff}{test}."
    )


def write_aggregate(
    out: Path, summaries: Sequence[dict[str, Any]], preset: dict[str, Any] | None = None
) -> None:
    """``study.json`` (all summaries + table rows), ``study.csv`` (one row per run) and ``study.md``."""
    rows = summarize(summaries)
    meta = {k: v for k, v in (preset or {}).items() if not k.startswith("_")} | {
        "preset_file": (preset or {}).get("_path")
    }
    with atomic_output(out / "study.json") as tmp:
        runs = {"preset": meta, "table": rows, "paired": paired_totals(rows), "runs": list(summaries)}
        tmp.write_text(json.dumps(runs, indent=1))
    fields = ["architecture", "objective", "seed", "epochs_to_threshold", "epochs_run", "max_epochs", "threshold",
              "best_value", "final_value", "generator_params", "total_time_s", "run_dir"]  # fmt: skip
    with atomic_output(out / "study.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for s in summaries:
            writer.writerow(s)
    first = summaries[0] if summaries else {}
    threshold = first.get("threshold")
    rule = f"{first.get('factor')} × {first.get('rule')}" + (
        f" (= {threshold:.5g} {first.get('monitor')})" if threshold is not None else ""
    )
    totals = paired_totals(rows)
    text = (
        f"# Epochs to threshold\n\nThreshold: {rule}\n\n"
        + table_markdown(rows)
        + "\n"
        + paired_sentence(totals)
        + "\n"
    )
    with atomic_output(out / "study.md") as tmp:
        tmp.write_text(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aerogan.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="configs/study/preset_<name>.yaml, or a preset file")
    parser.add_argument(
        "--out", default="runs/study", help="output folder (one run folder per run, plus study.*)"
    )
    parser.add_argument("--architectures", nargs="+", help=f"subset of {', '.join(ARCHITECTURES)}")
    parser.add_argument("--objectives", nargs="+", choices=["supervised", "regularized"])
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument(
        "--force", action="store_true", help="rerun runs that already have a finished summary"
    )
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: the preset's num_threads, else torch's)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra LightningCLI arguments after `--`, e.g. -- --trainer.max_epochs=5"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    preset = load_preset(args.preset)
    if args.threads:
        preset["num_threads"] = args.threads
    start = time.perf_counter()
    summaries = run_study(
        preset, Path(args.out), args.architectures, args.objectives, args.seeds, args.overrides, args.force
    )
    print(
        f"\n[study] {len(summaries)} runs, {time.perf_counter() - start:.0f} s; table in {Path(args.out) / 'study.md'}\n"
    )
    print(table_markdown(summarize(summaries)))


if __name__ == "__main__":
    main()
