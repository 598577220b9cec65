"""Means with 95 % intervals over seeds, and paired claims with a verdict.

A row of a table is the mean of its runs over seeds with the two-sided 95 % Student-t interval
(``mean ± t(0.975, n - 1) · sd / √n``). A claim compares paired runs (same seed, same data, one setting
changed: regularized − supervised, ALERT − DSen2): the interval of the mean paired difference decides it:

* **holds**: the whole interval lies on the claimed side of zero;
* **does not hold**: the whole interval lies on the other side;
* **not resolved at this budget**: the interval contains zero, or there are fewer than two pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["HOLDS", "NOT_HOLD", "UNRESOLVED", "Interval", "interval", "paired_claim", "t975"]

HOLDS = "holds"
NOT_HOLD = "does not hold"
UNRESOLVED = "not resolved at this budget"

#: Two-sided 95 % quantiles of Student's t, t(0.975, df), df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t975(df: int) -> float:
    """t(0.975, df): tabulated to 30 degrees of freedom, then the series in 1/df toward the normal 1.960."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` values with its 95 % interval (``low``/``high`` None when ``n < 2``)."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    values: tuple[float, ...]

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2

    def format(self, digits: int = 4, scale: float = 1.0) -> str:
        """``39.7 ± 1.2`` (``± ?`` for a single value), ``n/a`` without values; ``scale`` multiplies (100: percent)."""
        if self.mean is None:
            return "n/a"
        mean = f"{self.mean * scale:.{digits}g}"
        if self.half_width is None:
            return mean if self.n <= 1 else f"{mean} ± ?"
        return f"{mean} ± {self.half_width * scale:.2g}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"half_width": self.half_width}


def interval(values: Sequence[float | None]) -> Interval:
    """Mean and 95 % Student-t interval of the finite values among ``values``."""
    xs = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    n = len(xs)
    if n == 0:
        return Interval(None, None, None, 0, ())
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, None, None, n, xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, xs)


def paired_claim(
    statement: str, row: Mapping[int, float | None], reference: Mapping[int, float | None], lower_is_claimed: bool = True
) -> dict[str, Any]:
    """The claim ``statement`` about ``row − reference`` over the seeds both have: its interval and verdict.

    ``lower_is_claimed``: the claim says the difference is negative (``row`` lowers the metric); else positive.
    """
    seeds = sorted(s for s in row if s in reference and row[s] is not None and reference[s] is not None)
    diff = interval([row[s] - reference[s] for s in seeds])  # type: ignore[operator]
    if diff.low is None or diff.high is None:
        verdict = UNRESOLVED
    elif (diff.high < 0) if lower_is_claimed else (diff.low > 0):
        verdict = HOLDS
    elif (diff.low > 0) if lower_is_claimed else (diff.high < 0):
        verdict = NOT_HOLD
    else:
        verdict = UNRESOLVED
    return {"claim": statement, "seeds": seeds, "difference": diff.to_dict(), "verdict": verdict,
            "text": f"{statement}: {verdict} (paired difference {diff.format()}, {len(seeds)} seed{'s' * (len(seeds) != 1)})"}  # fmt: skip
