"""``aerogan report RUN_DIR [RUN_DIR ...] --out OUT`` (also ``python -m aerogan.report``): figures and report.md.

Inputs, each a run folder (``runs/<name>/version_<k>``), a folder above run folders, or a study output folder
(holding ``study.json``). Writes into OUT the PNGs of :data:`aerogan.report.figures.FIGURES` that the runs can
fill, ``study_epochs.png`` / ``study_curves.png`` for studies, and ``report.md``: the runs, the final-drift tables,
the theory's claims with their verdicts and numbers, the study's table and verdict, and the figures.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from aerogan.atomic import atomic_output
from aerogan.report.claims import claims_section
from aerogan.report.figures import FIGURES
from aerogan.report.runs import Run, find_runs, load_run
from aerogan.report.study_section import study_section
from aerogan.report.tables import drift_section

__all__ = ["build_report", "main"]


def _runs_section(runs: Sequence[Run], studies: Sequence[Path]) -> list[str]:
    lines = ["## Runs", ""]
    for run in runs:
        what = ", ".join(
            w for w, ok in (
                ("TensorBoard scalars", bool(run.scalars)), ("theory.csv", run.theory is not None),
                ("weight_drift.csv", run.drift_table is not None), ("study_summary.json", run.study is not None),
            ) if ok
        )  # fmt: skip
        lines.append(f"- `{run.path}`: {run.label}, objective {run.objective or 'n/a'} ({what or 'nothing readable'})")
    lines += [f"- `{folder}`: study output (study.json)" for folder in studies]
    return [*lines, ""]


def build_report(inputs: Sequence[str | Path], out: Path, title: str = "aerogan report") -> tuple[Path, list[Path]]:
    """Read the runs under ``inputs``, write the figures and ``report.md`` into ``out``; (report path, figures)."""
    out.mkdir(parents=True, exist_ok=True)
    run_dirs, studies = find_runs(inputs)
    runs = [load_run(p.resolve()) for p in run_dirs]
    curve_runs = [r for r in runs if r.study is None or r.theory is not None]  # study runs go to the study section
    figures = [p for plot in FIGURES if curve_runs and (p := plot(curve_runs, out)) is not None]
    study_lines, study_figures = study_section(studies, runs, out)
    figures += study_figures

    lines = [f"# {title}", "", *_runs_section(runs, studies)]
    lines += drift_section(curve_runs)
    lines += claims_section([r for r in curve_runs if r.theory is not None and r.objective])
    lines += study_lines
    lines += ["## Figures", "", *(f"![{p.stem}]({p.name})" for p in figures), ""]
    report = out / "report.md"
    with atomic_output(report) as tmp:
        tmp.write_text("\n".join(lines))
    return report, figures


def main(argv: Sequence[str] | None = None) -> None:
    """``aerogan report RUN_DIR [RUN_DIR ...] --out OUT [--title TITLE]``."""
    parser = argparse.ArgumentParser(prog="aerogan report", description="Plots and a markdown report from recorded aerogan runs.")
    parser.add_argument("runs", nargs="+", help="run folders, folders above them, or study output folders")
    parser.add_argument("--out", required=True, help="output folder for the PNGs and report.md")
    parser.add_argument("--title", default="aerogan report")
    args = parser.parse_args(list(argv) if argv is not None else None)
    report, figures = build_report(args.runs, Path(args.out), args.title)
    print(f"aerogan report: wrote {report} and {len(figures)} figure(s) to {report.parent}")
