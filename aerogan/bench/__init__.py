"""Benchmarks of aerogan (GitHub issue 7): ``python -m aerogan.bench --out results.json`` or ``aerogan bench``.

1. training-step overhead of the aerogan LightningModule + Trainer against a plain PyTorch loop doing the
   same computation (:mod:`aerogan.bench.step`);
2. overhead of the monitoring callbacks at their default cadence (:mod:`aerogan.bench.monitoring`);
3. tiled scene prediction throughput against the raw generator forward, and peak memory against scene
   size (:mod:`aerogan.bench.predict`);
4. scaling of step and validation time with batch size, patch size and validation samples
   (:mod:`aerogan.bench.scaling`).

On a GPU: ``python -m aerogan.bench --device cuda --out gpu.json`` (or ``python -m aerogan.bench.gpu``):
bf16 autocast and channels_last measured with and without. Every comparison is a ratio measured side by
side in one process (alternating blocks), so it holds on a busy machine where absolute times do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["main", "run"]


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the suite with command-line arguments ``argv``; returns the results (also printed and written)."""
    from aerogan.bench.suite import run as _run

    return _run(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m aerogan.bench`` and ``aerogan bench`` (``argv`` without the command)."""
    run(argv)
