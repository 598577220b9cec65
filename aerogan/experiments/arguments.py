"""The command-line options every experiment runner shares (``aerogan study``, ``trust``, ``compare``)."""

from __future__ import annotations

import argparse

__all__ = ["add_runner_arguments"]


def add_runner_arguments(parser: argparse.ArgumentParser, stem: str, default_out: str) -> None:
    """``--out``, ``--seeds K``, ``--seed``, ``--devices N``, ``--merge DIR...``, ``--force``, ``--threads``."""
    parser.add_argument("--out", default=default_out, help=f"output folder (one folder per run, plus {stem}.json/.csv/.md)")
    parser.add_argument("--seeds", type=int, help="number of seeds K (seeds --seed .. --seed + K - 1; default: the preset's)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--devices", type=int, default=1, help="runs side by side in N worker processes (GPUs: one device each)")
    parser.add_argument("--merge", nargs="+", metavar="DIR", help=f"one table from the {stem}.json of separate jobs into --out (runs nothing)")
    parser.add_argument("--force", action="store_true", help="rerun runs that already have a finished record")
    parser.add_argument("--threads", type=int, help="torch intra-op threads per run (default: the preset's num_threads)")
