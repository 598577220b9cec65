"""Band summaries: per-band statistics of a scene's or an array's valid pixels (mean, std, percentiles).

:class:`~datamodules.multires.MultiResolutionDataModule` summarises its training block(s) with
:func:`summarize_scene`; models store the result in their checkpoint, and the domain-shift guard
(:mod:`aerogan.prediction.domain_shift`) summarises each scene to predict the same way and compares.

Summaries never load a whole scene: at most ``max_rows`` rows of coarse pixels per box, spread evenly,
are read in strips of full box width, and about :data:`MAX_SAMPLES` values per band at most are kept for
the percentiles (a seeded random 1-in-n choice, so the same scene always gives the same summary), so a
10980 x 10980 tile costs a few hundred MB of reads and a few MB of memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from datamodules.band_catalog import MultiResolutionScene

#: Percentiles stored in a :class:`BandSummary` (field name -> percent).
PERCENTILES = {"p001": 0.1, "p01": 1.0, "p50": 50.0, "p99": 99.0, "p999": 99.9}
#: About the most values kept per band for the percentiles (more are subsampled, 1 in n, seeded).
MAX_SAMPLES = 2**20
#: Most values (pixels x bands) one strip read may hold, to bound memory on wide scenes.
_STRIP_VALUES = 2**22
_STRIP_ROWS = 16


@dataclass
class BandSummary:
    """Statistics of one band's valid pixels: mean, std, percentiles 0.1/1/50/99/99.9, pixels sampled."""

    mean: float
    std: float
    p001: float
    p01: float
    p50: float
    p99: float
    p999: float
    count: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain Python floats and an int: safe for JSON and ``torch.save(weights_only=True)``."""
        d: dict[str, float | int] = {k: float(v) for k, v in asdict(self).items()}
        d["count"] = int(self.count)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BandSummary:
        """The summary stored by :meth:`to_dict` (extra keys are ignored, so newer files still load)."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"band summary {dict(d)!r} lacks {missing}; expected the keys {names}")
        return cls(**{n: (int(d[n]) if n == "count" else float(d[n])) for n in names})


class _Accumulator:
    """Running float64 moments of one band plus a 1-in-``stride`` sample of its values for the percentiles."""

    def __init__(self, stride: int) -> None:
        self.stride = max(1, int(stride))
        self.count = 0
        self.shift: float | None = None  # first value seen: sums of (x - shift) avoid cancellation
        self.s1 = 0.0
        self.s2 = 0.0
        self.samples: list[np.ndarray] = []
        # a seeded random 1-in-stride choice, not a plain stride: that would pick the same columns of
        # every row whenever the width is a multiple of the stride (a column sample of a smooth field)
        self._rng = np.random.default_rng(0)

    def add(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64).ravel()
        if not v.size:
            return
        if self.shift is None:
            self.shift = float(v[0])
        d = v - self.shift
        self.s1 += float(d.sum())
        self.s2 += float(np.dot(d, d))
        self.count += v.size
        if self.stride == 1:
            self.samples.append(v.copy())
        else:
            keep = self._rng.random(v.size) < 1.0 / self.stride
            if not self.samples:
                keep[0] = True  # never end with no sample when few pixels turn out valid
            self.samples.append(v[keep])

    def summary(self) -> BandSummary:
        n = self.count
        mean_d = self.s1 / n
        var = max(self.s2 / n - mean_d * mean_d, 0.0)
        values = np.concatenate(self.samples)
        pct = np.percentile(values, list(PERCENTILES.values()))
        return BandSummary(
            mean=float((self.shift or 0.0) + mean_d),
            std=math.sqrt(var),
            **{k: float(p) for k, p in zip(PERCENTILES, pct, strict=True)},
            count=int(n),
        )


def _sampled_rows(row0: int, row1: int, max_rows: int) -> np.ndarray:
    """Coarse rows to read in ``[row0, row1)``: all when they are few, else ``max_rows`` spread evenly."""
    rows = row1 - row0
    if rows <= max_rows:
        return np.arange(row0, row1)
    return np.unique(np.round(np.linspace(row0, row1 - 1, max_rows)).astype(np.int64))


