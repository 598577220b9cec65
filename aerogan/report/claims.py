"""The theory's claims checked against measured curves: one function per claim, each returning a :class:`Claim`.

A claim function takes plain series (``theory.csv`` columns as a mapping, or ``(steps, values)`` scalars), so it can
be checked on synthetic data; it answers *holds*, *does not hold* or *not measurable* (too few records, a run or a
column missing), with the numbers it used. :func:`claims_section` only picks the runs and lists the results. The
claims and what the monitors measure are described in docs/science.md §2 (two-layer theory) and §3 (the study).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aerogan.report.markdown import fmt
from aerogan.report.runs import Run, Series
from aerogan.report.tables import REGULARIZED, theory_setting
from callbacks.tags import ADVERSARIAL_TERM, SUPERVISED_TERM, TERM_COSINE, TOTAL, loss_term_tag

__all__ = [
    "Claim",
    "Verdict",
    "adversarial_acceleration",
    "claims_section",
    "critic_moves_weights_further",
    "gram_stays_well_conditioned",
    "path_length_grows_linearly",
    "per_neuron_drift_shrinks_with_width",
    "reaction_decays_diffusion_persists",
    "regularized_drift_grows_linearly",
    "regularized_residual_stays_above",
    "supervised_drift_is_bounded",
    "supervised_residual_decays",
    "theorem1_drift_bound",
]

#: ``theory.csv`` as columns (see ``callbacks.theory.COLUMNS``).
TheoryTable = Mapping[str, np.ndarray]


class Verdict(enum.Enum):
    """Outcome of checking one claim on the runs at hand."""

    HOLDS = "holds"
    DOES_NOT_HOLD = "does not hold"
    NOT_MEASURABLE = "not measurable"

    @classmethod
    def of(cls, ok: bool) -> Verdict:
        return cls.HOLDS if ok else cls.DOES_NOT_HOLD


@dataclass(frozen=True)
class Claim:
    """One claim, its verdict, the numbers behind it and a sentence that says how it was read."""

    claim: str
    basis: str
    verdict: Verdict
    detail: str
    numbers: dict[str, float] = field(default_factory=dict)

    def markdown(self) -> str:
        """One bullet of report.md: the claim in bold, where it comes from, the numbers, the verdict."""
        return f"- **{self.claim}** ({self.basis}): {self.detail.rstrip('.')} → **{self.verdict.value}**."


def _not_measurable(claim: str, basis: str, why: str) -> Claim:
    return Claim(claim, basis, Verdict.NOT_MEASURABLE, why)


# ---------------------------------------------------------------------------------------------- series shape
def growth(t: np.ndarray, d: np.ndarray) -> dict[str, float]:
    """Increments of ``d`` over the four quarters of the time range and a line fit on the second half.

    Keys ``q1..q4``, ``q4_over_q1``, ``q4_over_q3``, ``slope_second_half``, ``r2_second_half``; ``{}`` with fewer
    than 4 finite records or an empty time range.
    """
    t, d = np.asarray(t, float), np.asarray(d, float)
    ok = np.isfinite(t) & np.isfinite(d)
    t, d = t[ok], d[ok]
    if len(t) < 4 or t[-1] <= t[0]:
        return {}
    edges = np.linspace(t[0], t[-1], 5)
    q = np.diff(np.interp(edges, t, d))
    half = t >= edges[2]
    if half.sum() < 2:
        return {}
    slope, icpt = np.polyfit(t[half], d[half], 1)
    ss_res = float(((d[half] - (slope * t[half] + icpt)) ** 2).sum())
    ss_tot = float(((d[half] - d[half].mean()) ** 2).sum())
    return {
        "q1": float(q[0]), "q2": float(q[1]), "q3": float(q[2]), "q4": float(q[3]),
        "q4_over_q1": float(q[3] / q[0]) if q[0] > 0 else math.nan,
        "q4_over_q3": float(q[3] / q[2]) if q[2] > 0 else math.nan,
        "slope_second_half": float(slope),
        "r2_second_half": 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan,
    }  # fmt: skip


def quarter_means(series: Series | None) -> tuple[float, float, float] | None:
    """Mean of a scalar over the first, second and last quarter of its steps; ``None`` under 8 records."""
    if series is None or len(series[0]) < 8:
        return None
    steps, values = np.asarray(series[0], float), np.asarray(series[1], float)
    edges = np.linspace(steps[0], steps[-1], 5)
    parts = [values[(steps >= a) & (steps <= b)] for a, b in zip(edges[:-1], edges[1:], strict=True)]
    if any(len(p) == 0 for p in (parts[0], parts[1], parts[3])):
        return None
    return float(parts[0].mean()), float(parts[1].mean()), float(parts[3].mean())


def _quarters(g: Mapping[str, float]) -> str:
    return ", ".join(fmt(g[k], 3) for k in ("q1", "q2", "q3", "q4"))


def _has(th: TheoryTable | None, *columns: str) -> bool:
    return th is not None and all(c in th and np.isfinite(np.asarray(th[c], float)).any() for c in columns)


# ---------------------------------------------------------------------------------------------- supervised claims
def supervised_residual_decays(th: TheoryTable | None) -> Claim:
    """‖z(t) − y‖ ≤ e^(−λ0 t/(2 d_out)) ‖z(0) − y‖ at every record of a supervised run (the d_out-output form of the
    stated e^(−λ0 t/2) bound); also reports where the literal d_out = 1 form is exceeded and the fitted rate."""
    claim, basis = "Supervised residual decays exponentially", "‖z(t) − y‖ ≤ e^(−λ0 t/(2 d_out)) ‖z(0) − y‖, docs/science.md §2"
    cols = ("t", "residual", "residual_bound_dout", "residual_bound", "lambda0", "d_out")
    if not _has(th, *cols) or len(th["t"]) < 2:  # type: ignore[index]
        return _not_measurable(claim, basis, "needs a supervised theory run with at least 2 records of theory.csv.")
    assert th is not None
    t, res = np.asarray(th["t"], float), np.asarray(th["residual"], float)
    lam0, d_out = float(th["lambda0"][0]), int(th["d_out"][0])
    ok = bool(np.all(res <= th["residual_bound_dout"] * (1 + 1e-6)))
    over = res > th["residual_bound"] * (1 + 1e-6)
    pos = (t > 0) & (res > 0)
    rate = float(-np.polyfit(t[pos], np.log(res[pos]), 1)[0]) if pos.sum() >= 2 else math.nan
    literal = (
        "the literal d_out = 1 form e^(−λ0 t/2)‖z(0) − y‖ holds at every record too"
        if not over.any()
        else f"the literal d_out = 1 form e^(−λ0 t/2)‖z(0) − y‖ is exceeded from t = {fmt(float(t[over][0]), 3)} on "
        f"({int(over.sum())} of {len(t)} records), as expected for d_out = {d_out}"
    )
    numbers = {"fitted_rate": rate, "bound_rate": lam0 / (2 * d_out), "stated_rate": lam0 / 2,
               "final_over_initial": float(res[-1] / res[0]) if res[0] > 0 else math.nan,
               "records_over_literal_bound": float(over.sum())}  # fmt: skip
    detail = (
        f"bound respected at every record; {literal}. Fitted average decay rate {fmt(rate, 3)} per unit t vs the "
        f"bound's λ0/(2 d_out) = {fmt(numbers['bound_rate'], 3)} and the stated λ0/2 = {fmt(lam0 / 2, 3)}; the residual "
        f"falls to {fmt(numbers['final_over_initial'], 3)} of its start. A small λ0 (non-negative, strongly correlated "
        "inputs such as digit images) makes the bound nearly flat: it can hold and still say little"
    )
    return Claim(claim, basis, Verdict.of(ok), detail, numbers)


def gram_stays_well_conditioned(th: TheoryTable | None) -> Claim:
    """λ_min(H(t)) ≥ λ0/2 over the whole run (the condition both theorems rely on)."""
    claim, basis = "Gram matrix stays well conditioned", "λ_min(H(t)) ≥ λ0/2, docs/science.md §2"
    if not _has(th, "lambda_min_H", "lambda0"):
        return _not_measurable(claim, basis, "needs λ_min(H(t)) and λ0 from a supervised theory run.")
    assert th is not None
    lam0, low = float(th["lambda0"][0]), float(np.nanmin(th["lambda_min_H"]))
    flips = float(th["flip_fraction"][-1]) if "flip_fraction" in th else math.nan
    detail = (
        f"min over the supervised run {fmt(low)} vs λ0/2 = {fmt(lam0 / 2)}; activation patterns flipped by the end: "
        f"{fmt(flips, 3)} of all (sample, neuron) pairs"
    )
    return Claim(claim, basis, Verdict.of(low >= lam0 / 2), detail,
                 {"min_lambda_min_H": low, "half_lambda0": lam0 / 2, "flip_fraction": flips})  # fmt: skip


def theorem1_drift_bound(th: TheoryTable | None) -> Claim:
    """Largest measured per-neuron drift of U ≤ Theorem 1's 2√n‖z(0) − y‖/(√m λ0)."""
    claim, basis = "Theorem 1 per-neuron drift bound", "max_j ‖u_j(t) − u_j(0)‖ ≤ 2√n‖z(0) − y‖/(√m λ0), docs/science.md §2"
    if not _has(th, "drift_bound_thm1", "u_drift_max"):
        return _not_measurable(claim, basis, "needs the drift bound and the per-neuron drift of a supervised theory run.")
    assert th is not None
    bound = float(th["drift_bound_thm1"][0])
    bound_dout = float(th["drift_bound_thm1_dout"][0]) if "drift_bound_thm1_dout" in th else math.nan
    dmax = float(np.nanmax(th["u_drift_max"]))
    d_in = int(th["d_in"][0]) if "d_in" in th else 0
    slack = bound / max(dmax, 1e-30)
    detail = (
        f"bound {fmt(bound)} (×d_out: {fmt(bound_dout)}), largest measured per-neuron drift {fmt(dmax)}: the bound is "
        f"{fmt(slack, 3)}× the measurement"
        + (f" and larger than ‖u_j(0)‖ ≈ √d_in = {fmt(math.sqrt(d_in), 3)}, so it holds vacuously" if d_in and bound > math.sqrt(d_in) else "")
    )
    return Claim(claim, basis, Verdict.of(dmax <= bound), detail,
                 {"bound": bound, "bound_dout": bound_dout, "max_drift": dmax, "slack": slack})  # fmt: skip


