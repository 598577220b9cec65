"""Per-band statistics of scenes, computed in one streaming pass and cached on disk.

Statistics (per band: valid-pixel count, sum, sum of squares, min, max over valid pixels) are cached
as JSON beside the data (``<file>.aerogan-stats.json``), keyed by the file's size and modification
time, or in a cache folder when the data folder is read-only. The scenes are read through
:mod:`aerogan.prediction.sources` (the readers shared with prediction).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aerogan.atomic import atomic_output
from aerogan.prediction.sources import SceneSource

STATS_SUFFIX = ".aerogan-stats.json"
STATS_VERSION = 1


def default_cache_dir() -> Path:
    """Fallback folder for statistics when the data folder is read-only (``$XDG_CACHE_HOME/aerogan/stats``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "aerogan" / "stats"


def compute_band_sums(source: SceneSource) -> dict[str, Any]:
    """One streaming pass over ``source``: per band count/sum/sumsq/min/max over valid pixels."""
    n = source.count
    count = 0
    total = np.zeros(n, dtype=np.float64)
    total_sq = np.zeros(n, dtype=np.float64)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    nonfinite_px = 0
    for r, data in source.strips():
        inv, nonfinite = source.invalid(data, r, 0)
        nonfinite_px += int(nonfinite.sum())
        valid = ~inv
        k = int(valid.sum())
        if k == 0:
            continue
        x = data[:, valid].astype(np.float64)
        count += k
        total += x.sum(1)
        total_sq += (x * x).sum(1)
        lo = np.minimum(lo, x.min(1))
        hi = np.maximum(hi, x.max(1))
    return {
        "valid_pixels": count,
        "nonfinite_pixels": nonfinite_px,
        "total_pixels": source.height * source.width,
        "sum": total.tolist(),
        "sumsq": total_sq.tolist(),
        "min": [float(v) if np.isfinite(v) else None for v in lo],
        "max": [float(v) if np.isfinite(v) else None for v in hi],
    }


def _cache_paths(path: Path, cache_dir: str | os.PathLike | None) -> list[Path]:
    beside = path.with_name(path.name + STATS_SUFFIX)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    return [beside, folder / f"{path.name}.{digest}{STATS_SUFFIX}"]


def _file_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"file_size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _writable(folder: Path) -> bool:
    """A folder we may write to: permitted, and not marked read-only (no write bit; root ignores those)."""
    try:
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def _write_json(target: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``target`` atomically; a read-only folder raises ``PermissionError``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _writable(target.parent):
        raise PermissionError(f"{target.parent}: read-only folder")
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=1))


def band_sums(source: SceneSource, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Statistics of ``source`` (see :func:`compute_band_sums`), from the cache when it is current.

    The cache is ``<file>.aerogan-stats.json`` beside the data, or, when that folder is not
    writable, ``<cache_dir>/<file>.<hash>.aerogan-stats.json``. An entry is valid while the file's size
    and modification time are unchanged; sources without a file (in-memory arrays) are not cached.
    """
    if source.path is None:
        return compute_band_sums(source)
    key = source.stats_key()
    file_key = _file_key(source.path)
    candidates = _cache_paths(source.path, cache_dir)
    for cand in candidates:
        try:
            payload = json.loads(cand.read_text())
        except (OSError, ValueError):
            continue
        if payload.get("version") == STATS_VERSION and {k: payload.get(k) for k in file_key} == file_key:
            entry = payload.get("entries", {}).get(key)
            if entry is not None and len(entry.get("sum", [])) == source.count:
                return entry
    entry = compute_band_sums(source)
    for cand in candidates:
        try:
            try:
                payload = json.loads(cand.read_text())
                if payload.get("version") != STATS_VERSION or {k: payload.get(k) for k in file_key} != file_key:
                    payload = {}
            except (OSError, ValueError):
                payload = {}
            entries = dict(payload.get("entries", {}))
            entries[key] = entry
            _write_json(cand, {"version": STATS_VERSION, **file_key, "file": str(source.path.resolve()), "entries": entries})
            break
        except OSError:
            continue  # read-only folder: try the next location
    return entry


def combine_sums(entries: Sequence[dict[str, Any]], bands: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, max) per band in ``bands`` pooled over several sources' statistics."""
    count = sum(e["valid_pixels"] for e in entries)
    if count == 0:
        raise ValueError("no valid pixel to compute band statistics from")
    total = np.sum([np.asarray(e["sum"])[list(bands)] for e in entries], 0)
    total_sq = np.sum([np.asarray(e["sumsq"])[list(bands)] for e in entries], 0)
    mean = total / count
    var = np.maximum(total_sq / count - mean * mean, 0.0)
    hi = np.max([[v if v is not None else -np.inf for v in np.asarray(e["max"], dtype=object)[list(bands)]] for e in entries], 0)
    return mean, np.sqrt(var), hi
