"""Shared fixtures: tiny seeded data, the repo and shared-data paths, a CLI runner."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def shared_data() -> Path:
    """The real Landsat 7 / Sentinel-2 samples beside the project; skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real samples not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Run ``aerogan <args>`` in-process with ``tmp_path`` as the working directory (runs/ lands there)."""
    from aerogan.cli import cli_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["aerogan"])

    def run(*args: str) -> object:
        return cli_main([str(a) for a in args])

    return run


@pytest.fixture(autouse=True)
def _quiet_threads() -> None:
    # Two cores are shared by everything on this machine; keep each test to one intra-op thread.
    import torch

    torch.set_num_threads(int(os.environ.get("AEROGAN_TEST_THREADS", "1")))