def supervised_drift_is_bounded(t: np.ndarray | None, drift: np.ndarray | None) -> Claim:
    """‖U(t) − U(0)‖_F saturates under supervision: the last quarter's increment is under half the first one's and
    no larger than the third one's."""
    claim, basis = "Supervised drift is bounded in t", "Theorem 1: it saturates, docs/science.md §2"
    g = growth(t, drift) if t is not None and drift is not None else {}
    if not g:
        return _not_measurable(claim, basis, "needs at least 4 records of ‖U(t) − U(0)‖_F from a supervised theory run.")
    saturating = g["q4"] < 0.5 * g["q1"] and g["q4"] <= g["q3"]
    detail = (
        f"increments of ‖U(t) − U(0)‖_F over the four quarters of t: {_quarters(g)} (last/first {fmt(g['q4_over_q1'], 3)}, "
        f"last/third {fmt(g['q4_over_q3'], 3)}); read as saturating if the last increment is < 0.5× the first and no "
        "larger than the third. A drift still creeping up at the end means the residual has not converged (its small "
        "eigen-directions decay at a rate of order λ0)"
    )
    return Claim(claim, basis, Verdict.of(saturating), detail, dict(g))


# ---------------------------------------------------------------------------------------------- regularized claims
def regularized_drift_grows_linearly(
    t: np.ndarray | None, drift: np.ndarray | None, sup_t: np.ndarray | None = None, sup_drift: np.ndarray | None = None
) -> Claim:
    """‖U(t) − U(0)‖_F grows linearly with the critic: the last quarter's increment is ≥ 0.8× the second and third
    ones' and a line fits the second half with R² > 0.95."""
    claim, basis = "Regularized drift grows linearly in t", "Theorem 2: transient + linear in t, docs/science.md §2"
    g = growth(t, drift) if t is not None and drift is not None else {}
    if not g:
        return _not_measurable(claim, basis, "needs at least 4 records of ‖U(t) − U(0)‖_F from a regularized theory run.")
    linear = g["q4"] >= 0.8 * g["q3"] and g["q4"] >= 0.8 * g["q2"] and g["r2_second_half"] > 0.95
    gs = growth(sup_t, sup_drift) if sup_t is not None and sup_drift is not None else {}
    numbers = dict(g)
    late = ""
    if gs.get("slope_second_half"):
        numbers["slope_over_supervised"] = g["slope_second_half"] / gs["slope_second_half"]
        late = f"; late slope regularized / supervised = {fmt(numbers['slope_over_supervised'], 3)}"
    detail = (
        f"increments of ‖U(t) − U(0)‖_F over the four quarters: {_quarters(g)} (last/third {fmt(g['q4_over_q3'], 3)}); "
        f"line fit on the second half: slope {fmt(g['slope_second_half'], 3)} per unit t, R² {fmt(g['r2_second_half'], 3)}"
        f"{late}; read as linear if the last increment is ≥ 0.8× the second and third and R² > 0.95"
    )
    return Claim(claim, basis, Verdict.of(linear), detail, numbers)


