"""The benchmark suite (``python -m aerogan.bench``): it runs, writes what it promises, and its plain
PyTorch reference does exactly the aerogan step's computation. No timing is asserted (shared machines)."""

from __future__ import annotations

import json
import math
import platform
import random
import runpy
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aerogan.bench.common import (
    Settings,
    group_sums,
    median_interval,
    rotation_schedule,
    run_in_turns,
    share_malloc_arena,
    spread,
)
from aerogan.bench.step import check_equivalence
from aerogan.bench.suite import format_table, run

HEADLINES = ("step_overhead_ratio", "monitoring_overhead_ratio", "predict_throughput_ratio", "predict_peak_memory_ratio")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """One quick CPU run of the whole suite, in-process: (returned results, JSON file)."""
    from aerogan.bench.suite import run

    out = tmp_path_factory.mktemp("bench") / "results.json"
    results = run(["--quick", "--out", str(out)])
    return results, json.loads(out.read_text())


def _positive_finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _check_spread(spread: dict, headline: float, blocks: int) -> None:
    assert set(spread) == {"min", "median", "max", "blocks"}
    assert spread["blocks"] == blocks
    assert all(_positive_finite(spread[k]) for k in ("min", "median", "max"))
    assert spread["min"] <= spread["median"] <= spread["max"]
    assert spread["median"] == headline


def test_quick_suite_writes_the_promised_json(quick_results: tuple[dict, dict]) -> None:
    results, data = quick_results
    for key in HEADLINES:
        assert _positive_finite(data[key]), (key, data[key])
    assert _positive_finite(data["step_overhead_ratio_tensorboard"])
    # raw timings, machine and settings travel with the ratios
    assert data["machine"]["torch"] == torch.__version__ and data["machine"]["device"] == "cpu"
    assert data["machine"]["torch_threads"] >= 1
    assert data["settings"]["quick"] is True and data["settings"]["spec"]["n_critic"] >= 1
    step = data["step"]["formats"]["contiguous"]
    assert set(step["step_times_s"]) == {"plain", "aerogan", "aerogan_tensorboard"}
    assert all(_positive_finite(t) for times in step["step_times_s"].values() for t in times)
    assert all(len(times) == data["step"]["rounds"] * data["step"]["block_steps"] for times in step["step_times_s"].values())
    # the step headline is the median of the per-round paired ratios, reported with its spread, round count and the
    # bootstrap interval of the median; TensorBoard's and the grouped ratio pair groups of rounds
    rounds = data["step"]["rounds"]
    _check_spread(data["step_overhead_spread"], data["step_overhead_ratio"], rounds)
    _check_spread(step["spread"], step["ratio"], rounds)
    lo, hi = data["step_overhead_ci95"]
    assert step["spread"]["min"] <= lo <= step["ratio"] <= hi <= step["spread"]["max"]
    per_round = step["per_round_mean_step_s"]
    assert step["per_round_ratio"] == [r["aerogan"] / r["plain"] for r in per_round]
    g = step["rounds_per_group"]
    groups = data["step"]["groups"]
    assert groups == rounds // g >= 2
    assert step["per_group_ratio"] == pytest.approx([
        sum(r["aerogan"] for r in per_round[k:k + g]) / sum(r["plain"] for r in per_round[k:k + g])
        for k in range(0, groups * g, g)])
    assert step["ratio_tensorboard"] == statistics.median(step["per_group_ratio_tensorboard"])
    assert 0 < step["plain_step_cv"] < 1
    mon = data["monitoring"]
    blocks = mon["epochs"] * mon["steps_per_epoch"] // mon["block_steps"]
    assert mon["epochs"] >= 2 and mon["blocks"] == blocks
    groups = blocks // mon["blocks_per_group"]
    assert mon["groups"] == groups == len(mon["per_group_ratio"]) >= 2
    _check_spread(data["monitoring_overhead_spread"], data["monitoring_overhead_ratio"], groups)
    lo, hi = data["monitoring_overhead_ci95"]
    assert mon["spread"]["min"] <= lo <= mon["ratio"] <= hi <= mon["spread"]["max"]
    assert len(mon["block_times_s"]["monitors"]) == len(mon["block_times_s"]["none"]) == blocks
    assert mon["turns"].startswith("ABBAAB")  # the arms took turns AB BA AB ...
    # the direct cost is timed inside the monitors' hooks; the other arm has only the marks, next to nothing between
    assert sum(mon["hook_s_per_block"]["monitors"]) > 10 * sum(mon["hook_s_per_block"]["none"]) > 0
    assert set(mon["direct_ms_per_step"]) == {"GradientNormMonitor", "WeightDriftMonitor", "TopologySnapshot"}
    assert mon["one_off_hook_s"]["TopologySnapshot.on_train_start"] > 0  # the t = 0 snapshot, outside the blocks
    table = format_table(results)
    assert f"over {data['step']['rounds']} rounds" in table and f"over {mon['groups']} groups" in table
    assert mon["files_written"]["monitors"]["topology_png"] > 0 and mon["files_written"]["none"]["topology_png"] == 0
    assert mon["last_metrics_logged"]["GradientNormMonitor"] > 0 and mon["last_metrics_logged"]["WeightDriftMonitor"] > 0
    assert {c["class_path"].rsplit(".", 1)[-1] for c in mon["callbacks"]} == {
        "GradientNormMonitor", "WeightDriftMonitor", "TopologySnapshot"}
    pred = data["predict"]
    assert set(pred["mpx_per_s"]) == {"tiled_file", "tiled_array", "raw_forward"}
    assert all(_positive_finite(v) for v in pred["mpx_per_s"].values())
    assert len(pred["memory"]) == 3 and all(_positive_finite(m["tracemalloc_peak_mb"]) for m in pred["memory"].values())
    sc = data["scaling"]
    assert [r["batch_size"] for r in sc["step_vs_batch"]] == data["settings"]["batch_sizes"]
    assert [r["patch_size"] for r in sc["step_vs_patch"]] == data["settings"]["patch_sizes"]
    assert [r["samples"] for r in sc["validation_vs_samples"]] == data["settings"]["val_samples"]
    assert all(_positive_finite(r["step_s"]) for r in sc["step_vs_batch"] + sc["step_vs_patch"])
    # the suite's own equivalence check ran and passed
    assert data["equivalence"]["match"] is True
    assert results["step_overhead_ratio"] == data["step_overhead_ratio"]


