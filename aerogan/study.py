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

* **Seeds**: ``--seeds K`` runs seeds 0..K-1 (the preset's ``seeds`` by default); each row gives medians and
  means ± 95 % interval, and the claim "the regularized run reaches the threshold in fewer epochs" is decided
  on the paired (same seed) differences (:func:`aerogan.experiments.paired_claim`).

Usage::

    aerogan study --preset cpu --out runs/study          # or python -m aerogan.study; about 6 min on 2 CPU cores
    aerogan study --preset cpu --out runs/study --architectures mlp_deep cnn_resnet --seeds 2
    aerogan study --merge runs/a runs/b --out runs/ab    # one table from separate jobs
    aerogan report runs/study --out reports/study

The runs go through :mod:`aerogan.experiments` (one fit path, resume on the resolved configuration, ``--devices N``
worker processes). Each run writes ``study_summary.json`` and ``run.json`` in its run folder
(``<out>/<arch>_<objective>_s<seed>/version_0/``); the runner aggregates them into ``<out>/study.json``,
``<out>/study.csv`` and ``<out>/study.md``. Presets are YAML files ``configs/study/preset_<name>.yaml``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
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

__all__ = ["grid", "load_study_preset", "main", "run_study", "summarize"]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "study"
OBJECTIVES = ("supervised", "regularized")

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
CSV_FIELDS = ["architecture", "objective", "seed", "epochs_to_threshold", "epochs_run", "max_epochs", "threshold",
              "best_value", "final_value", "generator_params", "steps", "fit_time_s", "run_dir"]  # fmt: skip


# ---------------------------------------------------------------------------------------------- the grid
def load_study_preset(name: str) -> dict[str, Any]:
    """``configs/study/preset_<name>.yaml`` (or a preset file): ``base``, ``architectures``, ``objectives``."""
    return load_preset("study", name, keys=("base", "architectures", "objectives"))


def grid(preset: dict[str, Any], out: Path, architectures: Sequence[str] | None = None,
         objectives: Sequence[str] | None = None, seeds: Sequence[int] = (0,), extra: Sequence[str] = ()) -> list[RunSpec]:  # fmt: skip
    """One fit per (architecture, seed, objective): base config + the architecture's file, the objective set."""
    archs = list(architectures or preset.get("architectures", list(ARCHITECTURES)))
    objs = list(objectives or preset.get("objectives", list(OBJECTIVES)))
    unknown = [a for a in archs if not (CONFIG_DIR / f"{a}.yaml").is_file()]
    if unknown:
        raise ValueError(f"unknown architecture(s) {unknown}: no configs/study/<name>.yaml (known: {', '.join(ARCHITECTURES)})")
    bad = [o for o in objs if o not in OBJECTIVES]
    if bad:
        raise ValueError(f"objectives {bad}: the study compares {list(OBJECTIVES)}")
    base = CONFIG_DIR / preset.get("base", "base.yaml")
    return [RunSpec(f"{arch}_{obj}", (str(base), str(CONFIG_DIR / f"{arch}.yaml")),
                    ("--model.init_args.objective", obj, *preset["overrides"], *extra), seed, str(out), test=False,
                    labels={"architecture": arch, "objective": obj}, num_threads=preset.get("num_threads"))
            for arch in archs for seed in seeds for obj in objs]  # fmt: skip


def run_study(preset: dict[str, Any], out: Path, architectures: Sequence[str] | None = None,
              objectives: Sequence[str] | None = None, seeds: Sequence[int] | None = None, extra: Sequence[str] = (),
              force: bool = False, devices: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    """Fit every run of the grid not already finished under ``out``; write ``study.*`` as runs finish."""
    specs = grid(preset, out, architectures, objectives, seed_list(preset) if seeds is None else seeds, extra)

    def write(summaries: list[dict[str, Any]]) -> None:  # after every run, and once more when nothing was left to fit
        for record in summaries:
            if "epochs_to_threshold" not in record:
                raise RuntimeError(f"{record['run_dir']}: no epochs-to-threshold summary; is callbacks.EpochsToThreshold in the config's trainer.callbacks?")
        write_aggregate(out, summaries, preset)

    return run_specs(specs, devices, force, "[study]", write)


# ---------------------------------------------------------------------------------------------- the table
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
        capped = {obj: {seed: _capped(by[(obj, seed)]) for seed in seeds if (obj, seed) in by} for obj in OBJECTIVES}
        for obj in OBJECTIVES:
            row[f"{obj}_interval"] = interval(list(capped[obj].values())).to_dict()
        row["claim"] = paired_claim(f"{ARCHITECTURES.get(arch, arch)}: the regularized run reaches the threshold in fewer epochs",
                                    capped["regularized"], capped["supervised"])  # fmt: skip
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


def _capped(summary: dict[str, Any]) -> float | None:
    """Epochs to threshold, a run that never reached it counted as its cap (a lower bound on its true value)."""
    value = summary.get("epochs_to_threshold")
    return float(value) if value is not None else (float(summary["max_epochs"]) if summary.get("max_epochs") else None)


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
    """The epochs table as markdown: median and mean ± 95 % interval over seeds (each seed in brackets), the paired
    claim's verdict, the talk's numbers beside ours."""
    from aerogan.experiments import Interval

    lines = [
        "| Architecture | Sup. epochs | Reg. epochs | Speed-up (medians) | Reg. − sup. (paired) | Reg. faster / tied / slower | Fewer epochs? | Paper sup / reg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = f"{r['speedup']:.2f}×" if r["speedup"] is not None else "n/a"
        cells = []
        for obj in OBJECTIVES:
            med = format_epochs(r[f"{obj}_median"], r[f"{obj}_cap"])
            each = ", ".join("–" if e is None else str(e) for e in r[f"{obj}_epochs"])
            stats = r.get(f"{obj}_interval")
            mean = f"; mean {Interval(**{k: v for k, v in stats.items() if k != 'half_width'}).format(3)}" if stats and stats["n"] > 1 else ""
            cells.append(f"{med} [{each}]{mean}" if len(r[f"{obj}_epochs"]) > 1 else med)
        paired = r["paired"]
        claim = r.get("claim") or {}
        diff = claim.get("difference") or {}
        d = "n/a" if diff.get("mean") is None else (f"{diff['mean']:+.3g} ± {diff['half_width']:.2g}" if diff.get("half_width") is not None else f"{diff['mean']:+.3g}")
        paper = (
            f"{r['paper'][0]} / {r['paper'][1]} ({r['paper'][0] / r['paper'][1]:.1f}×)"
            if r.get("paper")
            else "n/a"
        )
        lines.append(
            f"| {r['name']} | {cells[0]} | {cells[1]} | {speed} | {d} | {paired['faster']} / {paired['tied']} / {paired['slower']} | "
            f"{claim.get('verdict', 'n/a')} | {paper} |"
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


def write_aggregate(out: Path, summaries: Sequence[dict[str, Any]], preset: dict[str, Any] | None = None) -> None:
    """``study.json`` (all summaries + table rows + claims), ``study.csv`` (one row per run) and ``study.md``."""
    rows = summarize(summaries)
    meta = {k: v for k, v in (preset or {}).items() if not k.startswith("_")} | {"preset_file": (preset or {}).get("_path")}
    totals = paired_totals(rows)
    first = summaries[0] if summaries else {}
    threshold = first.get("threshold")
    rule = f"{first.get('factor')} × {first.get('rule')}" + (f" (= {threshold:.5g} {first.get('monitor')})" if threshold is not None else "")
    seeds = sorted({s.get("seed") for s in summaries if s.get("seed") is not None})
    text = (f"# Epochs to threshold\n\nThreshold: {rule}. Seeds {seeds}: medians and means ± 95 % interval over seeds "
            "(a run that never reaches the threshold counts as its epoch cap in the mean, a lower bound); the claim "
            "compares the paired runs (same seed and data) and reads holds / does not hold / not resolved at this budget.\n\n"
            + table_markdown(rows) + "\n" + paired_sentence(totals) + "\n")  # fmt: skip
    result = {"preset": meta, "table": rows, "paired": totals, "claims": [r["claim"] for r in rows], "runs": list(summaries)}
    write_outputs(out, "study", result, list(summaries), CSV_FIELDS, text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aerogan study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="configs/study/preset_<name>.yaml, or a preset file")
    add_runner_arguments(parser, "study", "runs/study")
    parser.add_argument("--architectures", nargs="+", help=f"subset of {', '.join(ARCHITECTURES)}")
    parser.add_argument("--objectives", nargs="+", choices=list(OBJECTIVES))
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI arguments after `--`, e.g. -- --trainer.max_epochs=5")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    out = Path(args.out)
    start = time.perf_counter()
    try:
        if args.merge:
            summaries = merge_runs(read_results(args.merge, "study", "aerogan study"), ("architecture", "objective", "seed"))
            write_aggregate(out, summaries, {"merged_from": list(args.merge)})
        else:
            preset = load_study_preset(args.preset)
            if args.threads:
                preset["num_threads"] = args.threads
            summaries = run_study(preset, out, args.architectures, args.objectives, seed_list(preset, args.seeds, args.seed),
                                  args.overrides, args.force, args.devices)  # fmt: skip
    except ValueError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"\n[study] {len(summaries)} runs, {time.perf_counter() - start:.0f} s; table in {out / 'study.md'}\n")
    print(table_markdown(summarize(summaries)))


if __name__ == "__main__":
    main()
