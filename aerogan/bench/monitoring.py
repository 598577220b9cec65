"""2. Monitoring overhead: the aerogan run with the three monitoring callbacks at their default cadence vs none.

The callbacks and cadences are those ``aerogan fit`` attaches to every run (:data:`aerogan.cli.MONITOR_DEFAULTS`:
``GradientNormMonitor`` every 25 batches with the loss-term analysis every 100, ``WeightDriftMonitor`` every
50 batches with its table every 5 epochs, ``TopologySnapshot`` every 20 epochs). Both arms use the default logging (TensorBoard logger,
``log_every_n_steps`` of that file), since the monitors write to it; checkpointing and the progress bar
are off in both.

The two arms are two fits of the same model (same init, same in-memory batches) running in two threads
that take turns epoch by epoch: one trains while the other waits, so both see the same machine
conditions within seconds of each other, yet each is one uninterrupted fit whose monitors fire at their
steady-state rate. An epoch is ``steps_per_epoch`` batches (32: the quickstart's 512 samples / batch 16);
each arm runs ``1 + monitor_epochs`` epochs (20 measured: one cycle of the slowest cadence, topology every 20 epochs),
the first dropped as warm-up. The cost is periodic, so the figure is the **mean** step time over all
measured epochs (epoch start to the end of the last ``on_train_epoch_end`` callback, over the steps); the
one-off costs at train start and end (the t = 0 and final topology snapshots, the final drift table) are
reported separately and in ``ratio_whole_run``.
"""

from __future__ import annotations

import importlib
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from aerogan.bench.common import DataSource, Settings, build_model, make_batches, median, quiet
from aerogan.bench.fit import fit_block

__all__ = ["monitoring_callbacks", "monitoring_specs", "run_monitoring_benchmark"]

def monitoring_specs() -> list[dict[str, Any]]:
    """``class_path`` / ``init_args`` of the three monitors as ``aerogan fit`` attaches them to every run.

    Built from :data:`aerogan.cli.MONITORS` and :data:`aerogan.cli.MONITOR_DEFAULTS`, the one definition of
    the monitors and their default cadences, so the benchmark measures what a user's run pays.
    """
    from aerogan.cli import MONITOR_DEFAULTS, MONITORS

    return [
        {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(MONITOR_DEFAULTS.get(name, {}))}
        for name, cls in MONITORS.items()
    ]


def _scaled(args: dict[str, Any], step_div: int, epoch_div: int) -> dict[str, Any]:
    out = dict(args)
    for key, value in args.items():
        if isinstance(value, int) and not isinstance(value, bool) and key.endswith("every_n_steps") and value > 0:
            out[key] = max(1, round(value / step_div))
        elif isinstance(value, int) and not isinstance(value, bool) and key.endswith("every_n_epochs") and value > 0:
            out[key] = max(1, round(value / epoch_div))
    return out


def monitoring_callbacks(step_div: int = 1, epoch_div: int = 1) -> tuple[list[Callback], list[dict[str, Any]]]:
    """Instances of the three monitors (cadences divided by the given factors) and the specs used."""
    callbacks, used = [], []
    for spec in monitoring_specs():
        module, name = spec["class_path"].rsplit(".", 1)
        args = _scaled(spec["init_args"], step_div, epoch_div)
        callbacks.append(getattr(importlib.import_module(module), name)(**args))
        used.append({"class_path": spec["class_path"], "init_args": args})
    return callbacks, used


def _written(folder: Path) -> dict[str, int]:
    """What a fit left in its run folder (evidence that the monitors fired): file counts, CSV rows, event bytes."""
    out = {"topology_png": 0, "topology_npz": 0, "weight_drift_csv_rows": 0, "tfevents_bytes": 0}
    for f in folder.rglob("*"):
        if f.suffix == ".png":
            out["topology_png"] += 1
        elif f.suffix == ".npz":
            out["topology_npz"] += 1
        elif f.name == "weight_drift.csv":
            out["weight_drift_csv_rows"] += max(0, len(f.read_text().splitlines()) - 1)
        elif "tfevents" in f.name:
            out["tfevents_bytes"] += f.stat().st_size
    return out


class _Baton:
    """Whose turn it is among the arms' threads; an arm that finished never holds it up again."""

    def __init__(self, arms: int) -> None:
        self.cond = threading.Condition()
        self.turn = 0
        self.done = [False] * arms

    def _next(self, me: int) -> int:
        n = len(self.done)
        return next(((me + k) % n for k in range(1, n + 1) if not self.done[(me + k) % n]), me)

    def acquire(self, me: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == me)

    def release(self, me: int) -> None:
        with self.cond:
            self.turn = self._next(me)
            self.cond.notify_all()

    def finish(self, me: int) -> None:
        with self.cond:
            self.done[me] = True
            self.turn = self._next(me)
            self.cond.notify_all()


