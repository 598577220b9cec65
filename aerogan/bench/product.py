"""5. Whole products: peak memory and throughput of :func:`aerogan.prediction.super_resolve_product` against size.

A Sentinel-2-like product (10, 20 and 60 m group rasters, uint16 digital numbers, band names as descriptions)
is made ``k x k`` times larger by mirrored mosaics (each copy flipped so that the mosaic stays continuous):
1x, 4x and 16x the area. The base is a synthetic 12-band scene (:func:`datamodules.synthetic.generate_scene`,
the embedded default) or the group rasters given with ``--product-sources``. The models are a T2 (the six
20 m bands, guided by the four 10 m bands, x2) and an S6 (the two 60 m bands, guided by the 10 and 20 m
bands, x6) DSen2 of the shipped configs' size (64 features, 6 blocks), seeded, untrained: time and memory do
not depend on the weights.

On a GPU (``--device cuda``) the sizes are a 1098 px product and a whole Sentinel-2 tile (10980 x 10980, its 10 x 10
mosaic), in the suite's precision and memory format. One fresh subprocess per size, so resident-set peaks do not mix. Each child builds both models, makes a
warm-up product of the base scene, takes its baseline RSS, resets the kernel's peak mark and makes the
product; it reports the peak RSS of the process (``VmHWM``: what the user sees) and above the baseline, and
the seconds. The reference is the raw generator forward on the same tiles, timed two ways. In place: the child
wraps each model's ``super_resolve`` and times every batch the product feeds it (synchronised on a GPU); the
throughput ratio (the headline) is those seconds over the product's, so what it leaves out is exactly the
product's own work (reading, filling, blending, consistency, writing), measured in the same run. A shared
machine's bursts then slow both sides of the ratio alike, where two separate runs can each catch a different
burst (1200 px on 2 cores read 0.75, 0.90 and 0.93 that way). Replayed: the recorded batch shapes go through
the generator alone afterwards (already normalised, random inputs); ``replayed_ratio`` is that over the
product's seconds and ``replay_over_in_place`` shows whether the network itself ran slower inside the product.

The children run as the ``aerogan`` command does, with freed memory kept for reuse
(:func:`aerogan.allocator.reuse_freed_memory`): its retained heap is part of the peak RSS.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aerogan.allocator import reuse_freed_memory
from aerogan.bench.common import (
    Settings,
    autocast,
    finish_child,
    maxrss_mb,
    reset_peak_rss,
    start_child,
    status_mb,
    synchronizer,
)

__all__ = ["GROUPS", "mirrored_mosaic", "run_product_benchmark", "synthetic_product", "write_groups"]

#: Sentinel-2 bands per resolution (m), in the order the group rasters hold them.
GROUPS = {10: ["B02", "B03", "B04", "B08"], 20: ["B05", "B06", "B07", "B8A", "B11", "B12"], 60: ["B01", "B09"]}


# ---------------------------------------------------------------------------------------------- data
def synthetic_product(size: int, seed: int) -> dict[int, tuple[list[str], np.ndarray]]:
    """Group arrays (uint16 DN, never 0: 0 is Sentinel-2's nodata) of a synthetic ``size x size`` 10 m product."""
    from datamodules.synthetic import generate_scene

    if size % 6:
        raise ValueError(f"product size {size} must be a multiple of 6 (the 60 m grid)")
    names = [b for res in (10, 20, 60) for b in GROUPS[res]]
    fields = generate_scene(len(names), size, seed).numpy().astype(np.float64)
    out = {}
    k = 0
    for res in (10, 20, 60):
        f = res // 10
        n = len(GROUPS[res])
        block = fields[k : k + n].reshape(n, size // f, f, size // f, f).mean((2, 4))
        out[res] = (list(GROUPS[res]), np.clip(np.rint(block * 10000) + 1, 1, 65535).astype(np.uint16))
        k += n
    return out


def read_groups(paths: Sequence[str | os.PathLike]) -> dict[int, tuple[list[str], np.ndarray]]:
    """Group rasters (one file per resolution, bands named by their descriptions), keyed by resolution in m."""
    import rasterio

    out = {}
    for p in paths:
        with rasterio.open(p) as ds:
            res = round(ds.res[0])
            if res in out:
                raise ValueError(f"{p}: a second group at {res} m (give one file per resolution)")
            names = [d or "" for d in ds.descriptions]
            if not all(names):
                raise ValueError(f"{p}: every band needs its Sentinel-2 name as description (got {names})")
            out[res] = (names, ds.read())
    if sorted(out) != [10, 20, 60]:
        raise ValueError(f"--product-sources: expected 10, 20 and 60 m group rasters, got {sorted(out)} m")
    return out


def mirrored_mosaic(array: np.ndarray, k: int) -> np.ndarray:
    """``array`` (C, H, W) tiled ``k x k``, odd copies flipped: continuous across the seams, ``k^2`` times the area."""
    def copy(i: int, j: int) -> np.ndarray:
        return array[:, :: -1 if i % 2 else 1, :: -1 if j % 2 else 1]

    rows = [np.concatenate([copy(i, j) for j in range(k)], 2) for i in range(k)]
    return np.ascontiguousarray(np.concatenate(rows, 1))


def write_groups(folder: Path, groups: dict[int, tuple[list[str], np.ndarray]], k: int = 1) -> list[Path]:
    """The ``k x k`` mirrored mosaic of every group as tiled GeoTIFFs (UTM 33N, nodata 0); returns the paths."""
    import rasterio
    from affine import Affine

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for res, (names, data) in sorted(groups.items()):
        arr = mirrored_mosaic(data, k)
        profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0],
                   "dtype": arr.dtype.name, "crs": "EPSG:32633", "nodata": 0,
                   "transform": Affine(float(res), 0, 300000.0, 0, -float(res), 5000040.0)}
        if min(arr.shape[1:]) >= 256:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
        path = folder / f"S2_{res}m.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr)
            for i, b in enumerate(names, start=1):
                dst.set_band_description(i, b)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------- models
