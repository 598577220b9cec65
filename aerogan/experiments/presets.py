"""Presets of the experiment runners: one schema, ``configs/<runner>/preset_<name>.yaml``.

Every preset may set ``seeds`` (how many seeds, K >= 1: seeds ``first .. first + K - 1``), ``num_threads``
(torch intra-op threads per run) and ``overrides`` (LightningCLI arguments given to every run); each runner
names its own further keys (the study's architectures, the trust study's tasks, the comparison's epochs), and a
key no one reads is an error naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["COMMON_KEYS", "CONFIG_ROOT", "load_preset", "preset_path", "seed_list"]

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs"
#: Keys every runner's presets accept.
COMMON_KEYS = ("seeds", "num_threads", "overrides")


def preset_path(name: str, config_dir: Path) -> Path:
    """The preset file ``name`` (a path) or ``config_dir/preset_<name>.yaml``; a ``ValueError`` listing the
    known presets otherwise."""
    path = Path(name)
    if not path.is_file():
        path = config_dir / f"preset_{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("preset_") for p in config_dir.glob("preset_*.yaml"))
        raise ValueError(f"unknown preset {name!r}: no {path} (known presets: {', '.join(known) or 'none'})")
    return path


def load_preset(runner: str, name: str, keys: Iterable[str] = ()) -> dict[str, Any]:
    """``configs/<runner>/preset_<name>.yaml`` (or a preset file), checked; ``_path`` and ``name`` added."""
    path = preset_path(name, CONFIG_ROOT / runner)
    preset = yaml.safe_load(path.read_text()) or {}
    if not isinstance(preset, dict):
        raise ValueError(f"preset {path}: expected a mapping of settings, got {type(preset).__name__}")
    allowed = {*COMMON_KEYS, *keys}
    unknown = sorted(set(preset) - allowed)
    if unknown:
        raise ValueError(f"preset {path}: unknown key(s) {unknown}; a {runner} preset takes {sorted(allowed)}")
    seeds = preset.setdefault("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"preset {path}: seeds must be the number of seeds (an integer >= 1), got {seeds!r}")
    threads = preset.get("num_threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"preset {path}: num_threads must be an integer >= 1, got {threads!r}")
    overrides = preset.setdefault("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(a, str) for a in overrides):
        raise ValueError(f"preset {path}: overrides must be a list of command-line arguments, got {overrides!r}")
    return preset | {"_path": str(path), "name": path.stem.removeprefix("preset_")}


def seed_list(preset: dict[str, Any], seeds: int | None = None, first: int = 0) -> list[int]:
    """``first .. first + K - 1``, K from ``--seeds`` when given, else the preset's ``seeds``."""
    k = int(preset.get("seeds", 1) if seeds is None else seeds)
    if k < 1:
        raise ValueError(f"--seeds must be >= 1, got {k}")
    return list(range(first, first + k))