def path_length_grows_linearly(
    t: np.ndarray | None, path: np.ndarray | None, net_drift: np.ndarray | None, sup_path: float | None = None
) -> Claim:
    """The path length Σ‖U_(k+1) − U_k‖_F (what the drift bounds actually bound) grows linearly with the critic."""
    claim, basis = "What grows linearly is the path, not the net displacement", "the drift bounds integrate ‖dU/dt‖, docs/science.md §2"
    g = growth(t, path) if t is not None and path is not None else {}
    if not g or net_drift is None:
        return _not_measurable(claim, basis, "needs the path length of U (theory.csv u_path_length) over at least 4 records.")
    assert path is not None
    linear = g["q4"] >= 0.8 * g["q2"] and g["r2_second_half"] > 0.95
    final_path, final_net = float(path[-1]), float(net_drift[-1])
    numbers = {**g, "path": final_path, "path_over_net": final_path / final_net if final_net > 0 else math.nan}
    sup = f" (supervised: {fmt(sup_path)})" if sup_path is not None and math.isfinite(sup_path) else ""
    detail = (
        f"path length reaches {fmt(final_path)}{sup}; quarter increments {_quarters(g)}, second-half R² "
        f"{fmt(g['r2_second_half'], 3)}; path / net drift = {fmt(numbers['path_over_net'], 3)} (above 1 by how much the "
        "weights moved back and forth); read as linear if the last increment is ≥ 0.8× the "
        "second and R² > 0.95"
    )
    return Claim(claim, basis, Verdict.of(linear), detail, numbers)