def product_models(groups: dict[int, tuple[list[str], np.ndarray]], features: int, blocks: int, seed: int) -> list[Any]:
    """T2 and S6 DSen2 generators with the scene's band statistics and multi-resolution metadata (untrained)."""
    from aerogan import SuperResolution
    from aerogan.nets import DSen2

    def stats(res: int) -> tuple[torch.Tensor, torch.Tensor]:
        data = groups[res][1].reshape(len(groups[res][0]), -1).astype(np.float64)
        return torch.tensor(data.mean(1), dtype=torch.float32), torch.tensor(data.std(1), dtype=torch.float32).clamp_min(1.0)

    def guided(target: int, guides: list[int], scale: int) -> Any:
        torch.manual_seed(seed + scale)
        names = groups[target][0]
        ratios = [g // guides[0] for g in guides]
        gen = DSen2(in_channels=len(names), out_channels=len(names), scale=scale, num_features=features, num_blocks=blocks,
                    guide_channels=[len(groups[g][0]) for g in guides], guide_ratios=ratios)
        m = SuperResolution(generator=gen, critic=None, objective="supervised", num_panels=0)
        mean, std = stats(target)
        m.input_norm.set(mean, std)
        m.target_norm.set(mean.clone(), std.clone())
        for norm, g in zip(m.guide_norms, guides, strict=True):
            norm.set(*stats(g))
        m.metadata = {"scale": scale, "target_band_names": list(names), "guide_band_names": [list(groups[g][0]) for g in guides],
                      "guide_ratios": ratios, "input_band_names": list(names), "target_in_input": list(range(len(names))),
                      "data_range": 10000.0}
        return m.eval()

    return [guided(20, [10], 2), guided(60, [10, 20], 6)]


# ---------------------------------------------------------------------------------------------- the child
def _record_batches(model: Any, sync: Callable[[], None]) -> tuple[list[tuple[tuple[int, ...], list[tuple[int, ...]]]], list[float]]:
    """Wrap ``model.super_resolve`` to record the shapes of every batch (target, guides) it is given and the seconds
    each call took in place (synchronised on a GPU)."""
    shapes: list[tuple[tuple[int, ...], list[tuple[int, ...]]]] = []
    seconds: list[float] = []
    real = model.super_resolve

    def recording(x: torch.Tensor, guides: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        shapes.append((tuple(x.shape), [tuple(g.shape) for g in guides]))
        sync()
        t0 = time.perf_counter()
        out = real(x, guides)
        sync()
        seconds.append(time.perf_counter() - t0)
        return out

    model.super_resolve = recording
    return shapes, seconds


def child(cfg: dict[str, Any]) -> dict[str, Any]:
    from aerogan.prediction.product import super_resolve_product

    reused = reuse_freed_memory()  # as the aerogan command runs
    torch.set_num_threads(int(cfg["threads"]))
    device, precision = cfg["device"], cfg["precision"]
    base = read_groups(cfg["base"])
    models = product_models(base, cfg["features"], cfg["blocks"], cfg["seed"])
    kw = {"tile": cfg["tile"], "batch_size": cfg["batch_size"], "device": device, "block_width": cfg["block_width"],
          "precision": precision, "channels_last": cfg["channels_last"]}
    folder = Path(cfg["folder"])
    sync = synchronizer(device)
    super_resolve_product(models, cfg["base"], folder / "warm.tif", **kw)
    sync()
    gc.collect()
    baseline = status_mb("VmRSS") or maxrss_mb()
    reset = reset_peak_rss()
    recorded = [_record_batches(m, sync) for m in models]
    batches = [shapes for shapes, _ in recorded]
    t0 = time.perf_counter()
    report = super_resolve_product(models, cfg["scene"], folder / "product.tif", **kw)
    sync()
    seconds = time.perf_counter() - t0
    hwm = status_mb("VmHWM") if reset else None
    peak = hwm if hwm is not None else maxrss_mb()
    # the raw forward on the same tiles: every recorded batch through the generator alone, inputs normalised
    gen = torch.Generator().manual_seed(0)
    tiles = [0, 0]
    t_raw = 0.0
    for i, (model, shapes) in enumerate(zip(models, batches, strict=True)):
        net = model.inference_generator
        fmt = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
        for x_shape, g_shapes in shapes:
            x = torch.randn(x_shape, generator=gen).to(device).contiguous(memory_format=fmt)
            guides = tuple(torch.randn(s, generator=gen).to(device).contiguous(memory_format=fmt) for s in g_shapes)
            sync()
            t1 = time.perf_counter()
            with torch.inference_mode(), autocast(device, precision):
                net(x, guides)
            sync()
            t_raw += time.perf_counter() - t1
            tiles[i] += x_shape[0]
    in_place = sum(sum(t) for _, t in recorded)
    return {
        "seconds": seconds, "forward_seconds": in_place, "throughput_ratio": in_place / seconds,
        "raw_forward_seconds": t_raw, "replayed_ratio": t_raw / seconds, "replay_over_in_place": t_raw / in_place,
        "peak_rss_mb": peak, "baseline_rss_mb": baseline, "peak_rss_above_baseline_mb": peak - baseline,
        "reuse_freed_memory": reused, "peak_rss_source": "VmHWM after clear_refs" if hwm is not None else "ru_maxrss",
        "tiles": {"T2": tiles[0], "S6": tiles[1]}, "batches": {"T2": len(batches[0]), "S6": len(batches[1])},
        "overlap_in": [m.overlap for m in report.models], "tile_in": [m.tile for m in report.models],
    }


# ---------------------------------------------------------------------------------------------- the benchmark
def run_product_benchmark(settings: Settings, log: Callable[[str], None] = print,
                          sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Peak RSS and s per output Mpx of a T2 + S6 product at 1x, 4x and 16x the base area (one child per size)."""
    quick, gpu = settings.quick, settings.device.startswith("cuda")
    features, blocks = (8, 1) if quick else (64, 6)
    # CPU: the base 600 px product at 1x, 4x, 16x; GPU: also a whole Sentinel-2 tile (10 x 10 mosaic of 1098 px)
    mosaics = (1, 2) if quick else ((1, 2, 10) if gpu else (1, 2, 4))
    base_size = 96 if quick else (1098 if gpu else 600)
    tile, block_width = (96, 256) if quick else (512, 2048)
    channels_last = settings.memory_formats[0] == "channels_last"
    out: dict[str, Any] = {
        "api": "aerogan.prediction.super_resolve_product", "models": f"T2 x2 + S6 x6 DSen2 {features} features {blocks} blocks",
        "tile": tile, "batch_size": settings.predict_batch, "block_width": block_width, "threads": settings.threads,
        "precision": settings.precision, "channels_last": channels_last, "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        groups = read_groups(sources) if sources else synthetic_product(base_size, settings.seed)
        out["base"] = "--product-sources " + " ".join(map(str, sources)) if sources else "synthetic (datamodules.synthetic)"
        base = write_groups(tmp / "base", groups)
        for k in mosaics:
            scene = write_groups(tmp / f"x{k}", groups, k)
            size = groups[10][1].shape[1] * k, groups[10][1].shape[2] * k
            cfg = {"base": [str(p) for p in base], "scene": [str(p) for p in scene], "folder": str(tmp / f"x{k}"),
                   "device": settings.device, "precision": settings.precision, "threads": settings.threads, "seed": settings.seed,
                   "features": features, "blocks": blocks, "tile": tile, "batch_size": settings.predict_batch,
                   "block_width": block_width, "channels_last": channels_last}
            r = finish_child(start_child("aerogan.bench.product", cfg, settings, fixed_mmap_threshold=False), "product benchmark child")
            mpx = size[0] * size[1] / 1e6
            r.update(area=k * k, output=f"{size[0]} x {size[1]} x 12", s_per_mpx=r["seconds"] / mpx,
                     forward_s_per_mpx=r["forward_seconds"] / mpx, raw_s_per_mpx=r["raw_forward_seconds"] / mpx)
            out["sizes"][f"{k * k}x"] = r
            log(f"  product {r['output']}: {r['seconds']:.1f} s, {r['s_per_mpx']:.2f} s/Mpx (forward in place {r['forward_s_per_mpx']:.2f}, "
                f"ratio {r['throughput_ratio']:.3f}; replayed {r['raw_s_per_mpx']:.2f}, ratio {r['replayed_ratio']:.3f}), peak RSS {r['peak_rss_mb']:.0f} MiB (+{r['peak_rss_above_baseline_mb']:.0f})")
    sizes = list(out["sizes"].values())
    first, last = sizes[0], sizes[-1]
    out["peak_rss_ratio"] = last["peak_rss_mb"] / first["peak_rss_mb"]
    out["throughput_ratio"] = min(s["throughput_ratio"] for s in sizes)
    out["throughput_ratio_largest"] = last["throughput_ratio"]
    out["replayed_ratio"] = min(s["replayed_ratio"] for s in sizes)
    out["core_seconds_per_mpx"] = {k: s["s_per_mpx"] * (settings.threads if not gpu else 1) for k, s in out["sizes"].items()}
    out["tiles_over_whole_scene_grid"] = {
        key: {m: s["tiles"][m] / _grid_tiles(s, m, tile) for m in ("T2", "S6")} for key, s in out["sizes"].items()
    }
    return out


def _grid_tiles(size: dict[str, Any], model: str, tile: int) -> int:
    """Tiles of one whole-scene tiling (no block columns) of ``model``: the halo's share of the work shows against it."""
    from aerogan.prediction.plan import TileGrid

    i = 0 if model == "T2" else 1
    scale = 2 if model == "T2" else 6
    h, w = (int(v) for v in size["output"].split(" x ")[:2])
    grid = TileGrid(h // scale, w // scale, size["tile_in"][i], size["overlap_in"][i])
    return len(grid.row_starts) * len(grid.col_starts)


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
