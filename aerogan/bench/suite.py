"""The benchmark suite: argument parsing, the four benchmarks in turn, the table and the JSON file."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from aerogan.allocator import reuse_freed_memory
from aerogan.bench.common import DataSource, Settings, machine_info

__all__ = ["BENCHMARKS", "TARGETS", "build_parser", "format_table", "main", "run", "run_suite"]

BENCHMARKS = ("step", "monitoring", "predict", "scaling", "product")

#: Headline ratios and their targets: (key, comparison, value).
TARGETS = {
    "step_overhead_ratio": ("<=", 1.03),
    "monitoring_overhead_ratio": ("<=", 1.05),
    "predict_throughput_ratio": (">=", 0.85),
    "predict_peak_memory_ratio": ("~=", 1.0),
    "product_peak_rss_ratio": ("<=", 1.10),
    "product_throughput_ratio": (">=", 0.9),
}


def build_parser(device_default: str = "cpu", out_default: str = "results.json") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="aerogan bench",
        description="Benchmarks of aerogan: training-step overhead against a plain PyTorch loop, "
        "monitoring-callback overhead, tiled scene prediction throughput and memory, scaling with batch, patch "
        "and validation size. Prints a table and writes the JSON.",
    )
    ap.add_argument("--out", default=out_default, help=f"JSON file to write (default {out_default})")
    ap.add_argument("--device", default=device_default, help="cpu, cuda or cuda:N (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="toy sizes and few steps (tests of the suite; not a measurement)")
    ap.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    ap.add_argument("--profile", choices=["quickstart", "gpu"], help="model/data profile (default: quickstart on cpu, gpu on cuda)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: 1 on cpu, torch's default on cuda; 0 = torch's default)")
    ap.add_argument("--precision", choices=["32-true", "bf16-mixed"], help="default: 32-true on cpu, bf16-mixed on cuda")
    ap.add_argument("--memory-format", choices=["contiguous", "channels_last", "both"],
                    help="default: contiguous on cpu, both on cuda (the faster one gives the headline)")
    ap.add_argument("--rounds", type=int, help="measured rounds (blocks) of the step benchmark")
    ap.add_argument("--tile", type=int, help="prediction tile (LR px)")
    ap.add_argument("--overlap", type=int, help="prediction overlap (LR px)")
    ap.add_argument("--predict-sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"), help="LR scene sides for the memory ratio")
    ap.add_argument("--product-sources", nargs=3, metavar=("R10", "R20", "R60"),
                    help="10, 20 and 60 m group rasters to mosaic for the product benchmark (default: a synthetic product)")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def settings_from_args(args: argparse.Namespace, gpu: bool = False) -> Settings:
    fmt = {"both": ("contiguous", "channels_last"), "contiguous": ("contiguous",), "channels_last": ("channels_last",)}
    return Settings.for_args(
        args.device, args.quick, args.profile, gpu=gpu, precision=args.precision, seed=args.seed,
        memory_formats=fmt[args.memory_format] if args.memory_format else None,
        only=tuple(args.only) if args.only else (BENCHMARKS if gpu else None), step_rounds=args.rounds, tile=args.tile, overlap=args.overlap,
        predict_sizes=tuple(args.predict_sizes) if args.predict_sizes else None,
    )


def _apply_threads(settings: Settings, threads: int | None) -> None:
    if threads is None:
        threads = 0 if settings.device.startswith("cuda") else 1
    if threads > 0:
        torch.set_num_threads(threads)
    settings.threads = torch.get_num_threads()


def run_suite(settings: Settings, log: Callable[[str], None] = print, product_sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the selected benchmarks; returns the result dictionary (what the JSON holds)."""
    from aerogan.bench import monitoring, predict, product, scaling, step

    if settings.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
        torch.backends.cudnn.benchmark = True
    t_start = time.perf_counter()
    results: dict[str, Any] = {key: None for key in TARGETS}
    results["targets"] = {k: {"op": op, "value": v} for k, (op, v) in TARGETS.items()}
    results["machine"] = machine_info(settings)
    results["settings"] = settings.as_dict()
    needs_data = {"step", "monitoring", "scaling"} & set(settings.only)
    source = stats = None
    if needs_data:
        t0 = time.perf_counter()
        source = DataSource(settings.spec, settings.seed)
        stats = source.statistics()
        log(f"data: {settings.spec.train_scenes} synthetic scenes of {settings.spec.scene_size}² ({time.perf_counter() - t0:.1f} s)")
    timings: dict[str, float] = {}
    if "step" in settings.only:
        t0 = time.perf_counter()
        log("[1/4] training-step overhead: equivalence check")
        results["equivalence"] = step.check_equivalence(settings, source)
        log(f"  plain loop == aerogan step after {results['equivalence']['steps']} steps: {results['equivalence']['match']} "
            f"(max |dG| {results['equivalence']['generator_max_abs_diff']:.2e}, max |dD| {results['equivalence']['critic_max_abs_diff']:.2e})")
        log("[1/4] training-step overhead: alternating blocks")
        results["step"] = step.run_step_benchmark(settings, source, stats, log)
        results["step_overhead_ratio"] = results["step"]["ratio"]
        results["step_overhead_spread"] = results["step"]["spread"]
        results["step_overhead_ci95"] = results["step"]["ci95"]
        results["step_overhead_ratio_tensorboard"] = results["step"]["ratio_tensorboard"]
        # the later benchmarks run in the faster memory format first (channels_last "where it helps")
        best = results["step"]["headline_format"]
        settings.memory_formats = (best, *[f for f in settings.memory_formats if f != best])
        timings["step"] = time.perf_counter() - t0
    if "monitoring" in settings.only:
        t0 = time.perf_counter()
        log("[2/4] monitoring overhead")
        results["monitoring"] = monitoring.run_monitoring_benchmark(settings, source, stats, log)
        results["monitoring_overhead_ratio"] = results["monitoring"]["ratio"]
        results["monitoring_overhead_spread"] = results["monitoring"]["spread"]
        results["monitoring_overhead_ci95"] = results["monitoring"]["ci95"]
        timings["monitoring"] = time.perf_counter() - t0
    if "predict" in settings.only:
        t0 = time.perf_counter()
        log("[3/4] scene prediction")
        results["predict"] = predict.run_predict_benchmark(settings, log)
        results["predict_throughput_ratio"] = results["predict"]["ratio"]
        results["predict_peak_memory_ratio"] = results["predict"]["memory_ratio"]
        timings["predict"] = time.perf_counter() - t0
    if "scaling" in settings.only:
        t0 = time.perf_counter()
        log("[4/4] scaling")
        results["scaling"] = scaling.run_scaling_benchmark(settings, source, stats, log)
        timings["scaling"] = time.perf_counter() - t0
    if "product" in settings.only:
        t0 = time.perf_counter()
        log("[5/5] whole products (T2 + S6) against size")
        results["product"] = product.run_product_benchmark(settings, log, product_sources)
        results["product_peak_rss_ratio"] = results["product"]["peak_rss_ratio"]
        results["product_throughput_ratio"] = results["product"]["throughput_ratio"]
        timings["product"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    results["wall_time_s"] = timings
    results["target_met"] = {k: _meets(k, results.get(k)) for k in TARGETS}
    return results


def _meets(key: str, value: float | None) -> bool | None:
    if value is None or not math.isfinite(value):
        return None
    op, target = TARGETS[key]
    if op == "<=":
        return value <= target
    if op == ">=":
        return value >= target
    return abs(value - target) <= 0.25 * target  # "about 1": within 25 %


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.1f} ms"


