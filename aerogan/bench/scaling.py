"""4. Scaling of cost with work: aerogan step time against batch size and patch size, validation time
against the number of validation samples.

Step time: the aerogan step through the Trainer at its cheapest (as in benchmark 1), median of the
start-to-next-start intervals of each block, blocks of every configuration interleaved round by round.
The batch sizes run at the profile's patch size and the patch sizes at its batch size. Validation time:
``Trainer.validate`` (``SuperResolution``'s validation: loss, PSNR/SSIM/SAM/per-band RMSE and the bicubic
baseline; no logger, so no panels) from ``on_validation_start`` to ``on_validation_end``, interleaved the
same way. Linear growth shows as a flat time per sample (per HR pixel for the patch sizes); the fitted
line ``t = a + b * n`` gives the fixed cost ``a`` and the cost per sample ``b``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import lightning as L
from torch import Tensor

from aerogan.bench.common import (
    BatchList,
    DataSource,
    Settings,
    build_model,
    make_batches,
    median,
    quiet,
    timers,
    trainer_kwargs,
)
from aerogan.bench.fit import fit_block, lightning_step_times

__all__ = ["linear_fit", "run_scaling_benchmark"]


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least-squares ``y = a + b x`` with its R²."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return {"intercept": my, "slope": 0.0, "r2": float("nan")}
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"intercept": a, "slope": b, "r2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")}


def _validate(model: Any, batches: list[dict[str, Tensor]], settings: Settings) -> float:
    first, last = timers(settings.device)
    with tempfile.TemporaryDirectory() as tmp, quiet():
        kw = trainer_kwargs(settings, callbacks=[first, last], default_root_dir=tmp, limit_val_batches=None)
        L.Trainer(**kw).validate(model, dataloaders=BatchList(batches), verbose=False)
    return last.val_end - first.val_start


def run_scaling_benchmark(settings: Settings, source: DataSource, stats: dict[str, Tensor],
                          log: Callable[[str], None] = print) -> dict[str, Any]:
    spec = settings.spec
    fmt = settings.memory_formats[0]
    warm, block = 1, settings.scaling_block
    configs = [("batch", b, spec.patch_size, b) for b in settings.batch_sizes]
    configs += [("patch", p, p, spec.batch_size) for p in settings.patch_sizes]
    data = {(kind, v): make_batches(source, warm + block + 1, settings, memory_format=fmt, batch_size=b, patch_size=p)
            for kind, v, p, b in configs}
    model = build_model(spec, stats, settings.seed)
    step_times: dict[tuple[str, int], list[float]] = {(k, v): [] for k, v, _, _ in configs}
    val_sets = {n: make_batches(source, max(1, n // settings.val_batch), settings, memory_format=fmt,
                                batch_size=min(n, settings.val_batch), split="val") for n in settings.val_samples}
    val_times: dict[int, list[float]] = {n: [] for n in settings.val_samples}
    for r in range(settings.scaling_rounds + 1):  # round 0 warms up and is dropped
        order = configs if r % 2 else configs[::-1]
        for kind, v, _, _ in order:
            first, last = fit_block(model, data[(kind, v)], settings, n_batches=warm + block + 1)
            times, _ = lightning_step_times(first, last, warm)
            if r > 0:
                step_times[(kind, v)] += times
        for n in settings.val_samples if r % 2 else settings.val_samples[::-1]:
            t = _validate(model, val_sets[n], settings)
            if r > 0:
                val_times[n].append(t)
        if r > 0:
            log(f"  scaling round {r}/{settings.scaling_rounds} done")

    def rows(kind: str) -> list[dict[str, float]]:
        out = []
        for k, v, p, b in configs:
            if k != kind:
                continue
            t = median(step_times[(k, v)])
            out.append({"batch_size": b, "patch_size": p, "step_s": t, "per_sample_ms": t / b * 1e3,
                        "per_hr_megapixel_s": t / (b * p * p / 1e6)})
        return out

    batch_rows, patch_rows = rows("batch"), rows("patch")
    val_rows = []
    for n in settings.val_samples:
        t = median(val_times[n])
        val_rows.append({"samples": n, "seconds": t, "per_sample_ms": t / n * 1e3})
    fits = {
        "step_vs_batch": linear_fit([r["batch_size"] for r in batch_rows], [r["step_s"] for r in batch_rows]),
        "step_vs_hr_pixels": linear_fit([r["patch_size"] ** 2 for r in patch_rows], [r["step_s"] for r in patch_rows]),
        "validation_vs_samples": linear_fit([r["samples"] for r in val_rows], [r["seconds"] for r in val_rows]),
    }
    for r in batch_rows + patch_rows:
        log(f"  step batch {r['batch_size']:>3} patch {r['patch_size']:>3}: {r['step_s'] * 1e3:8.1f} ms "
            f"({r['per_sample_ms']:.2f} ms/sample)")
    for r in val_rows:
        log(f"  validation {r['samples']:>4} samples: {r['seconds'] * 1e3:8.1f} ms ({r['per_sample_ms']:.2f} ms/sample)")
    return {
        "step_vs_batch": batch_rows,
        "step_vs_patch": patch_rows,
        "validation_vs_samples": val_rows,
        "fits": fits,
        "raw_step_times_s": {f"{k}={v}": t for (k, v), t in step_times.items()},
        "raw_validation_times_s": {str(n): t for n, t in val_times.items()},
        "validation_batch_size": settings.val_batch,
        "memory_format": fmt,
    }
