"""The runners' outputs: ``<stem>.json`` (everything), ``<stem>.csv`` (one row per table row), ``<stem>.md``.

Each file is written atomically (a reader sees the previous complete file or the new one). :func:`read_results`
reads the ``<stem>.json`` of separate jobs for ``--merge``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aerogan.atomic import atomic_output

__all__ = ["merge_runs", "read_results", "write_outputs"]


def write_outputs(out: Path, stem: str, result: dict[str, Any], rows: Sequence[dict[str, Any]], fields: Sequence[str],
                  markdown: str) -> list[Path]:  # fmt: skip
    """Write ``result`` as JSON, ``rows`` (the ``fields`` of each) as CSV and ``markdown``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.csv", out / f"{stem}.md"]
    with atomic_output(paths[0]) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=str))
    with atomic_output(paths[1]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with atomic_output(paths[2]) as tmp:
        tmp.write_text(markdown)
    return paths


def read_results(dirs: Sequence[str | Path], stem: str, tool: str) -> list[tuple[str, dict[str, Any]]]:
    """``(folder, <stem>.json content)`` of each folder, for ``--merge``; a ``ValueError`` naming a folder without one."""
    found = []
    for d in dirs:
        path = Path(d) / f"{stem}.json"
        if not path.is_file():
            raise ValueError(f"--merge: {d} holds no {stem}.json (a folder written by {tool} --out)")
        found.append((str(d), json.loads(path.read_text())))
    return found


def merge_runs(results: Sequence[tuple[str, dict[str, Any]]], identity: Sequence[str] = ("group", "name", "seed")) -> list[dict[str, Any]]:
    """The run records of several jobs, each run once: a run in two folders is a ``ValueError`` naming both."""
    seen: dict[tuple[Any, ...], str] = {}
    runs = []
    for folder, result in results:
        for record in result.get("runs", []):
            ident = tuple(record.get(k) for k in identity)
            if ident in seen:
                raise ValueError(f"--merge: run {'/'.join(map(str, ident))} is in both {seen[ident]} and {folder}; keep it in one folder only")
            seen[ident] = folder
            runs.append(record)
    return runs
