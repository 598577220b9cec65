"""Each claim of ``aerogan report`` on tiny synthetic series: it holds where the claimed shape is present, does not
hold where it is absent, and is not measurable without the data it needs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aerogan.report import claims as C
from aerogan.report.claims import Claim, Verdict

T = np.linspace(0.0, 10.0, 41)
LINEAR = 0.3 * T + 0.05 * np.sin(T)  # linear growth, slightly wiggly
SATURATING = 2.0 * (1.0 - np.exp(-0.8 * T))
HOLDS, FAILS, NA = Verdict.HOLDS, Verdict.DOES_NOT_HOLD, Verdict.NOT_MEASURABLE


def _theory(residual: np.ndarray, lam0: float = 0.5, d_out: int = 2, **extra: np.ndarray) -> dict[str, np.ndarray]:
    """A theory.csv-like table on the time grid T."""
    r0 = residual[0]
    n = len(T)
    table = {
        "t": T, "epoch": np.arange(n, dtype=float), "residual": residual,
        "residual_bound_dout": np.exp(-lam0 * T / (2 * d_out)) * r0, "residual_bound": np.exp(-lam0 * T / 2) * r0,
        "lambda0": np.full(n, lam0), "d_out": np.full(n, float(d_out)), "d_in": np.full(n, 64.0), "m": np.full(n, 16.0),
    }  # fmt: skip
    table.update(extra)
    return table


def _check(claim: Claim, verdict: Verdict) -> Claim:
    assert isinstance(claim, Claim) and claim.verdict is verdict, claim
    text = claim.markdown()
    assert text.startswith(f"- **{claim.claim}**") and text.endswith(f"**{verdict.value}**.")
    assert "nan" not in text.lower()
    return claim


def test_supervised_residual_decays() -> None:
    fast = 3.0 * np.exp(-0.6 * T)  # faster than the d_out bound's rate 0.125 and the literal 0.25
    c = _check(C.supervised_residual_decays(_theory(fast)), HOLDS)
    assert c.numbers["fitted_rate"] == pytest.approx(0.6, rel=1e-6)
    assert c.numbers["records_over_literal_bound"] == 0
    between = 3.0 * np.exp(-0.2 * T)  # within the d_out bound, above the literal d_out = 1 form
    c = _check(C.supervised_residual_decays(_theory(between)), HOLDS)
    assert c.numbers["records_over_literal_bound"] > 0 and "exceeded" in c.detail
    _check(C.supervised_residual_decays(_theory(3.0 + 0.1 * T)), FAILS)  # growing residual
    _check(C.supervised_residual_decays(None), NA)


def test_gram_stays_well_conditioned() -> None:
    n = len(T)
    good = _theory(np.ones(n), lambda_min_H=np.full(n, 0.3), flip_fraction=np.linspace(0, 0.1, n))
    c = _check(C.gram_stays_well_conditioned(good), HOLDS)
    assert c.numbers["half_lambda0"] == pytest.approx(0.25)
    bad = _theory(np.ones(n), lambda_min_H=np.linspace(0.3, 0.1, n), flip_fraction=np.zeros(n))
    assert _check(C.gram_stays_well_conditioned(bad), FAILS).numbers["min_lambda_min_H"] == pytest.approx(0.1)
    _check(C.gram_stays_well_conditioned({"t": T}), NA)


def test_theorem1_drift_bound() -> None:
    n = len(T)
    table = _theory(np.ones(n), drift_bound_thm1=np.full(n, 5.0), drift_bound_thm1_dout=np.full(n, 10.0))
    c = _check(C.theorem1_drift_bound({**table, "u_drift_max": SATURATING}), HOLDS)
    assert c.numbers["slack"] == pytest.approx(5.0 / SATURATING.max())
    _check(C.theorem1_drift_bound({**table, "u_drift_max": 3 * LINEAR}), FAILS)  # exceeds 5
    _check(C.theorem1_drift_bound(table), NA)


def test_supervised_drift_is_bounded() -> None:
    c = _check(C.supervised_drift_is_bounded(T, SATURATING), HOLDS)
    assert c.numbers["q4"] < 0.5 * c.numbers["q1"]
    _check(C.supervised_drift_is_bounded(T, LINEAR), FAILS)
    _check(C.supervised_drift_is_bounded(T[:3], SATURATING[:3]), NA)
    _check(C.supervised_drift_is_bounded(None, None), NA)


def test_regularized_drift_grows_linearly() -> None:
    c = _check(C.regularized_drift_grows_linearly(T, LINEAR, T, SATURATING), HOLDS)
    assert c.numbers["slope_second_half"] == pytest.approx(0.3, abs=0.05)
    assert c.numbers["slope_over_supervised"] > 1
    _check(C.regularized_drift_grows_linearly(T, SATURATING), FAILS)
    _check(C.regularized_drift_grows_linearly(T, np.full(len(T), np.nan)), NA)


def test_path_length_grows_linearly() -> None:
    path = 0.5 * T
    c = _check(C.path_length_grows_linearly(T, path, SATURATING, sup_path=1.0), HOLDS)
    assert c.numbers["path_over_net"] == pytest.approx(path[-1] / SATURATING[-1])
    assert "supervised: 1" in c.detail
    _check(C.path_length_grows_linearly(T, SATURATING, SATURATING), FAILS)
    _check(C.path_length_grows_linearly(None, None, None), NA)


def test_reaction_decays_diffusion_persists() -> None:
    steps = np.arange(40)
    reaction = (steps, np.exp(-steps / 10.0))
    flat = (steps, np.full(40, 0.2))
    cosine = (steps, np.full(40, -0.3))
    c = _check(C.reaction_decays_diffusion_persists(reaction, flat, cosine), HOLDS)
    assert c.numbers["late_cosine"] == pytest.approx(-0.3) and c.numbers["late_ratio"] > 1
    vanishing = (steps, np.exp(-steps / 5.0))
    _check(C.reaction_decays_diffusion_persists(reaction, vanishing), FAILS)  # diffusion vanishes too
    _check(C.reaction_decays_diffusion_persists((steps, 1 + steps / 10.0), flat), FAILS)  # reaction grows
    _check(C.reaction_decays_diffusion_persists((steps[:5], steps[:5] * 1.0), flat), NA)  # too few records
    _check(C.reaction_decays_diffusion_persists(None, flat), NA)


def test_regularized_residual_stays_above() -> None:
    n = len(T)
    sup = _theory(3.0 * np.exp(-0.6 * T))
    reg = _theory(2.0 * np.exp(-0.6 * T) + 1.0, residual_floor_adv=np.full(n, 1e4), critic_W_frob=np.full(n, 2.0))
    c = _check(C.regularized_residual_stays_above(reg, sup), HOLDS)
    assert "vacuous" in c.detail and c.numbers["floor"] == 1e4
    _check(C.regularized_residual_stays_above(sup, reg), FAILS)
    _check(C.regularized_residual_stays_above(reg, None), NA)


def test_critic_moves_weights_further() -> None:
    sup, reg = {"u_drift_max": SATURATING}, {"u_drift_max": LINEAR}
    c = _check(C.critic_moves_weights_further(reg, sup), HOLDS)
    assert c.numbers["ratio"] == pytest.approx(LINEAR[-1] / SATURATING[-1])
    _check(C.critic_moves_weights_further(sup, reg), FAILS)
    _check(C.critic_moves_weights_further(reg, None), NA)


def test_per_neuron_drift_shrinks_with_width() -> None:
    widths = [16.0, 64.0, 256.0, 1024.0]
    c = _check(C.per_neuron_drift_shrinks_with_width(widths, [3.0 / math.sqrt(m) for m in widths]), HOLDS)
    assert c.numbers["slope"] == pytest.approx(-0.5)
    _check(C.per_neuron_drift_shrinks_with_width(widths, [0.7] * 4), FAILS)  # does not shrink
    _check(C.per_neuron_drift_shrinks_with_width(widths, [3.0 / m for m in widths]), FAILS)  # 1/m, too fast
    c = _check(C.per_neuron_drift_shrinks_with_width([16.0, 16.0], [0.5, 0.6]), NA)
    assert "m = 16" in c.detail


def test_adversarial_acceleration() -> None:
    rows = [{"speedup": 4.0}, {"speedup": 2.5}]
    c = _check(C.adversarial_acceleration(rows, {"sign_test_p": 0.01}), HOLDS)
    assert "significant at 5 %" in c.detail and "not significant" not in c.detail
    c = _check(C.adversarial_acceleration([{"speedup": 4.0}, {"speedup": 1.1}, {"speedup": None}], {"sign_test_p": 0.5}), FAILS)
    assert c.numbers["speedup_at_least_2"] == 1 and "not significant" in c.detail
    _check(C.adversarial_acceleration([], {}), NA)


def test_growth_of_a_line_is_exact() -> None:
    g = C.growth(T, 2.0 * T + 1.0)
    assert [g[k] for k in ("q1", "q2", "q3", "q4")] == pytest.approx([5.0] * 4)
    assert g["slope_second_half"] == pytest.approx(2.0) and g["r2_second_half"] == pytest.approx(1.0)
    assert C.growth(T[:3], T[:3]) == {} and C.growth(np.zeros(5), np.arange(5.0)) == {}
