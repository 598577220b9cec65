"""Number formatting for report.md: one place, so every table and claim prints numbers the same way."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["fmt", "ratio"]


def fmt(v: Any, digits: int = 4) -> str:
    """``digits`` significant digits; integers as integers; ``None``, NaN and ±inf as ``n/a``."""
    if v is None or (isinstance(v, (float, np.floating)) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}g}"


def ratio(num: float | None, den: float | None, digits: int = 3) -> str:
    """``num / den`` formatted, ``n/a`` when either is missing or the denominator is 0."""
    return fmt(num / den, digits) if den and num is not None else "n/a"
