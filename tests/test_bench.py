"""The benchmark suite (``python -m aerogan.bench``): it runs, writes what it promises, and its plain
PyTorch reference does exactly the aerogan step's computation. No timing is asserted (shared machines)."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import pytest
import torch

from aerogan.bench.common import Settings
from aerogan.bench.step import check_equivalence

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
    mon = data["monitoring"]
    assert len(mon["epoch_times_s"]["monitors"]) == len(mon["epoch_times_s"]["none"]) == mon["epochs"] >= 2
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