class _Turns(Callback):
    """First callback of an arm: takes the baton at ``setup`` and hands it over at every later epoch start."""

    def __init__(self, baton: _Baton, me: int) -> None:
        self.baton, self.me, self.started = baton, me, False

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.baton.acquire(self.me)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.started:
            self.baton.release(self.me)
            self.baton.acquire(self.me)
        self.started = True


def run_monitoring_benchmark(settings: Settings, source: DataSource, stats: dict[str, Tensor],
                             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both arms train at once in two threads that take turns epoch by epoch (one runs, the other waits).

    Alternating whole fits of ~10 epochs each was at the mercy of the neighbours' load changing between
    fits; epoch-by-epoch turns (a few seconds each) compare the arms under the same conditions, while each
    arm is still one uninterrupted fit whose cadences run at their steady-state rate. Epoch 0 of each arm
    (warm-up) is dropped; each epoch is timed from its start (after the turn is taken) to the end of the
    last ``on_train_epoch_end`` callback.
    """
    fmt = settings.memory_formats[0]
    batches = make_batches(source, settings.steps_per_epoch, settings, memory_format=fmt)
    epochs = settings.monitor_epochs
    arms = ("monitors", "none")
    models = {}
    for arm in arms:
        models[arm] = build_model(settings.spec, stats, settings.seed)
        if fmt == "channels_last":
            models[arm] = models[arm].to(memory_format=torch.channels_last)
    callbacks = {"monitors": monitoring_callbacks(settings.step_cadence_divisor, settings.epoch_cadence_divisor)[0], "none": []}
    used = monitoring_callbacks(settings.step_cadence_divisor, settings.epoch_cadence_divisor)[1]
    baton = _Baton(len(arms))
    threads = torch.get_num_threads()
    timed: dict[str, tuple[Any, Any]] = {}
    written: dict[str, dict[str, int]] = {}
    errors: list[BaseException] = []

    def arm_thread(me: int, arm: str) -> None:
        try:
            torch.set_num_threads(threads)  # OpenMP thread counts are per thread
            with tempfile.TemporaryDirectory() as tmp:
                timed[arm] = fit_block(models[arm], batches, settings, max_epochs=epochs + 1, lead=[_Turns(baton, me)],
                                       callbacks=callbacks[arm], tensorboard=True, root=tmp, silence=False)
                written[arm] = _written(Path(tmp))
        except BaseException as err:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(err)
        finally:
            baton.finish(me)

    with quiet():
        workers = [threading.Thread(target=arm_thread, args=(i, arm), name=f"bench-{arm}") for i, arm in enumerate(arms)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    if errors:
        raise errors[0]
    per_epoch: dict[str, list[float]] = {}
    one_off: dict[str, float] = {}
    for arm in arms:
        first, last = timed[arm]
        per_epoch[arm] = [e - s for s, e in zip(first.epoch_starts, last.epoch_ends, strict=True)][1:]
        one_off[arm] = (first.epoch_starts[0] - first.train_start) + (last.train_end - last.epoch_ends[-1])
    t0 = min(timed[a][0].train_start for a in arms)
    starts = {a: [round(t - t0, 3) for t in timed[a][0].epoch_starts] for a in arms}
    ends = {a: [round(t - t0, 3) for t in timed[a][1].epoch_ends] for a in arms}
    spe = settings.steps_per_epoch
    steps = epochs * spe
    mean_step = {a: sum(per_epoch[a]) / steps for a in arms}
    whole = {a: (sum(per_epoch[a]) + one_off[a]) / steps for a in arms}
    ratios = [m / n for m, n in zip(per_epoch["monitors"], per_epoch["none"], strict=True)]
    log(f"  monitoring: {epochs} epochs x {spe} steps per arm, epochs taking turns: mean step "
        f"{mean_step['none'] * 1e3:.1f} ms without, {mean_step['monitors'] * 1e3:.1f} ms with the monitors")
    return {
        "ratio": mean_step["monitors"] / mean_step["none"],
        "ratio_whole_run": whole["monitors"] / whole["none"],
        "mean_step_s": mean_step,
        "mean_step_whole_run_s": whole,
        "one_off_s": one_off,
        "per_epoch_ratio": ratios,
        "median_per_epoch_ratio": median(ratios),
        "epoch_times_s": per_epoch,
        "epoch_start_end_s": {a: list(zip(starts[a], ends[a], strict=True)) for a in arms},
        "files_written": written,
        "last_metrics_logged": {type(cb).__name__: len(getattr(cb, "last_metrics", {}) or {}) for cb in callbacks["monitors"]},
        "epochs": epochs,
        "steps_per_epoch": spe,
        "steps_per_arm": steps,
        "callbacks": used,
        "cadence_divisors": {"steps": settings.step_cadence_divisor, "epochs": settings.epoch_cadence_divisor},
        "memory_format": fmt,
        "logging": "TensorBoardLogger in both arms, log_every_n_steps from configs/trainer/default.yaml",
        "method": "two fits in two threads taking turns epoch by epoch; epoch 0 of each dropped",
    }
