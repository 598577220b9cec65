"""Fit and test one :class:`RunSpec` through the ``aerogan`` LightningCLI parser, in this process.

The run's arguments are parsed by the same parser as ``aerogan fit`` (configs merged by jsonargparse, links and
the always-on monitors included), then :meth:`Trainer.fit` and :meth:`Trainer.test` run on the objects it
instantiated. :func:`resolve_key` hashes the *resolved* configuration (every default and config file applied),
so an identical finished run is found again and any changed setting, in a file or an override, reruns.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LightningArgumentParser

from aerogan.atomic import atomic_output
from aerogan.cli import AeroganCLI, make_cli
from aerogan.experiments.spec import RECORD_NAME, RunSpec
from callbacks.epochs_to_threshold import EpochsToThreshold

__all__ = ["build", "config_key", "execute", "find_finished", "finished_records", "resolve_config", "resolve_key"]


class _RunnerCLI(AeroganCLI):
    """The ``aerogan`` CLI driven from Python: its arguments are the run's, never this process's ``sys.argv``."""

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self.config = parser.parse_args(list(args))


class _ResolveCLI(_RunnerCLI):
    """Parse only: the resolved configuration, nothing instantiated."""

    def instantiate_classes(self) -> None:
        pass


def _canonical(value: Any) -> Any:
    """The resolved config as plain JSON data, without the config-file bookkeeping keys."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items() if k != "config" and not str(k).startswith("__")}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def resolve_config(args: Sequence[str]) -> dict[str, Any]:
    """The configuration ``aerogan fit`` would run with these arguments (no subcommand), as plain data."""
    return _canonical(make_cli(list(args), run=False, cli_class=_ResolveCLI).config.as_dict())


def build(args: Sequence[str]) -> AeroganCLI:
    """The model, datamodule and trainer of these arguments (``cli.model``, ``cli.datamodule``, ``cli.trainer``)."""
    return make_cli(list(args), run=False, cli_class=_RunnerCLI)


def config_key(config: Mapping[str, Any]) -> str:
    """A short hash of a resolved configuration (or a part of one)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:20]


def resolve_key(spec: RunSpec) -> str:
    """A hash of the run's fully resolved configuration (what ``aerogan fit`` would train)."""
    return config_key(resolve_config(spec.cli_args()))


def _finished(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The finished records among ``paths``, in their order (unreadable or partial files skipped)."""
    records = []
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("finished"):
            records.append(record)
    return records


def find_finished(spec: RunSpec, key: str) -> dict[str, Any] | None:
    """The newest finished record of ``spec`` whose resolved configuration hashes to ``key``."""
    paths = sorted(spec.folder.glob(f"version_*/{RECORD_NAME}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((r for r in _finished(paths) if r.get("key") == key), None)


def finished_records(out: Path, group: str = "") -> list[dict[str, Any]]:
    """Every finished record under ``<out>/<group>/`` (one per run folder version), oldest folder first: what
    earlier calls into the same output folder ran, for a runner whose table gathers them."""
    return _finished(sorted(Path(out, group).glob(f"*_s*/version_*/{RECORD_NAME}")))


def _after(name: str) -> Callable[[RunSpec, Any, dict[str, Any]], dict[str, Any]]:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def execute(spec: RunSpec, key: str | None = None) -> dict[str, Any]:
    """Fit ``spec``, test its last checkpoint (``spec.test``), run its ``after`` hook; write and return the record."""
    key = key or resolve_key(spec)
    if spec.num_threads:
        torch.set_num_threads(int(spec.num_threads))
    start = time.perf_counter()
    args = spec.cli_args()
    cli = build(args)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    trainer.fit(model, datamodule=datamodule)
    fit_time = time.perf_counter() - start
    folder = Path(trainer.logger.log_dir).resolve()  # type: ignore[union-attr]
    generator = getattr(model, "generator", model)
    record: dict[str, Any] = {
        "name": spec.name, "group": spec.group, "seed": spec.seed, "key": key, "args": args,
        "run_dir": str(folder), "fit_time_s": fit_time, "test_time_s": None,
        "generator": type(generator).__name__, "generator_params": sum(p.numel() for p in generator.parameters()),
        "epochs_run": trainer.current_epoch, "max_epochs": trainer.max_epochs,
        "steps": trainer.fit_loop.epoch_loop.batch_progress.total.completed, "metrics": {},
    }  # fmt: skip
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, EpochsToThreshold):
            summary = callback.summary(trainer, model)
            record.update({k: v for k, v in summary.items() if k not in ("name", "seed", "generator_params")})
    ckpt = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
    record["ckpt_path"] = ckpt or None
    if spec.test:
        if not ckpt or not Path(ckpt).is_file():
            raise RuntimeError(f"{spec.run_name}: the fit wrote no last.ckpt to test (the config's ModelCheckpoint needs save_last: true)")
        start = time.perf_counter()
        (results,) = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
        record["test_time_s"] = time.perf_counter() - start
        record["metrics"] = {k: float(v) for k, v in results.items()}
    if spec.after:
        record.update(_after(spec.after)(spec, cli, record))
    record.update({**spec.labels, "finished": True})
    if trainer.is_global_zero:
        with atomic_output(folder / RECORD_NAME) as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=str))
    return record
