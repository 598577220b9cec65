"""The epochs-to-threshold study section of report.md (docs/science.md §3): table, figures and verdict."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aerogan.report.claims import adversarial_acceleration
from aerogan.report.figures import plot_study
from aerogan.report.markdown import fmt
from aerogan.report.runs import Run

__all__ = ["study_section", "study_summaries"]


def _resolved(path: Any) -> str:
    try:
        return str(Path(path).resolve())
    except (TypeError, OSError):
        return str(path)


def study_summaries(studies: Sequence[Path], runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Run summaries of the study folders' ``study.json`` plus those of study runs given directly, each run once."""
    summaries: list[dict[str, Any]] = []
    for folder in studies:
        summaries += json.loads((folder / "study.json").read_text()).get("runs", [])
    seen = {_resolved(s.get("run_dir")) for s in summaries}
    for run in runs:
        if run.study is not None and run.study.get("architecture") and _resolved(run.path) not in seen:
            summaries.append(run.study)
            seen.add(_resolved(run.path))
    return [s for s in summaries if s.get("architecture") and s.get("objective")]


def study_section(studies: Sequence[Path], runs: Sequence[Run], out: Path) -> tuple[list[str], list[Path]]:
    """(report.md lines, figure paths) of the study; both empty when the inputs hold no study run."""
    from aerogan.study import paired_sentence, paired_totals, summarize, table_markdown

    summaries = study_summaries(studies, runs)
    if not summaries:
        return [], []
    rows = summarize(summaries)
    totals = paired_totals(rows)
    paths = plot_study(rows, summaries, out)
    first = summaries[0]
    baselines = first.get("baselines") or {}
    seeds = sorted({s.get("seed") for s in summaries if s.get("seed") is not None})
    lines = [
        "## Epochs-to-threshold study",
        "",
        f"Criterion (fixed before training): first epoch with `{first.get('monitor')}` ≤ {first.get('factor')} × "
        f"{first.get('rule')} = {fmt(first.get('threshold'))} (validation RMSE of the baselines fitted on the training "
        f"pixels: per-band mean {fmt(baselines.get('mean_baseline'))}, per-pixel linear least squares "
        f"{fmt(baselines.get('linear_baseline'))}). Epoch cap {first.get('max_epochs')}; medians over seeds {seeds} "
        "with each seed's epochs in brackets; a run that never reaches the threshold counts as +∞.",
        "",
        table_markdown(rows),
        paired_sentence(totals),
        "",
        adversarial_acceleration(rows, totals).markdown(),
        "",
        "The talk's numbers come from an unpublished task, criterion, optimizer and epoch length; this table reproduces "
        "the protocol (same seeds and optimizer, fixed threshold), not the setting. Here every architecture reaches the "
        "threshold within a few dozen short epochs, which leaves little room for a large speed-up.",
        "",
    ]
    return lines, paths