def reaction_decays_diffusion_persists(
    reaction: Series | None, diffusion: Series | None, cosine: Series | None = None
) -> Claim:
    """Mean ‖R‖ falls from the first to the last quarter of the run while mean ‖D‖ stays ≥ half its second-quarter
    level (R = −∇ supervised term, D = −∇ adversarial term, total over the generator)."""
    claim, basis = "Reaction decays, diffusion does not", "proof of Theorem 2, docs/science.md §2"
    rq, dq = quarter_means(reaction), quarter_means(diffusion)
    if rq is None or dq is None:
        return _not_measurable(
            claim, basis, "needs at least 8 records of the per-term gradient norms (GradientNormMonitor loss_terms) of a regularized run."
        )
    (r1, _, r4), (d1, d2, d4) = rq, dq
    cq = quarter_means(cosine)
    ok = r4 < r1 and d4 >= 0.5 * d2
    numbers = {"reaction_first": r1, "reaction_last": r4, "diffusion_first": d1, "diffusion_second": d2,
               "diffusion_last": d4, "late_ratio": d4 / r4 if r4 > 0 else math.nan,
               "late_cosine": cq[2] if cq else math.nan}  # fmt: skip
    detail = (
        f"mean ‖R‖ first → last quarter {fmt(r1, 3)} → {fmt(r4, 3)}; mean ‖D‖ {fmt(d1, 3)} → {fmt(d2, 3)} (second "
        f"quarter) → {fmt(d4, 3)}; late ‖D‖/‖R‖ = {fmt(numbers['late_ratio'], 3)}"
        + (f", late mean cos(R, D) {fmt(cq[2], 2)}" if cq else "")
        + "; read as holding if ‖R‖ falls and ‖D‖ stays ≥ half its second-quarter level"
    )
    return Claim(claim, basis, Verdict.of(ok), detail, numbers)


