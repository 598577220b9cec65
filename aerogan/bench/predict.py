"""3. Scene prediction: throughput of tiled whole-scene prediction, and its peak memory against scene size.

Throughput: a synthetic scene (``datamodules.synthetic.generate_scene``, used as the LR input) is written
as a tiled float32 GeoTIFF and super-resolved with :func:`aerogan.prediction.super_resolve_file` (window
by window, overlapped tiles blended, written as a GeoTIFF) and :func:`aerogan.prediction.super_resolve_array`
(in memory). The reference is the raw generator forward on the *same tile batches* (same tiles, same
batch size, already normalised and on the device): no reading, filling, blending or writing. Figures are
megapixels of *output* per second; rounds alternate the three, the median run counts.

Peak memory: one fresh subprocess per scene size, so resident-set peaks do not mix. Each child warms up
on a one-tile scene, takes its baseline, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``),
starts ``tracemalloc`` and super-resolves the file. It reports the peak RSS above the baseline
(``VmHWM`` after the reset; ``resource.getrusage`` ``ru_maxrss`` minus the baseline too), the
``tracemalloc`` peak (Python and NumPy allocations; torch's CPU allocator and GDAL's block cache are only
in the RSS) and, on CUDA, ``torch.cuda.max_memory_allocated``. The children run with a fixed glibc mmap
threshold (``MALLOC_MMAP_THRESHOLD_``, setting ``malloc_mmap_threshold``; 0 leaves glibc's dynamic one),
which makes the RSS peak reproducible. Besides the two square scenes, a tall scene as wide as the small one
with the large one's area is measured: prediction holds one strip of tiles (tile rows x scene width) at a
time, so the width is what memory should depend on.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aerogan.bench.common import (
    ModelSpec,
    Settings,
    autocast,
    build_model,
    finish_child,
    maxrss_mb,
    median,
    reset_peak_rss,
    start_child,
    status_mb,
    synchronizer,
    to_memory_format,
)

__all__ = ["run_predict_benchmark", "scene_stats", "tile_batches", "write_scene"]


def write_scene(path: Path, array: np.ndarray) -> Path:
    """A (C, H, W) float32 array as a georeferenced, 256-px-tiled GeoTIFF."""
    import rasterio
    from affine import Affine

    c, h, w = array.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": c, "dtype": "float32", "crs": "EPSG:32633",
               "transform": Affine(20.0, 0, 500000.0, 0, -20.0, 5000000.0)}
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.float32))
    return path


def make_scene(bands: int, size: int, seed: int) -> np.ndarray:
    from datamodules.synthetic import generate_scene

    return generate_scene(bands, size, seed).numpy()


def scene_stats(array: np.ndarray) -> dict[str, Tensor]:
    mean = torch.from_numpy(array.reshape(array.shape[0], -1).mean(1)).float()
    std = torch.from_numpy(array.reshape(array.shape[0], -1).std(1)).float().clamp_min(1e-6)
    return {"input_mean": mean, "input_std": std, "target_mean": mean.clone(), "target_std": std.clone()}


def predict_model(spec: ModelSpec, stats: dict[str, Tensor], seed: int, device: str, memory_format: str) -> Any:
    model = build_model(spec, stats, seed, critic=False).eval().to(device)
    if memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    return model


def tile_batches(model: Any, array: np.ndarray, tile: int, overlap: int, batch: int, device: str, memory_format: str) -> list[Tensor]:
    """The tile batches the tiled prediction feeds the generator (strip by strip, ``batch`` tiles at most), normalised."""
    from aerogan.prediction.plan import TileGrid

    grid = TileGrid(array.shape[1], array.shape[2], tile, overlap)
    th, tw = grid.tile_h, grid.tile_w
    out = []
    with torch.no_grad():
        for r in grid.row_starts:
            for i in range(0, len(grid.col_starts), batch):
                cols = grid.col_starts[i : i + batch]
                x = torch.from_numpy(np.stack([array[:, r : r + th, c : c + tw] for c in cols])).to(device)
                out.append(to_memory_format(model.input_norm(x), memory_format))
    return out


def _raw_forward(model: Any, tiles: list[Tensor], settings: Settings) -> None:
    gen = model.inference_generator
    with torch.inference_mode(), autocast(settings.device, settings.precision):
        for x in tiles:
            gen(x)


def run_predict_benchmark(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    from aerogan.prediction import super_resolve_array, super_resolve_file

    spec, sync = settings.spec, synchronizer(settings.device)
    small, large = settings.predict_sizes
    out: dict[str, Any] = {"api": "aerogan.prediction.super_resolve_file / super_resolve_array", "tile": settings.tile,
                           "overlap": settings.overlap, "batch_size": settings.predict_batch, "scale": spec.scale,
                           "sizes_lr": [small, large], "formats": {}}
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        scenes = {}
        for size in (small, large):
            scenes[size] = write_scene(tmp / f"scene{size}.tif", make_scene(spec.bands, size, settings.seed + size))
        warm = write_scene(tmp / "warm.tif", make_scene(spec.bands, min(settings.tile, small), settings.seed + 1))
        array = _read(scenes[small])
        stats = scene_stats(array)
        out_pixels = (small * spec.scale) ** 2
        n_tiles = None
        for fmt in settings.memory_formats:
            model = predict_model(spec, stats, settings.seed, settings.device, fmt)
            tiles = tile_batches(model, array, settings.tile, settings.overlap, settings.predict_batch, settings.device, fmt)
            n_tiles = sum(t.shape[0] for t in tiles)
            kw = {"tile": settings.tile, "overlap": settings.overlap, "batch_size": settings.predict_batch, "device": settings.device}

            def run_file(model: Any = model, kw: dict[str, Any] = kw) -> None:
                with autocast(settings.device, settings.precision):
                    super_resolve_file(model, scenes[small], tmp / "out.tif", **kw)

            def run_array(model: Any = model, kw: dict[str, Any] = kw) -> None:
                with autocast(settings.device, settings.precision):
                    super_resolve_array(model, array, **kw)

            def run_raw(model: Any = model, tiles: list[Tensor] = tiles) -> None:
                _raw_forward(model, tiles, settings)

            runs = {"tiled_file": run_file, "tiled_array": run_array, "raw_forward": run_raw}
            times: dict[str, list[float]] = {k: [] for k in runs}
            names = list(runs)
            for r in range(settings.predict_rounds + 1):  # round 0: warm-up, dropped
                for name in names[r % 3:] + names[: r % 3]:
                    sync()
                    t0 = time.perf_counter()
                    runs[name]()
                    sync()
                    if r > 0:
                        times[name].append(time.perf_counter() - t0)
            med = {k: median(v) for k, v in times.items()}
            mpx = {k: out_pixels / v / 1e6 for k, v in med.items()}
            out["formats"][fmt] = {
                "median_s": med, "mpx_per_s": mpx, "times_s": times,
                "ratio": mpx["tiled_file"] / mpx["raw_forward"],
                "ratio_array": mpx["tiled_array"] / mpx["raw_forward"],
            }
            log(f"  predict [{fmt}] {small}² LR -> {small * spec.scale}² : file {mpx['tiled_file']:.3f} Mpx/s, "
                f"array {mpx['tiled_array']:.3f} Mpx/s, raw forward {mpx['raw_forward']:.3f} Mpx/s")
            del tiles
        best = max(out["formats"], key=lambda f: out["formats"][f]["mpx_per_s"]["tiled_file"])
        out["headline_format"] = best
        out.update(ratio=out["formats"][best]["ratio"], ratio_array=out["formats"][best]["ratio_array"],
                   mpx_per_s=out["formats"][best]["mpx_per_s"], throughput_scene_lr=small,
                   output_pixels=out_pixels, tiles=n_tiles,
                   computed_over_output_pixels=n_tiles * min(settings.tile, small) ** 2 / small**2)

        # the two square scenes, and a tall one as wide as the small one with the large one's area: the
        # prediction keeps one strip of tiles (tile rows x scene width) in memory, so width is what counts
        tall = f"{large * large // small}x{small}"
        scenes[tall] = write_scene(tmp / "tall.tif", np.concatenate([array] * (large * large // small**2), axis=1))
        labels = {f"{small}x{small}": scenes[small], f"{large}x{large}": scenes[large], tall: scenes[tall]}
        # one child at a time (their timings stay clean); --quick starts them together (peaks are per process)
        procs = {label: _start_memory_child(settings, stats, path, warm, tmp / f"mem{label}") for label, path in labels.items()} \
            if settings.quick else {}
        memory = {}
        for label, path in labels.items():
            proc = procs.get(label) or _start_memory_child(settings, stats, path, warm, tmp / f"mem{label}")
            memory[label] = m = finish_child(proc)
            log(f"  predict memory {label} LR: peak RSS +{m['peak_rss_above_baseline_mb']:.1f} MB, "
                f"tracemalloc peak {m['tracemalloc_peak_mb']:.1f} MB")
    a, b, c = (memory[k] for k in labels)

    def ratio(key: str, x: dict[str, Any], y: dict[str, Any]) -> float:
        return x[key] / max(y[key], 1e-9)

    out["memory"] = memory
    out["memory_sizes"] = list(labels)
    out["memory_ratio"] = ratio("peak_rss_above_baseline_mb", b, a)
    out["memory_ratio_tracemalloc"] = ratio("tracemalloc_peak_mb", b, a)
    out["memory_ratio_getrusage"] = ratio("maxrss_above_baseline_mb", b, a)
    out["memory_ratio_same_width"] = ratio("peak_rss_above_baseline_mb", c, a)
    out["memory_ratio_same_width_tracemalloc"] = ratio("tracemalloc_peak_mb", c, a)
    if "cuda_peak_mb" in a:
        out["memory_ratio_cuda"] = ratio("cuda_peak_mb", b, a)
    out["scene_area_ratio"] = (large / small) ** 2
    return out


def _read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read().astype(np.float32)


# ---------------------------------------------------------------------------------------------- memory child
def _start_memory_child(settings: Settings, stats: dict[str, Tensor], scene: Path, warm: Path, folder: Path) -> subprocess.Popen[str]:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "spec": asdict(settings.spec), "stats": {k: v.tolist() for k, v in stats.items()}, "seed": settings.seed,
        "device": settings.device, "precision": settings.precision, "memory_format": settings.memory_formats[0],
        "threads": settings.threads, "scene": str(scene), "warm": str(warm), "folder": str(folder),
        "tile": settings.tile, "overlap": settings.overlap, "batch_size": settings.predict_batch,
    }
    return start_child("aerogan.bench.predict", cfg, settings)


def child(cfg: dict[str, Any]) -> dict[str, Any]:
    from aerogan.prediction import super_resolve_file

    torch.set_num_threads(int(cfg["threads"]))
    spec = ModelSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["spec"].items()})
    stats = {k: torch.tensor(v) for k, v in cfg["stats"].items()}
    device = cfg["device"]
    model = predict_model(spec, stats, cfg["seed"], device, cfg["memory_format"])
    kw = {"tile": cfg["tile"], "overlap": cfg["overlap"], "batch_size": cfg["batch_size"], "device": device}
    folder = Path(cfg["folder"])
    sync = synchronizer(device)
    with autocast(device, cfg["precision"]):
        super_resolve_file(model, cfg["warm"], folder / "warm_out.tif", **kw)
    sync()
    gc.collect()
    base = status_mb("VmRSS") or maxrss_mb()
    reset = reset_peak_rss()
    base_maxrss = maxrss_mb()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        cuda_base = torch.cuda.memory_allocated(device)
    tracemalloc.start()
    t0 = time.perf_counter()
    with autocast(device, cfg["precision"]):
        super_resolve_file(model, cfg["scene"], folder / "scene_out.tif", **kw)
    sync()
    seconds = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = status_mb("VmHWM") if reset else None
    maxrss = maxrss_mb()
    res = {
        "baseline_rss_mb": base,
        "peak_rss_above_baseline_mb": (hwm - base) if hwm is not None else (maxrss - base),
        "peak_rss_source": "VmHWM after clear_refs" if hwm is not None else "ru_maxrss",
        "maxrss_above_baseline_mb": maxrss - base,
        "maxrss_before_run_mb": base_maxrss,
        "tracemalloc_peak_mb": traced / 2**20,
        "seconds_with_tracemalloc": seconds,
    }
    if cuda:
        res["cuda_peak_mb"] = (torch.cuda.max_memory_allocated(device) - cuda_base) / 2**20
    return res


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
