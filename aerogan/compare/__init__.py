r"""``aerogan compare``: the talk's four-network table (AeroGAN, DeepAWiFS, DSen2, ALERT) regenerated on real data.

The talk compares four remote-sensing networks by parameters, training epochs, training RMSE and inference time,
with a "% gain" row for ALERT against DSen2. This runner measures the same table for any task config, and fits
every architecture under *both* objectives (supervised and adversarially regularized), so the table says how much
of each gain comes from the architecture and how much from the critic:

* **Rows**: one YAML overlay per architecture in ``configs/compare/`` (``aerogan.yaml``: SRResNet-style, 1.97 M;
  ``deepawifs.yaml``: deeper SRResNet, 4.75 M; ``dsen2.yaml``: DSen2's network, 128 features x 6 blocks,
  1.79 M, on the shared recipe; ``dsen2_published.yaml``: the same network with DSen2's own published recipe
  (Nadam at a constant 1e-4, bilinear upsampling of the coarse bands, no projection); ``alert.yaml``:
  residual-dense blocks, 2.81 M; counts on Sentinel-2 T2). Each file sets the
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
* **Same budget**: every row trains the same number of generator steps (batches; the table says how many), and
  every network starts at its interpolated input (``start_at_skip``), so a % gain compares networks, not starts.
* **Seeds** (``--seeds K``): each cell is the mean ± 95 % interval over K seeds; "regularized lowers held-out RMSE"
  per architecture and the pair's "ROW lowers held-out RMSE against REFERENCE" are paired claims (same seed)
  that read holds / does not hold / not resolved at this budget (:mod:`aerogan.experiments.stats`).
* **% gain** of a pair (``--pair ALERT DSen2``), as the talk's table computes it: ``(reference - row) / reference``, in
  percent truncated to two decimals, for the lower-is-better columns; SRE as a difference in dB.

Outputs in ``--out``: ``compare.md``, ``compare.csv``, ``compare.json``, ``compare_val_rmse.png`` (validation RMSE
against epochs per row) and ``compare_inference.png`` (inference time against parameters), and one run folder per
row and seed (``<arch>_<objective>_s<seed>/version_<n>/``: TensorBoard events, ``study_summary.json``,
``last.ckpt``, ``run.json``, the predicted product). Runs go through :mod:`aerogan.experiments`: a finished run
with the same resolved configuration is reused unless ``--force``, and the table holds every finished run of the
folder for the same task and threshold (so ``--only`` and ``--seed`` calls add up).

Presets (``configs/compare/preset_<name>.yaml``: epochs per architecture, samples per epoch, threads):

* ``cpu``: the 8 rows on T2 on 2 CPU cores in about 34 min (budget: 45): 15 epochs of 256 patches per row, one
  intra-op thread. Measured on a 2-core machine shared with another training job, one epoch of 256 patches with its
  validation (regularized / supervised): AeroGAN 9.2 / 6.3 s, DeepAWiFS 16.6 / 13.8 s, DSen2 24 / 21 s, ALERT
  12.6 / 10 s (about 1700 s of training in all); whole-crop inference 13-37 s per row (about 220 s for the 8);
  test and training-split RMSE a few seconds per row. Two intra-op threads were up to 14x slower on that machine.
* ``full``: one GPU, about 10 minutes for the 8 rows (20 epochs of 1024 patches; estimated, not yet timed on a GPU).
* ``quick`` (``--quick``): one epoch of a few patches, for tests.

Usage::

    aerogan compare --preset cpu --out runs/compare                 # or python -m aerogan.compare
    aerogan compare --preset full --out runs/compare_gpu --devices 4 # runs side by side, one GPU each
    aerogan compare --only ALERT DSen2 DSen2-published --seeds 3 --out runs/c
    aerogan compare --task configs/sentinel2_swir_synthesis.yaml --only AeroGAN DSen2 --out runs/swir
    aerogan compare --only DSen2 --seed 0 --out runs/a && aerogan compare --only DSen2 --seed 1 --out runs/b
    aerogan compare --merge runs/a runs/b --out runs/ab             # one table from separate jobs (or seeds)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from aerogan.compare.rows import (
    CONFIG_DIR,
    DEFAULT_TASK,
    InputError,
    Row,
    build_datamodule,
    discover_rows,
    epochs_for,
    load_compare_preset,
    load_task,
    row_specs,
    select_rows,
)
from aerogan.compare.scores import fix_threshold, score_row, write_threshold_overlay
from aerogan.compare.table import aggregate, format_gain, markdown, pair_gains, percent_gain, write_result
from aerogan.experiments import finished_records, merge_runs, read_results, run_specs, seed_list
from aerogan.experiments.arguments import add_runner_arguments
from aerogan.metrics import tags

__all__ = [
    "CONFIG_DIR",
    "InputError",
    "Row",
    "aggregate",
    "discover_rows",
    "fix_threshold",
    "format_gain",
    "load_compare_preset",
    "load_task",
    "main",
    "merge",
    "pair_gains",
    "percent_gain",
    "row_specs",
    "run_compare",
    "score_row",
    "select_rows",
]


def run_compare(task_path: str, preset: dict[str, Any], out: Path, only: Sequence[str] | None = None,
                pair: Sequence[str] | None = ("ALERT", "DSen2"), seeds: Sequence[int] = (0,), threshold: float | None = None,
                devices: int = 1, force: bool = False) -> dict[str, Any]:  # fmt: skip
    """Check the inputs, fix the threshold, fit the rows for every seed (here or in ``devices`` processes), write the table.

    The table holds every finished run under ``out`` for this task and threshold, so rows and seeds run by earlier
    calls into the same folder join it (``--merge`` joins folders).
    """
    rows = select_rows(discover_rows(), only)
    if pair:
        if len(pair) != 2:
            raise InputError(f"--pair takes two row names (row, reference), got {list(pair)}")
        select_rows(discover_rows(), list(pair), "--pair")  # names checked before any run
    task = load_task(task_path, preset)
    for r in rows:
        epochs_for(preset, r.architecture)
    if devices < 1:
        raise InputError(f"--devices must be >= 1, got {devices}")
    if preset.get("num_threads"):
        torch.set_num_threads(int(preset["num_threads"]))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if threshold is None:
        thr = fix_threshold(build_datamodule(task, preset), preset.get("threshold_factor"))
    else:
        thr = {"rule": "absolute", "factor": 1.0, "baseline": None, "value": float(threshold), "monitor": tags.VAL_RMSE,
               "text": f"{tags.VAL_RMSE} <= {threshold:.6g} (given with --threshold)"}  # fmt: skip
    print(f"[compare] threshold: {thr['text']}", flush=True)
    overlay = write_threshold_overlay(out, thr["value"])
    meta = {"task": {k: task[k] for k in ("config", "name", "id")}, "threshold": thr,
            "preset": {k: v for k, v in preset.items() if not k.startswith("_")} | {"file": preset.get("_path")},
            "device": "cuda" if torch.cuda.is_available() and "--trainer.accelerator=cpu" not in preset["overrides"] else "cpu"}  # fmt: skip
    specs = row_specs(rows, task, preset, out, seeds, overlay, thr["value"])
    ran = {(s.labels["row"], s.seed) for s in specs}

    def collect(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """This call's runs plus the finished runs of other rows and seeds in ``out`` (same task and threshold)."""
        earlier = [rec for rec in finished_records(out) if rec.get("row") and rec.get("task", {}).get("id") == task["id"]
                   and math.isclose(rec.get("threshold", -1.0), thr["value"], rel_tol=1e-9) and (rec["row"], rec["seed"]) not in ran]  # fmt: skip
        newest: dict[tuple[str, int], dict[str, Any]] = {}
        for rec in sorted(earlier, key=lambda r: r["run_dir"]):
            newest[(rec["row"], rec["seed"])] = rec
        return [*records, *newest.values()]

    records = run_specs(specs, devices, force, "[compare]", lambda done: write_result(out, aggregate(collect(done), meta, pair)))
    return aggregate(collect(records), meta, pair)  # the last on_record call has written this table already