def regularized_residual_stays_above(reg: TheoryTable | None, sup: TheoryTable | None) -> Claim:
    """The regularized residual decays to a floor instead of 0: at the same step count it ends above the supervised
    one. Also reports the theory's floor κμ and whether it is vacuous (above ‖z(0) − y‖)."""
    claim, basis = "Regularized residual decays to a floor instead of 0", "Lemma 2 and its Bernoulli equation, docs/science.md §2"
    if not (_has(reg, "residual") and _has(sup, "residual")):
        return _not_measurable(claim, basis, "needs a supervised and a regularized theory run.")
    assert reg is not None and sup is not None
    res, sres = float(reg["residual"][-1]), float(sup["residual"][-1])
    floor = float(reg["residual_floor_adv"][-1]) if "residual_floor_adv" in reg else math.nan
    r0 = float(reg["residual"][0])
    lip = float(np.nanmax(reg["critic_W_frob"])) if _has(reg, "critic_W_frob") else math.nan
    floor_note = (
        "n/a" if not math.isfinite(floor)
        else f"{fmt(floor, 3)}, {'above ‖z(0) − y‖, so the floor statement is vacuous here' if floor > r0 else 'below ‖z(0) − y‖'}"
    )  # fmt: skip
    detail = (
        f"final residual {fmt(res)} vs supervised {fmt(sres)} at the same step count; the theory's floor κμ with "
        f"L = max ‖W‖_F = {fmt(lip)} and δ = 0.1 is {floor_note}; read as holding if the regularized residual ends above "
        "the supervised one"
    )
    return Claim(claim, basis, Verdict.of(res > sres), detail,
                 {"residual": res, "supervised_residual": sres, "floor": floor, "initial_residual": r0})  # fmt: skip


def critic_moves_weights_further(reg: TheoryTable | None, sup: TheoryTable | None) -> Claim:
    """The final largest per-neuron drift of U is larger with the critic than without."""
    claim, basis = "The critic moves the weights further than supervision alone", "Theorems 1 and 2, docs/science.md §2"
    if not (_has(reg, "u_drift_max") and _has(sup, "u_drift_max")):
        return _not_measurable(claim, basis, "needs a supervised and a regularized theory run.")
    assert reg is not None and sup is not None
    d_s, d_r = float(sup["u_drift_max"][-1]), float(reg["u_drift_max"][-1])
    r = d_r / d_s if d_s > 0 else math.nan
    detail = f"final max_j drift regularized / supervised = {fmt(r, 3)} ({fmt(d_r)} / {fmt(d_s)})"
    return Claim(claim, basis, Verdict.of(d_r > d_s), detail, {"regularized": d_r, "supervised": d_s, "ratio": r})


def per_neuron_drift_shrinks_with_width(widths: Sequence[float], drifts: Sequence[float]) -> Claim:
    """Final max per-neuron drift against width m (supervised runs): the log-log slope is −1/2 ± 1/4."""
    claim, basis = "Per-neuron drift shrinks like 1/√m", "Theorem 1, docs/science.md §2"
    m, d = np.asarray(widths, float), np.asarray(drifts, float)
    ok = np.isfinite(m) & np.isfinite(d) & (m > 0) & (d > 0)
    m, d = m[ok], d[ok]
    if len(np.unique(m)) < 2:
        at = f" (m = {', '.join(fmt(w) for w in np.unique(m))})" if len(m) else ""
        return _not_measurable(
            claim, basis, f"needs supervised runs at two or more widths{at}; rerun the theory configs with several "
            "`--model.init_args.generator.init_args.width` values",
        )  # fmt: skip
    slope = float(np.polyfit(np.log(m), np.log(d), 1)[0])
    detail = (
        f"log-log slope of the final max_j drift against m over widths {', '.join(fmt(w) for w in np.unique(m))}: "
        f"{fmt(slope, 3)} (1/√m is −0.5); read as holding within ±0.25"
    )
    return Claim(claim, basis, Verdict.of(abs(slope + 0.5) <= 0.25), detail, {"slope": slope, "widths": float(len(np.unique(m)))})


