"""Run many :class:`RunSpec`: reuse finished ones, fit the rest here or in a pool of worker processes.

``devices=1`` fits in this process, one run after another. ``devices=N`` keeps N worker processes busy
(``concurrent.futures`` threads, each driving one ``python -m aerogan.experiments.worker`` process): on a machine
with GPUs each worker sees one device (``CUDA_VISIBLE_DEVICES``), on CPUs the cores are shared out. Each worker
writes its log to ``<out>/logs/<group>_<run>.log``.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from aerogan.experiments.execute import execute, find_finished, resolve_key
from aerogan.experiments.spec import RunSpec

__all__ = ["run_specs"]


def _log_path(spec: RunSpec) -> Path:
    return Path(spec.out, "logs", f"{spec.title.replace(' ', '_')}.log")


def _in_worker(spec: RunSpec, key: str, slots: queue.Queue[int], gpus: bool) -> dict[str, Any]:
    slot = slots.get()
    try:
        env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": str(slot)} if gpus else {})}
        log = _log_path(spec)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            code = subprocess.run([sys.executable, "-m", "aerogan.experiments.worker", spec.to_json(), key],
                                  env=env, stdout=f, stderr=subprocess.STDOUT, cwd=os.getcwd()).returncode  # fmt: skip
    finally:
        slots.put(slot)
    record = find_finished(spec, key)
    if code or record is None:
        raise RuntimeError(f"{spec.run_name}: worker {'exited with ' + str(code) if code else 'left no record'}; see {log}")
    return record


def run_specs(
    specs: Sequence[RunSpec],
    devices: int = 1,
    force: bool = False,
    label: str = "[experiments]",
    on_record: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """The record of every spec, in order: a finished identical run is reused (unless ``force``), the rest fitted.

    ``on_record`` gets the records finished so far after each run, and all of them once when nothing was left to
    fit: its last call always sees every record, so runners write their tables there only (an interrupted experiment
    still leaves its partial table).
    """
    if devices < 1:
        raise ValueError(f"--devices must be >= 1, got {devices}")
    gpus = torch.cuda.is_available()
    if gpus and devices > torch.cuda.device_count():
        raise ValueError(f"--devices {devices}: this machine has {torch.cuda.device_count()} GPU(s)")
    records: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, RunSpec, str]] = []
    for i, spec in enumerate(specs):
        key = resolve_key(spec)
        done = None if force else find_finished(spec, key)
        if done is not None:
            print(f"{label} {spec.title}: already done ({done['run_dir']})", flush=True)
            records[i] = done
        else:
            todo.append((i, spec, key))

    def finished(i: int, record: dict[str, Any]) -> None:
        records[i] = record
        spec = specs[i]
        print(f"{label} {spec.title}: done in {record['fit_time_s']:.0f} s", flush=True)
        if on_record is not None:
            on_record([records[k] for k in sorted(records)])

    if devices == 1 or len(todo) <= 1:
        for i, spec, key in todo:
            print(f"{label} {spec.title}: fitting", flush=True)
            finished(i, execute(spec, key))
    else:
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(devices):
            slots.put(slot)
        threads = max(1, (os.cpu_count() or 1) // devices)
        failed = []
        with ThreadPoolExecutor(max_workers=devices) as pool:
            futures = {}
            for i, spec, key in todo:
                spec = spec if spec.num_threads or gpus else replace(spec, num_threads=threads)
                print(f"{label} {spec.title}: queued (log {_log_path(spec)})", flush=True)
                futures[pool.submit(_in_worker, spec, key, slots, gpus)] = i
            for future in as_completed(futures):
                try:
                    finished(futures[future], future.result())
                except RuntimeError as err:
                    print(f"{label} {err}", flush=True)  # now, not only at the end: the other runs go on
                    failed.append(str(err))
        if failed:
            raise RuntimeError("; ".join(failed))
    if on_record is not None and not todo:
        on_record([records[k] for k in sorted(records)])
    return [records[i] for i in range(len(specs))]
