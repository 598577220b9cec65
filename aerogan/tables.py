"""Result tables: ``<stem>.json`` (everything), ``<stem>.csv`` (one row per table row), ``<stem>.md``.

Each file is written atomically (a reader sees the previous complete file or the new one). The experiment
runners (study, trust, compare) and the archive table of ``aerogan product --out-dir`` write through it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aerogan.atomic import atomic_output

__all__ = ["write_outputs"]


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