def format_table(r: dict[str, Any]) -> str:
    """The human-readable summary of a result dictionary."""
    m, s = r["machine"], r["settings"]
    lines = [
        f"aerogan bench — device {m['device']}{' (' + m['gpu'] + ')' if m.get('gpu') else ''}, torch {m['torch']}, "
        f"lightning {m['lightning']}, {m['torch_threads']} thread(s) of {m['cpu_count']} cpu(s), precision {s['precision']}, "
        f"profile {s['spec']['name']}{', QUICK' if s['quick'] else ''}",
        "",
        f"{'headline':<34}{'value':>10}  {'target':<9}{'met':<5}95 % interval",
        "-" * 74,
    ]
    for key, (op, target) in TARGETS.items():
        v = r.get(key)
        met = r["target_met"].get(key)
        ci = r.get(key.replace("_ratio", "_ci95"))
        lines.append(f"{key:<34}{'-' if v is None else f'{v:.3f}':>10}  {op} {target:<6}{'-' if met is None else ('yes' if met else 'NO'):<5}"
                     + (f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else ""))
    if r.get("step"):
        st = r["step"]
        lines += ["", f"1. training step (3 arms taking turns every {st['block_steps']} step(s), ABC BCA CAB; median of "
                      f"{st['rounds']} per-round paired ratios after {st['warmup_rounds']} warm-up rounds, "
                      f"{st['headline_format']})"]
        for fmt, fr in st["formats"].items():
            ms, sp, ci = fr["median_step_s"], fr["spread"], fr["ci95"]
            lines.append(f"   [{fmt}] plain {_ms(ms['plain'])} | aerogan {_ms(ms['aerogan'])} (x{fr['ratio']:.3f}, 95 % interval "
                         f"{ci[0]:.3f}-{ci[1]:.3f}; min {sp['min']:.3f} median {sp['median']:.3f} max {sp['max']:.3f} over "
                         f"{sp['blocks']} rounds; per {fr['rounds_per_group']} rounds x{fr['ratio_grouped']:.3f}; mean step "
                         f"x{fr['ratio_mean']:.3f}; hook window x{fr['ratio_hook_window']:.3f}) | aerogan + TensorBoard "
                         f"{_ms(ms['aerogan_tensorboard'])} (x{fr['ratio_tensorboard']:.3f} per {fr['rounds_per_group']} rounds; "
                         f"mean step x{fr['ratio_tensorboard_mean']:.3f})")
            lines.append(f"   machine noise: the plain loop's single steps varied by {100 * fr['plain_step_cv']:.0f} % (cv)")
        if "channels_last_speedup" in st:
            lines.append("   channels_last speed-up: " + ", ".join(f"{k} x{v:.2f}" for k, v in st["channels_last_speedup"].items()))
        eq = r.get("equivalence") or {}
        if eq:
            lines.append(f"   same weights after {eq['steps']} steps: {eq['match']} (max |dG| {eq['generator_max_abs_diff']:.1e}, "
                         f"max |dD| {eq['critic_max_abs_diff']:.1e}; weights moved {eq['generator_moved']:.1e})")
    if r.get("monitoring"):
        mo = r["monitoring"]
        ms = mo["mean_step_s"]
        sp, ci = mo["spread"], mo["ci95"]
        lines += ["", f"2. monitoring ({mo['epochs']} epochs x {mo['steps_per_epoch']} steps per arm taking turns every "
                      f"{mo['block_steps']} step(s), AB BA; median of paired ratios of groups of {mo['blocks_per_group']} "
                      "blocks, the monitors' hook time at its cycle average)",
                  f"   none {_ms(ms['none'])} | 3 monitors {_ms(ms['monitors'])} (x{mo['ratio']:.3f}, 95 % interval "
                  f"{ci[0]:.3f}-{ci[1]:.3f}; min {sp['min']:.3f} median {sp['median']:.3f} max {sp['max']:.3f} over "
                  f"{sp['blocks']} groups; mean step x{mo['ratio_mean']:.3f}); "
                  f"incl. start/end one-offs x{mo['ratio_whole_run']:.3f} "
                  f"(+{mo['one_off_s']['monitors'] - mo['one_off_s']['none']:.2f} s per fit)",
                  f"   inside the monitors' hooks x{mo['ratio_direct']:.3f} ("
                  + ", ".join(f"{n} {v:.2f} ms" for n, v in mo["direct_ms_per_step"].items())
                  + f" per step), the rest x{mo['ratio_indirect']:.3f}"]
        if mo["cadence_divisors"] != {"steps": 1, "epochs": 1}:
            lines.append(f"   cadences divided by {mo['cadence_divisors']}")
    if r.get("predict"):
        p = r["predict"]
        lines += ["", f"3. scene prediction ({p['throughput_scene_lr']}² LR x{p['scale']}, tile {p['tile']}, overlap {p['overlap']}, "
                      f"batch {p['batch_size']}, {p['tiles']} tiles = {p['computed_over_output_pixels']:.2f}x the scene's pixels)"]
        for fmt, fr in p["formats"].items():
            mpx = fr["mpx_per_s"]
            lines.append(f"   [{fmt}] raw forward {mpx['raw_forward']:.3f} Mpx/s | super_resolve_file {mpx['tiled_file']:.3f} Mpx/s "
                         f"(x{fr['ratio']:.3f}) | super_resolve_array {mpx['tiled_array']:.3f} Mpx/s (x{fr['ratio_array']:.3f})")
        labels = p["memory_sizes"]
        for label in labels:
            mm = p["memory"][label]
            lines.append(f"   memory {label} LR: peak RSS +{mm['peak_rss_above_baseline_mb']:.1f} MB, "
                         f"tracemalloc peak {mm['tracemalloc_peak_mb']:.1f} MB"
                         + (f", CUDA peak {mm['cuda_peak_mb']:.1f} MB" if "cuda_peak_mb" in mm else ""))
        lines.append(f"   {labels[1]} / {labels[0]} ({p['scene_area_ratio']:.0f}x the area): RSS x{p['memory_ratio']:.2f}, "
                     f"tracemalloc x{p['memory_ratio_tracemalloc']:.2f}"
                     + (f", CUDA x{p['memory_ratio_cuda']:.2f}" if "memory_ratio_cuda" in p else ""))
        lines.append(f"   {labels[2]} / {labels[0]} (same width, {p['scene_area_ratio']:.0f}x the area): "
                     f"RSS x{p['memory_ratio_same_width']:.2f}, tracemalloc x{p['memory_ratio_same_width_tracemalloc']:.2f}")
    if r.get("scaling"):
        sc = r["scaling"]
        lines += ["", "4. scaling (aerogan step, median; validation incl. metrics)",
                  f"   {'batch':>5} {'patch':>5} {'step':>10} {'ms/sample':>10} {'s/HR-Mpx':>9}"]
        for row in sc["step_vs_batch"] + sc["step_vs_patch"]:
            lines.append(f"   {row['batch_size']:>5} {row['patch_size']:>5} {row['step_s'] * 1e3:>7.1f} ms {row['per_sample_ms']:>10.2f} "
                         f"{row['per_hr_megapixel_s']:>9.2f}")
        lines.append(f"   {'val samples':>11} {'time':>10} {'ms/sample':>10}")
        for row in sc["validation_vs_samples"]:
            lines.append(f"   {row['samples']:>11} {row['seconds'] * 1e3:>7.1f} ms {row['per_sample_ms']:>10.2f}")
        f = sc["fits"]
        lines.append(f"   linear fits: step = {f['step_vs_batch']['intercept'] * 1e3:.1f} ms + {f['step_vs_batch']['slope'] * 1e3:.2f} ms/sample "
                     f"(R² {f['step_vs_batch']['r2']:.3f}); validation = {f['validation_vs_samples']['intercept'] * 1e3:.1f} ms + "
                     f"{f['validation_vs_samples']['slope'] * 1e3:.2f} ms/sample (R² {f['validation_vs_samples']['r2']:.3f})")
    if r.get("product"):
        pr = r["product"]
        lines += ["", f"5. whole products ({pr['models']}, tile {pr['tile']}, batch {pr['batch_size']}, block {pr['block_width']} px, "
                      f"{pr['threads']} threads, {pr['precision']}; base {pr['base']})",
                  f"   {'output':>20} {'seconds':>8} {'s/Mpx':>7} {'fwd s/Mpx':>9} {'ratio':>6} {'replayed':>8} {'ratio':>6} {'peak RSS':>9}"]
        for row in pr["sizes"].values():
            lines.append(f"   {row['output']:>20} {row['seconds']:>8.1f} {row['s_per_mpx']:>7.2f} {row['forward_s_per_mpx']:>9.2f} "
                         f"{row['throughput_ratio']:>6.3f} {row['raw_s_per_mpx']:>8.2f} {row['replayed_ratio']:>6.3f} {row['peak_rss_mb']:>5.0f} MiB")
        lines.append(f"   largest / smallest peak RSS x{pr['peak_rss_ratio']:.3f}; tiles over one whole-scene grid "
                     + ", ".join(f"{k} " + "/".join(f"{m} {v:.2f}" for m, v in d.items()) for k, d in pr["tiles_over_whole_scene_grid"].items()))
    lines += ["", "wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["wall_time_s"].items())]
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def run(argv: Sequence[str] | None = None, gpu: bool = False) -> dict[str, Any]:
    """Parse ``argv``, run the suite, print the table, write the JSON; returns the results.

    ``gpu=True`` is the GPU script: device ``cuda``, ``gpu.json``, and the GPU settings (gpu profile unless
    ``--quick``, bf16 autocast, both memory formats) on whatever ``--device`` names, so ``--device cpu
    --quick`` tests it on a CPU.
    """
    device_default, out_default = ("cuda", "gpu.json") if gpu else ("cpu", "results.json")
    args = build_parser(device_default, out_default).parse_args(list(argv) if argv is not None else None)
    settings = settings_from_args(args, gpu=gpu)
    _apply_threads(settings, args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = run_suite(settings, log, args.product_sources)
    given = list(argv) if argv is not None else sys.argv[1:]
    results["command"] = " ".join(["python -m aerogan.bench" + (".gpu" if gpu else ""), *given])
    results["gpu_script"] = gpu
    print(format_table(results), flush=True)
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        os.makedirs(out.parent, exist_ok=True)
    out.write_text(json.dumps(_jsonable(results), indent=1) + "\n")
    print(f"\nwrote {out}", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m aerogan.bench`` / ``aerogan bench``: with freed memory kept for reuse, as the ``aerogan`` command runs."""
    reuse_freed_memory()
    run(argv)
