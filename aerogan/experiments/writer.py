"""The runners' outputs: written by :func:`aerogan.tables.write_outputs` (``<stem>.json``, ``.csv``, ``.md``,
atomically); :func:`read_results` reads the ``<stem>.json`` of separate jobs for ``--merge``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aerogan.tables import write_outputs

__all__ = ["merge_runs", "read_results", "write_outputs"]


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