def _strips(rows: np.ndarray, strip_rows: int) -> Iterator[tuple[int, int]]:
    """(row0, height) runs of consecutive ``rows``, each at most ``strip_rows`` high."""
    i = 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and j - i < strip_rows and rows[j] == rows[j - 1] + 1:
            j += 1
        yield int(rows[i]), j - i
        i = j


def summarize_scene(
    scene: MultiResolutionScene,
    groups: Sequence[int] | None = None,
    boxes: Sequence[tuple[int, int, int, int]] | None = None,
    max_rows: int = 256,
) -> dict[str, BandSummary]:
    """Per band of ``groups`` (default: all), the summary of its valid pixels in ``boxes``.

    ``boxes``: ``(row0, col0, row1, col1)`` in coarse pixels (default: the whole common extent). Each box
    is read in strips of full box width over at most ``max_rows`` coarse rows spread evenly over the box
    (every row of a smaller box), so whole tiles are summarised without being loaded; pixels the scene
    marks invalid (nodata, NaN) are left out. A band name met in two groups is summarised from the first.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    ks = list(range(len(scene.groups))) if groups is None else [int(k) for k in groups]
    for k in ks:
        if not 0 <= k < len(scene.groups):
            raise ValueError(f"group index {k} out of range: the scene has {len(scene.groups)} groups ({scene.describe()})")
    box_list = [(0, 0, scene.height, scene.width)] if boxes is None else [tuple(int(v) for v in b) for b in boxes]
    if not box_list:
        raise ValueError("boxes is empty: give at least one (row0, col0, row1, col1) box, or None for the whole scene")
    for b in box_list:
        if len(b) != 4 or not (0 <= b[0] < b[2] <= scene.height and 0 <= b[1] < b[3] <= scene.width):
            raise ValueError(
                f"box {b} is not a (row0, col0, row1, col1) box inside the scene's {scene.height} x {scene.width} coarse pixels"
            )
    # which bands each group contributes (first group wins for a repeated name)
    take: dict[int, list[int]] = {}
    seen: set[str] = set()
    for k in ks:
        idx = [i for i, n in enumerate(scene.groups[k].names) if n not in seen]
        seen.update(scene.groups[k].names[i] for i in idx)
        if idx:
            take[k] = idx
    plans = [(b, _sampled_rows(b[0], b[2], max_rows)) for b in box_list]
    acc: dict[str, _Accumulator] = {}
    for k, idx in take.items():
        q = scene.factors[k]
        expected = sum(len(rows) * (b[3] - b[1]) * q * q for b, rows in plans)
        for i in idx:
            acc[scene.groups[k].names[i]] = _Accumulator(math.ceil(expected / MAX_SAMPLES))
    for b, rows in plans:
        r0, c0, r1, c1 = b
        width = c1 - c0
        for k, idx in take.items():
            q = scene.factors[k]
            per_row = width * q * q * len(scene.groups[k].names)
            strip_rows = max(1, min(_STRIP_ROWS, _STRIP_VALUES // max(1, per_row)))
            names = scene.groups[k].names
            for row0, height in _strips(rows, strip_rows):
                data, invalid = scene.read(k, row0, c0, height, width)
                valid = ~invalid
                if not valid.any():
                    continue
                for i in idx:
                    acc[names[i]].add(data[i][valid])
    empty = [n for n, a in acc.items() if a.count == 0]
    if empty:
        raise ValueError(
            f"no valid pixel of bands {empty} in boxes {box_list} (rows read: at most {max_rows} per box); every pixel "
            "read is nodata or NaN, so the inputs cannot be summarised there"
        )
    return {n: a.summary() for n, a in acc.items()}


def summarize_arrays(bands: Mapping[str, np.ndarray]) -> dict[str, BandSummary]:
    """Per band, the summary of an in-memory 2-D array (NaN and inf ignored), for tests and array sources."""
    out: dict[str, BandSummary] = {}
    for name, arr in bands.items():
        a = np.asarray(arr)
        if a.ndim != 2:
            raise ValueError(f"band {name}: expected a 2-D array, got shape {a.shape}")
        v = a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a.ravel()
        if not v.size:
            raise ValueError(f"band {name}: no finite value in its {a.shape[0]} x {a.shape[1]} array")
        acc = _Accumulator(math.ceil(v.size / MAX_SAMPLES))
        acc.add(v)
        out[name] = acc.summary()
    return out