# ---------------------------------------------------------------------------------------------- study claim
def adversarial_acceleration(rows: Sequence[Mapping[str, Any]], totals: Mapping[str, Any]) -> Claim:
    """The talk's acceleration (3.8× to 25.6× fewer epochs): every architecture's median speed-up is ≥ 2×."""
    claim = "Adversarial acceleration of the size the talk reports (3.8× to 25.6× fewer epochs)"
    basis = "epochs-to-threshold table, docs/science.md §3"
    if not rows:
        return _not_measurable(claim, basis, "no architecture has runs of both objectives.")
    big = [r for r in rows if r.get("speedup") is not None and r["speedup"] >= 2]
    p = totals.get("sign_test_p")
    detail = f"{len(big)} of {len(rows)} architectures show a median speed-up ≥ 2× at this scale" + (
        f"; the paired difference is {'not ' if p >= 0.05 else ''}significant at 5 % (sign test p = {p:.3g})"
        if p is not None
        else ""
    )
    numbers = {"architectures": float(len(rows)), "speedup_at_least_2": float(len(big)),
               "sign_test_p": float(p) if p is not None else math.nan}  # fmt: skip
    return Claim(claim, basis, Verdict.of(len(big) == len(rows)), detail, numbers)


# ---------------------------------------------------------------------------------------------- section
def theory_claims(theory: Sequence[Run]) -> list[Claim]:
    """Every two-layer claim, checked on the first supervised and the first regularized theory run."""
    sup_runs = [r for r in theory if r.objective == "supervised"]
    sup = sup_runs[0].theory if sup_runs else None
    reg_run = next((r for r in theory if r.objective in REGULARIZED), None)
    reg = reg_run.theory if reg_run is not None else None

    def col(th: TheoryTable | None, name: str) -> np.ndarray | None:
        return np.asarray(th[name], float) if th is not None and name in th else None

    sup_path = col(sup, "u_path_length")
    return [
        supervised_residual_decays(sup),
        gram_stays_well_conditioned(sup),
        theorem1_drift_bound(sup),
        supervised_drift_is_bounded(col(sup, "t"), col(sup, "u_drift_frob")),
        regularized_drift_grows_linearly(col(reg, "t"), col(reg, "u_drift_frob"), col(sup, "t"), col(sup, "u_drift_frob")),
        path_length_grows_linearly(
            col(reg, "t"), col(reg, "u_path_length"), col(reg, "u_drift_frob"),
            float(sup_path[-1]) if sup_path is not None and len(sup_path) else None,
        ),  # fmt: skip
        reaction_decays_diffusion_persists(
            reg_run.scalar(loss_term_tag(SUPERVISED_TERM, TOTAL)) if reg_run else None,
            reg_run.scalar(loss_term_tag(ADVERSARIAL_TERM, TOTAL)) if reg_run else None,
            reg_run.scalar(loss_term_tag(TERM_COSINE, TOTAL)) if reg_run else None,
        ),
        regularized_residual_stays_above(reg, sup),
        critic_moves_weights_further(reg, sup),
        per_neuron_drift_shrinks_with_width(
            [float(r.theory["m"][0]) for r in sup_runs if r.theory is not None and "m" in r.theory],
            [float(r.theory["u_drift_max"][-1]) for r in sup_runs if r.theory is not None and "m" in r.theory],
        ),
    ]


def claims_section(theory: Sequence[Run]) -> list[str]:
    """``## Theory checks``: the setting of the theory runs, then one bullet per claim."""
    if not theory:
        return []
    lines = ["## Theory checks (two-layer runs)", "", *theory_setting(theory)]
    return [*lines, *(c.markdown() for c in theory_claims(theory)), ""]