def test_plain_loop_matches_the_aerogan_step() -> None:
    """Same init, batches and seed: k aerogan steps (Trainer) and k plain steps give the same weights."""
    torch.set_num_threads(1)
    settings = Settings.for_args("cpu", quick=True, profile=None)
    res = check_equivalence(settings, steps=3)
    assert res["generator_max_abs_diff"] <= 1e-6 and res["critic_max_abs_diff"] <= 1e-6, res
    assert res["generator_moved"] > 1e-4 and res["critic_moved"] > 1e-4, res  # the weights did train
    assert res["match"]


def test_equivalence_check_notices_a_different_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: a plain loop without the gradient penalty no longer matches."""
    import aerogan.bench.step as step

    torch.set_num_threads(1)
    monkeypatch.setattr(step, "gradient_penalty", lambda critic, real, fake: torch.zeros((), device=real.device))
    res = check_equivalence(Settings.for_args("cpu", quick=True, profile=None), steps=2)
    assert res["critic_max_abs_diff"] > 1e-5 and not res["match"]


def test_gpu_script_runs_on_cpu(tmp_path: Path) -> None:
    """The GPU script's path (bf16 autocast, both memory formats) through its device argument."""
    from aerogan.bench.gpu import run

    out = tmp_path / "gpu.json"
    results = run(["--device", "cpu", "--quick", "--only", "step", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["settings"]["precision"] == "bf16-mixed" and data["gpu_script"] is True
    assert set(data["step"]["formats"]) == {"contiguous", "channels_last"}
    assert _positive_finite(data["step_overhead_ratio"]) and data["monitoring_overhead_ratio"] is None
    assert all(_positive_finite(v) for v in data["step"]["channels_last_speedup"].values())
    assert data["equivalence"]["match"] is True  # bf16: still the same weights
    assert results["settings"]["device"] == "cpu"


def test_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``aerogan bench ...`` dispatches to ``aerogan.bench.main``; ``python -m aerogan.bench`` parses its arguments."""
    from aerogan.cli import cli_main

    out = tmp_path / "scaling.json"
    assert cli_main(["bench", "--quick", "--only", "scaling", "--out", str(out)]) is None
    data = json.loads(out.read_text())
    assert math.isfinite(data["scaling"]["fits"]["step_vs_batch"]["slope"])
    assert "4. scaling" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["python -m aerogan.bench", "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("aerogan.bench", run_name="__main__")
    assert exc.value.code == 0
    assert "--device" in capsys.readouterr().out


def test_rotation_schedule_balances_places_and_predecessors() -> None:
    assert rotation_schedule(2, 4) == [0, 1, 1, 0, 0, 1, 1, 0]  # ABBA
    order = rotation_schedule(3, 6)
    assert order[:9] == [0, 1, 2, 1, 2, 0, 2, 0, 1]  # ABC BCA CAB
    rounds = [order[k:k + 3] for k in range(0, len(order), 3)]
    for arm in range(3):  # every arm takes every place equally often
        assert sorted(r.index(arm) for r in rounds) == [0, 0, 1, 1, 2, 2]
    assert all(a != b for a, b in zip(order, order[1:], strict=False))  # every block follows another arm's


def test_arms_take_turns_in_schedule_order() -> None:
    """Threads run their blocks one at a time, in the schedule's order; a finished arm's turns are skipped."""
    ran: list[int] = []

    def arm(turns: int):
        def body(baton, me: int) -> None:
            for _ in range(turns):
                baton.acquire(me)
                ran.append(me)
                baton.release(me)
        return body

    schedule = rotation_schedule(3, 4)  # four turns each; arm 2 takes only two, then returns
    baton = run_in_turns([arm(4), arm(4), arm(2)], schedule)
    expected = [a for k, a in enumerate(schedule) if a != 2 or schedule[:k].count(2) < 2]
    assert ran == expected == baton.taken


def test_run_in_turns_reraises_without_deadlock() -> None:
    def bad(baton, me: int) -> None:
        baton.acquire(me)
        raise RuntimeError("arm failed")

    def good(baton, me: int) -> None:
        for _ in range(3):
            baton.acquire(me)
            baton.release(me)

    with pytest.raises(RuntimeError, match="arm failed"):
        run_in_turns([bad, good], rotation_schedule(2, 3))


def test_spread() -> None:
    assert spread([1.2, 0.9, 1.0, 1.1]) == {"min": 0.9, "median": 1.05, "max": 1.2, "blocks": 4}
    empty = spread([])
    assert empty["blocks"] == 0 and math.isnan(empty["median"])
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert share_malloc_arena() is True


def test_group_sums_and_the_interval_of_the_median() -> None:
    assert group_sums([1.0, 2.0, 3.0, 4.0, 5.0], 2) == [3.0, 7.0]  # the incomplete last group is left out
    assert group_sums([1.0, 2.0], 3) == []
    rng = random.Random(1)
    few = [1.02 + rng.gauss(0, 0.05) for _ in range(12)]
    many = [1.02 + rng.gauss(0, 0.05) for _ in range(400)]
    lo, hi = median_interval(few)
    assert lo <= statistics.median(few) <= hi
    lo2, hi2 = median_interval(many)
    assert lo2 <= 1.02 <= hi2 and hi2 - lo2 < (hi - lo) / 2  # 33x the data: an interval about 6x narrower
    assert median_interval(many) == [lo2, hi2]  # seeded: the same interval every time
    assert all(math.isnan(v) for v in median_interval([1.0]))


def test_hook_clock_times_each_callback_between_marks() -> None:
    """A callback that sleeps in its hooks is charged at least that time; the one beside it next to nothing."""
    import time

    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.demos.boring_classes import BoringModel

    from aerogan.bench.monitoring import HookClock

    class Sleeper(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            time.sleep(0.01)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            time.sleep(0.03)

    class Idle(Callback):
        pass

    position = {"block": 0}
    clock = HookClock(["Sleeper", "Idle"], lambda: position["block"])
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=clock.callbacks([Sleeper(), Idle()]))
    trainer.fit(BoringModel())
    assert clock.calls[("Sleeper", "on_train_batch_start")] == 6 and clock.calls[("Sleeper", "on_train_epoch_end")] == 2
    assert clock.total[("Sleeper", "on_train_batch_start")] >= 6 * 0.01
    assert clock.total[("Sleeper", "on_train_epoch_end")] >= 2 * 0.03
    assert clock.block_seconds(0, "Sleeper") >= 6 * 0.01 + 2 * 0.03
    assert clock.block_seconds(0, "Idle") < 0.01  # only the marks' own bookkeeping


def test_block_counts_are_honoured() -> None:
    """Rounds, block sizes and epochs given in the settings are what the benchmarks run and report."""
    from aerogan.bench.common import DataSource
    from aerogan.bench.monitoring import run_monitoring_benchmark
    from aerogan.bench.step import run_step_benchmark

    torch.set_num_threads(1)
    settings = Settings.for_args("cpu", quick=True, profile=None, step_rounds=6, step_block=2, step_group=2,
                                 step_warmup_rounds=1, monitor_epochs=3, steps_per_epoch=4, monitor_block=1, monitor_group=3)
    source = DataSource(settings.spec, settings.seed)
    stats = source.statistics()
    step = run_step_benchmark(settings, source, stats, log=lambda _: None)
    res = step["formats"]["contiguous"]
    assert step["rounds"] == len(res["per_round_ratio"]) == res["spread"]["blocks"] == 6
    assert step["groups"] == len(res["per_group_ratio"]) == len(res["per_group_ratio_tensorboard"]) == 3  # in pairs
    assert all(len(t) == 6 * 2 for t in res["step_times_s"].values())
    # warm-up round + 6 measured rounds of three arms, rotated, then the two fits' clean-up turns
    assert res["turns"] == [["plain", "aerogan", "aerogan_tensorboard"][a] for a in rotation_schedule(3, 7)] + [
        "aerogan", "aerogan_tensorboard"]
    mon = run_monitoring_benchmark(settings, source, stats, log=lambda _: None)
    assert mon["blocks"] == 3 * 4  # epochs 1-3, 1 step each
    assert mon["groups"] == mon["spread"]["blocks"] == len(mon["per_group_ratio"]) == 4  # of 3 blocks each
    assert mon["warmup_blocks"] == 4 and mon["turns"] == "ABBA" * 8  # 16 blocks of each arm
    assert mon["spread"]["min"] <= mon["ratio"] <= mon["spread"]["max"]


def test_product_benchmark_reports_memory_and_throughput_against_size(tmp_path: Path) -> None:
    """``--only product --quick``: T2 + S6 products at 1x and 4x the area, each in its own process."""
    from aerogan.bench.product import mirrored_mosaic

    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    m = mirrored_mosaic(a, 2)
    assert m.shape == (2, 6, 8)
    np.testing.assert_array_equal(m[:, 3:, :4], a[:, ::-1])  # continuous across the seam
    np.testing.assert_array_equal(m[:, :3, 4:], a[:, :, ::-1])
    out = tmp_path / "p.json"
    r = run(["--quick", "--only", "product", "--out", str(out)])
    pr = r["product"]
    assert list(pr["sizes"]) == ["1x", "4x"] and pr["sizes"]["4x"]["output"] == "192 x 192 x 12"
    for row in pr["sizes"].values():
        # freed memory is kept (as the aerogan command runs), so the warm-up's peak may already be the product's
        assert row["peak_rss_mb"] >= row["baseline_rss_mb"] > 0
        assert row["reuse_freed_memory"] is sys.platform.startswith("linux")
        # the in-place forward is part of the product's time; the replay is a separate run of the same batches
        assert 0 < row["forward_seconds"] < row["seconds"] and row["throughput_ratio"] == row["forward_seconds"] / row["seconds"]
        assert row["tiles"]["T2"] > 0 and row["tiles"]["S6"] > 0 and row["raw_forward_seconds"] > 0 and 0 < row["replayed_ratio"] <= 1.5
    assert r["product_peak_rss_ratio"] == pr["peak_rss_ratio"] and r["target_met"]["product_peak_rss_ratio"] is not None
    assert "5. whole products" in format_table(r)