def merge(dirs: Sequence[str | os.PathLike[str]], out: Path, pair: Sequence[str] | None = None) -> dict[str, Any]:
    """One table from the ``compare.json`` of separate jobs: same task and threshold, each (row, seed) once."""
    try:
        results = read_results(dirs, "compare", "aerogan compare")
    except ValueError as err:
        raise InputError(str(err)) from err
    first_dir, first = results[0]
    for d, r in results[1:]:
        if r["task"]["id"] != first["task"]["id"]:
            raise InputError(f"--merge: {d} holds results of task {r['task']['name']} ({r['task']['config']}) but {first_dir} of "
                             f"task {first['task']['name']} ({first['task']['config']}); merge results of one task only")  # fmt: skip
        if not math.isclose(r["threshold"]["value"], first["threshold"]["value"], rel_tol=1e-9):
            raise InputError(f"--merge: {d} used the threshold {r['threshold']['value']:.6g} but {first_dir} "
                             f"{first['threshold']['value']:.6g} (different data settings); merge runs of one threshold only")  # fmt: skip
    try:
        records = merge_runs(results, ("row", "seed"))
    except ValueError as err:
        raise InputError(str(err)) from err
    meta = {k: first[k] for k in ("task", "threshold", "preset", "device") if k in first} | {"merged_from": [d for d, _ in results]}
    pair = pair if pair is not None else ((first.get("pair") or {}).get("row"), (first.get("pair") or {}).get("reference"))
    result = aggregate(records, meta, pair if all(pair) else None)
    write_result(out, result)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aerogan compare", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", help="cpu, full, quick (configs/compare/preset_<name>.yaml) or a preset file")
    parser.add_argument("--quick", action="store_true", help="the tiny preset (tests): same as --preset quick")
    add_runner_arguments(parser, "compare", "runs/compare")
    parser.add_argument("--task", default=DEFAULT_TASK, help=f"task config (default {DEFAULT_TASK}; e.g. configs/sentinel2_swir_synthesis.yaml)")
    parser.add_argument("--only", nargs="+", metavar="ROW", help="rows to run, e.g. AeroGAN DSen2 ALERT-sup (default: all)")
    parser.add_argument("--pair", nargs=2, metavar=("ROW", "REFERENCE"), default=["ALERT", "DSen2"], help="the %% gain row (default ALERT DSen2)")
    parser.add_argument("--threshold", type=float, help="an absolute validation-RMSE threshold instead of the data's rule")
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
            result = run_compare(args.task, preset, out, args.only, args.pair, seed_list(preset, args.seeds, args.seed),
                                 args.threshold, args.devices, args.force)  # fmt: skip
    except (InputError, ValueError) as err:
        raise SystemExit(f"aerogan compare: {err}") from err
    print(f"\n[compare] {len(result['rows'])} rows, {time.perf_counter() - start:.0f} s; table in {out / 'compare.md'}\n")
    print(markdown(result).split("\n## ")[0])

