"""2. Monitoring overhead: the aerogan run with the three monitoring callbacks at their default cadence vs none.

The callbacks and cadences are those ``aerogan fit`` attaches to every run (:data:`aerogan.cli.MONITOR_DEFAULTS`:
``GradientNormMonitor`` every 25 batches with the loss-term analysis every 100, ``WeightDriftMonitor`` every
50 batches with its table every 5 epochs, ``TopologySnapshot`` every 20 epochs). Both arms use the default logging (TensorBoard logger,
``log_every_n_steps`` of that file), since the monitors write to it; checkpointing and the progress bar
are off in both.

The two arms are two fits of the same model (same init, same in-memory batches) running in two threads
that take turns every ``monitor_block`` (1) step in ABBA order (monitors, none, none, monitors, ...): one
trains while the other waits, so both see the same machine conditions within a step of each other, yet
each is one uninterrupted fit whose monitors fire at their steady-state rate. An epoch is
``steps_per_epoch`` batches (32: the quickstart's 512 samples / batch 16); each arm runs
``1 + monitor_epochs`` epochs (40 measured: two cycles of the slowest cadence, topology every 20 epochs),
the blocks of epoch 0 dropped as warm-up. The headline is the median of the paired ratios of groups of
``monitor_group`` (8) consecutive blocks, each with the monitors' own hook time (timed between marks,
:class:`HookClock`) spread evenly over the cycle, so every periodic cost counts at its average rate while a
neighbour's burst in a few groups is voted down (see :func:`run_monitoring_benchmark`), with its bootstrap
95 % interval. The JSON also breaks the direct cost down per monitor and hook.
The one-off costs at train start and end (the t = 0 and final topology snapshots, the final drift table
and loss-term analysis) are reported separately and in ``ratio_whole_run``.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from aerogan.bench.common import (
    Baton,
    BlockTurns,
    DataSource,
    Settings,
    build_model,
    group_sums,
    make_batches,
    mean,
    median,
    median_interval,
    quiet,
    rotation_schedule,
    run_in_turns,
    spread,
    synchronizer,
)
from aerogan.bench.fit import fit_block

__all__ = ["HookClock", "monitoring_callbacks", "monitoring_specs", "run_monitoring_benchmark"]

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


#: Hooks the clock times (every training-time hook a callback can act in); outside epochs: one-offs.
CLOCKED_HOOKS = ("on_fit_start", "on_train_start", "on_train_epoch_start", "on_train_batch_start", "on_before_backward",
                 "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad", "on_train_batch_end",
                 "on_train_epoch_end", "on_train_end", "on_fit_end")
ONE_OFF_HOOKS = frozenset({"on_fit_start", "on_train_start", "on_train_end", "on_fit_end"})


class HookClock:
    """Time spent in each callback's hooks, measured by marks put between the callbacks.

    ``callbacks(cbs)`` returns ``[mark 0, cb 0, mark 1, cb 1, ..., mark n]``; Lightning calls a hook on the
    callbacks in list order, so the time from mark ``i`` to mark ``i + 1`` within one hook call is callback
    ``i``'s own time in that hook (its direct cost). Totals are kept per (callback, hook) and, for the hooks
    of the training loop (not the one-offs at fit and train start and end), per block (``position()``: the
    block the fit is in). Both arms carry the marks, so their few microseconds per hook cancel.

    ``clock`` is the time source: ``time.thread_time`` (this thread's CPU time) on the CPU, where the
    monitors' work runs in the calling thread, so a neighbour's burst that preempts a rare, long hook (the
    topology snapshot: one call per 20 epochs) does not inflate its cost; ``time.perf_counter`` (wall time)
    on a GPU, whose work the thread may wait for without spending CPU time.
    """

    def __init__(self, names: list[str], position: Callable[[], int],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.names = names
        self.position = position
        self.clock = clock
        self.total: dict[tuple[str, str], float] = {}
        self.calls: dict[tuple[str, str], int] = {}
        self.per_block: dict[int, dict[str, float]] = {}
        self._last: dict[str, float] = {}

    def mark(self, i: int, hook: str) -> None:
        now = self.clock()
        if i > 0:
            name = self.names[i - 1]
            dt = now - self._last[hook]
            key = (name, hook)
            self.total[key] = self.total.get(key, 0.0) + dt
            self.calls[key] = self.calls.get(key, 0) + 1
            if hook not in ONE_OFF_HOOKS:
                per = self.per_block.setdefault(self.position(), {})
                per[name] = per.get(name, 0.0) + dt
        self._last[hook] = self.clock() if i > 0 else now

    def callbacks(self, cbs: list[Callback | None]) -> list[Callback]:
        """``[mark 0, cb 0, mark 1, ...]``; a ``None`` entry leaves just its mark (the other arm's marks, without
        the callback, so both arms carry the same instrumentation)."""
        out: list[Callback] = [_Mark(self, 0)]
        for i, cb in enumerate(cbs):
            out += [cb, _Mark(self, i + 1)] if cb is not None else [_Mark(self, i + 1)]
        return out

    def block_seconds(self, block: int, name: str | None = None) -> float:
        per = self.per_block.get(block, {})
        return sum(per.values()) if name is None else per.get(name, 0.0)


class _Mark(Callback):
    def __init__(self, clock: HookClock, index: int) -> None:
        self.clock, self.index = clock, index


def _marker(hook: str) -> Callable[..., None]:
    def fn(self: _Mark, trainer: Any, *args: Any, **kwargs: Any) -> None:
        self.clock.mark(self.index, hook)
    fn.__name__ = hook
    return fn


for _hook in CLOCKED_HOOKS:
    setattr(_Mark, _hook, _marker(_hook))


def run_monitoring_benchmark(settings: Settings, source: DataSource, stats: dict[str, Tensor],
                             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both arms train at once in two threads taking turns every ``monitor_block`` steps (AB BA ...: one runs,
    the other waits).

    A block is ``monitor_block`` steps of each arm (the blocks of epoch 0, the warm-up, dropped), timed from
    taking the turn to handing it over (:class:`~aerogan.bench.common.BlockTurns`); a group is ``monitor_group``
    consecutive blocks of each arm. The monitors' cost comes in two kinds: their **direct** cost, the time spent
    inside their hooks (timed by :class:`HookClock`; periodic: gradient norms every 25 batches, loss terms every
    100, drift every 50, the drift table every 5 epochs, the topology snapshot every 20), and whatever else they
    slow down (**indirect**). A plain per-group ratio's median would drop the rare expensive groups (it sees the
    topology snapshot as an outlier) and a mean is at the mercy of one neighbour's burst, so each group's paired
    ratio replaces the arm's own hook time in that group by its average over all measured groups
    (``monitor_epochs`` = 40 is two full cycles of every cadence): ``(t_mon - h_mon + mean h_mon) / (t_none -
    h_none + mean h_none)``. The headline is the median of those per-group ratios: every periodic cost counted at
    its average rate, machine noise outside the hooks voted down by the median.
    """
    fmt = settings.memory_formats[0]
    spe, epochs = settings.steps_per_epoch, settings.monitor_epochs
    block = max(1, min(settings.monitor_block, spe))
    batches = make_batches(source, spe, settings, memory_format=fmt)
    total_blocks = -(-(epochs + 1) * spe // block)  # the last one may be short
    warm = -(-spe // block)  # the blocks that touch epoch 0
    arms = ("monitors", "none")
    models = {}
    for arm in arms:
        models[arm] = build_model(settings.spec, stats, settings.seed)
        if fmt == "channels_last":
            models[arm] = models[arm].to(memory_format=torch.channels_last)
    monitors, used = monitoring_callbacks(settings.step_cadence_divisor, settings.epoch_cadence_divisor)
    # the arm without monitors carries as many marks (HookClock), with nothing between them
    callbacks: dict[str, list[Callback | None]] = {"monitors": list(monitors), "none": [None] * len(monitors)}
    sync = synchronizer(settings.device)
    cpu = not settings.device.startswith("cuda")
    hook_clock = time.thread_time if cpu else time.perf_counter
    turns: dict[str, BlockTurns] = {}
    clocks: dict[str, HookClock] = {}
    timed: dict[str, tuple[Any, Any]] = {}
    written: dict[str, dict[str, int]] = {}

    def arm_body(arm: str) -> Callable[[Baton, int], None]:
        def body(baton: Baton, me: int) -> None:
            turns[arm] = BlockTurns(baton, me, block, sync)
            clocks[arm] = HookClock([type(cb).__name__ if cb is not None else "-" for cb in callbacks[arm]],
                                    turns[arm].current_block, hook_clock)
            with tempfile.TemporaryDirectory() as tmp:
                timed[arm] = fit_block(models[arm], batches, settings, max_epochs=epochs + 1, lead=[turns[arm]],
                                       callbacks=clocks[arm].callbacks(callbacks[arm]), tensorboard=True, root=tmp,
                                       silence=False)
                written[arm] = _written(Path(tmp))
        return body

    with quiet():
        baton = run_in_turns([arm_body(a) for a in arms], rotation_schedule(len(arms), total_blocks), arms)
    turn_log = "".join("AB"[i] for i in baton.taken)  # A = monitors, B = none
    block_s: dict[str, list[float]] = {}
    hooks: dict[str, list[float]] = {}
    one_off: dict[str, float] = {}
    for arm in arms:
        first, last = timed[arm]
        # the last block ends with the last epoch (its on_train_epoch_end callbacks), before the one-offs of train end
        ends = [*turns[arm].ends, last.epoch_ends[-1]]
        block_s[arm] = [e - s for s, e in zip(turns[arm].starts, ends, strict=True)][warm:]
        hooks[arm] = [clocks[arm].block_seconds(k) for k in range(warm, total_blocks)]
        one_off[arm] = (turns[arm].starts[0] - first.train_start) + (last.train_end - last.epoch_ends[-1])
    steps = (epochs + 1) * spe - warm * block  # the measured steps of each arm
    mean_step = {a: sum(block_s[a]) / steps for a in arms}
    whole = {a: (sum(block_s[a]) + one_off[a]) / steps for a in arms}
    # paired groups of `monitor_group` consecutive blocks (the turns alternate every block, so both arms of a group
    # met the same machine), each group with the arm's own hook time replaced by its average over the groups
    group = max(1, min(settings.monitor_group, len(block_s["none"])))
    t_g = {a: group_sums(block_s[a], group) for a in arms}
    h_g = {a: group_sums(hooks[a], group) for a in arms}
    mean_hook = {a: mean(h_g[a]) for a in arms}
    levelled = {a: [t - h + mean_hook[a] for t, h in zip(t_g[a], h_g[a], strict=True)] for a in arms}
    ratios = [m / n for m, n in zip(levelled["monitors"], levelled["none"], strict=True)]
    raw = [m / n for m, n in zip(t_g["monitors"], t_g["none"], strict=True)]
    outside = [(m - hm) / (n - hn) for m, hm, n, hn in zip(t_g["monitors"], h_g["monitors"], t_g["none"],
                                                           h_g["none"], strict=True)]
    base_group = median(levelled["none"])
    base_block = base_group / group
    clock = clocks["monitors"]
    measured = len(block_s["none"])
    per_cb = {name: mean([clock.block_seconds(k, name) for k in range(warm, total_blocks)]) for name in clock.names}
    res = {
        "ratio": median(ratios),
        "spread": spread(ratios),
        "ci95": median_interval(ratios),
        "blocks": measured,
        "groups": len(ratios),
        "blocks_per_group": group,
        "block_steps": block,
        "warmup_blocks": warm,
        "per_group_ratio": ratios,
        # the parts: time inside the monitors' hooks (at its cycle average) and the median paired ratio of the rest
        "ratio_direct": 1 + (mean_hook["monitors"] - mean_hook["none"]) / base_group,
        "ratio_indirect": median(outside),
        "direct_ms_per_step": {name: 1e3 * t / block for name, t in per_cb.items()},
        "direct_share_of_step": {name: t / base_block for name, t in per_cb.items()},
        "direct_s_by_hook_whole_run": {n: {h: t for (n2, h), t in sorted(clock.total.items())
                                           if n2 == n and h not in ONE_OFF_HOOKS} for n in clock.names},
        "hook_calls_whole_run": {f"{n}.{h}": c for (n, h), c in sorted(clock.calls.items())},
        "one_off_hook_s": {f"{n}.{h}": t for (n, h), t in sorted(clock.total.items()) if h in ONE_OFF_HOOKS},
        "hook_s_per_block": hooks,
        "hook_clock": "thread CPU time (time.thread_time)" if cpu else "wall time (time.perf_counter)",
        "block_times_s": block_s,
        # unlevelled figures: the raw per-group paired ratio, and the mean step ratio over all measured blocks
        "raw_per_group_ratio": raw,
        "raw_spread": spread(raw),
        "ratio_mean": mean_step["monitors"] / mean_step["none"],
        "ratio_whole_run": whole["monitors"] / whole["none"],
        "mean_step_s": mean_step,
        "mean_step_whole_run_s": whole,
        "one_off_s": one_off,
        "files_written": written,
        "last_metrics_logged": {type(cb).__name__: len(getattr(cb, "last_metrics", {}) or {}) for cb in monitors},
        "epochs": epochs,
        "steps_per_epoch": spe,
        "steps_per_arm": steps,
        "turns": turn_log,
        "callbacks": used,
        "cadence_divisors": {"steps": settings.step_cadence_divisor, "epochs": settings.epoch_cadence_divisor},
        "memory_format": fmt,
        "logging": "TensorBoardLogger in both arms, log_every_n_steps from configs/trainer/default.yaml",
        "method": f"two fits in two threads taking turns every {block} steps (AB BA ...); epoch 0 dropped; paired ratio "
                  f"per group of {group} blocks with each arm's hook time levelled to its cycle average; median over groups",
    }
    log(f"  monitoring: {epochs} epochs x {spe} steps per arm, {len(ratios)} groups of {group} x {block} steps: "
        f"x{res['ratio']:.3f} (95 % interval {res['ci95'][0]:.3f}-{res['ci95'][1]:.3f}; min "
        f"{res['spread']['min']:.3f}, max {res['spread']['max']:.3f}); inside the monitors' hooks x{res['ratio_direct']:.3f}, "
        f"rest x{res['ratio_indirect']:.3f}; " + ", ".join(f"{n} {v:.2f} ms/step" for n, v in res["direct_ms_per_step"].items()))
    return res
