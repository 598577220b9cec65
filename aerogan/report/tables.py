"""The report's tables of measured numbers: final weight drift per run and layer, regularized / supervised ratios,
and the setting of the two-layer theory runs (docs/science.md §2)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aerogan.report.markdown import fmt, ratio
from aerogan.report.runs import Run, drift_series, layer_names

__all__ = ["drift_section", "final_drift", "theory_setting"]

REGULARIZED = ("regularized", "adversarial")


def final_drift(run: Run, layer: str | None) -> dict[str, float | None]:
    """The latest drift summary of ``layer`` (max, mean, frob, epoch): TensorBoard, the drift table or theory.csv,
    whichever was recorded last."""
    out: dict[str, float | None] = {"max": None, "mean": None, "frob": None, "epoch": None}
    if layer is None:
        return out
    candidates: list[dict[str, float]] = []
    series = {stat: drift_series(run, layer, stat) for stat in ("max", "mean", "frob")}
    if all(v is not None and len(v[1]) for v in series.values()):
        epoch = float(series["max"][0][-1])  # type: ignore[index]
        candidates.append({"epoch": epoch, **{k: float(v[1][-1]) for k, v in series.items()}})  # type: ignore[index]
    if run.drift_table and layer in run.drift_table:
        t = run.drift_table[layer]
        epoch = float(run.step_to_epoch(t["step"][-1:], t["epoch"][-1:])[0])
        candidates.append({"epoch": epoch, "max": float(t["max"][-1]), "mean": float(t["mean"][-1]),
                           "frob": float(t["frob"][-1])})  # fmt: skip
    if run.theory is not None and layer.endswith("hidden"):  # theory.csv's u_j drift = rows of the hidden layer
        th = run.theory
        candidates.append({"epoch": float(th["epoch"][-1]), "max": float(th["u_drift_max"][-1]),
                           "mean": float(th["u_drift_mean"][-1]), "frob": float(th["u_drift_frob"][-1])})  # fmt: skip
    if candidates:
        out.update(max(candidates, key=lambda c: c["epoch"]))
    return out


def drift_section(runs: Sequence[Run]) -> list[str]:
    """Final drift of the hidden and top layer per run and, with both objectives, the regularized / supervised ratios."""
    sup = [r for r in runs if r.objective == "supervised"]
    reg = [r for r in runs if r.objective in REGULARIZED]
    layers = [x for x in layer_names(runs) if x]
    layers = list(dict.fromkeys(layers))
    if not (layers and (sup or reg)):
        return []
    lines = [
        "## Weight drift at the last epoch",
        "",
        "| run | objective | epoch | layer | max_j drift | mean_j drift | ‖ΔW‖_F |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for layer in layers:
            d = final_drift(run, layer)
            if d["max"] is not None:
                lines.append(
                    f"| {run.label} | {run.objective or 'n/a'} | {fmt(d['epoch'])} | {layer} | {fmt(d['max'])} | "
                    f"{fmt(d['mean'])} | {fmt(d['frob'])} |"
                )
    lines.append("")
    if sup and reg:
        lines += [
            "### Regularized vs supervised (ratio reg / sup, last epoch)",
            "",
            "| pair | layer | max_j drift sup | max_j drift reg | ratio | mean_j sup | mean_j reg | ratio | ‖ΔW‖_F ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        s = sup[0]
        for r in reg:
            for layer in layers:
                ds, dr = final_drift(s, layer), final_drift(r, layer)
                if ds["max"] is None or dr["max"] is None:
                    continue
                lines.append(
                    f"| {r.label} / {s.label} | {layer} | {fmt(ds['max'])} | {fmt(dr['max'])} | {ratio(dr['max'], ds['max'])} | "
                    f"{fmt(ds['mean'])} | {fmt(dr['mean'])} | {ratio(dr['mean'], ds['mean'])} | {ratio(dr['frob'], ds['frob'])} |"
                )
        lines.append("")
    return lines


def theory_setting(theory: Sequence[Run]) -> list[str]:
    """The two-layer setting (n, m, λ0, ...) of the first theory run, how far it is from the proven regime, and one
    row of final numbers per theory run."""
    first = theory[0].theory
    assert first is not None
    n, m, d_in, d_out = (int(first[k][0]) for k in ("n", "m", "d_in", "d_out"))
    lam0, lam_max, r0 = float(first["lambda0"][0]), float(first["lambda_max_Hinf"][0]), float(first["residual"][0])
    required = n**7 / lam0**4 if lam0 > 0 else math.inf
    lines = [
        f"Setting: n = {n} training pairs, width m = {m}, d_in = {d_in}, d_out = {d_out}; λ0 = λ_min(H∞) = {fmt(lam0)}, "
        f"λ_max(H∞) = {fmt(lam_max)} (κ∞ = {fmt(lam_max / lam0 if lam0 > 0 else math.nan)}); ‖z(0) − y‖ = {fmt(r0)}. "
        "Time is gradient-flow time t = Σ lr over full-batch steps.",
        "",
        f"The theorems assume m = Ω(n⁷/λ0⁴) (= {fmt(required, 3)} here) and λ_min(H(t)) ≥ λ0/2 throughout; "
        + (
            f"m = {m} is far below, so the runs are outside the proven regime and the checks below are empirical "
            "comparisons, not tests of the theorems (docs/science.md §2)."
            if m < required
            else f"m = {m} meets the width condition up to its constant (docs/science.md §2)."
        ),
        "",
        "| run | objective | final t | final ‖z − y‖ | ‖z − y‖/‖z(0) − y‖ | min λ_min(H(t)) | flipped patterns | max_j ‖u_j − u_j(0)‖ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in theory:
        th = run.theory
        assert th is not None
        lines.append(
            f"| {run.label} | {run.objective} | {fmt(th['t'][-1])} | {fmt(th['residual'][-1])} | "
            f"{fmt(th['residual_rel'][-1], 3)} | {fmt(np.nanmin(th['lambda_min_H']))} | {fmt(th['flip_fraction'][-1], 3)} | "
            f"{fmt(th['u_drift_max'][-1])} |"
        )
    return [*lines, ""]
