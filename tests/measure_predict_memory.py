"""Peak memory of whole-scene prediction versus scene size, at a fixed tile size (a script, not a test).

Each measurement runs in a fresh process: it builds a small SRResNet, records its resident memory,
super-resolves a synthetic GeoTIFF x2 (through ``Trainer.predict`` with a ``GeoTiffDataModule``, as
``aerogan predict`` does, or through :func:`aerogan.prediction.super_resolve_file`), and reports the
peak resident memory above that baseline (``ru_maxrss``) and the peak of Python/NumPy allocations
(``tracemalloc``; torch's own buffers are not traced).

    python tests/measure_predict_memory.py --tile 128 --overlap 32 --sizes 512x512 1024x1024 2048x512
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(path: str, tile: int, overlap: int, mode: str) -> None:
    import tracemalloc

    import lightning as L
    import torch

    from aerogan import SuperResolution
    from aerogan.nets import SRResNet
    from aerogan.prediction import super_resolve_file
    from datamodules import GeoTiffDataModule

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = SuperResolution(generator=SRResNet(3, 3, 2, num_features=16, num_blocks=2), critic=None, objective="supervised", num_panels=0)
    model.input_norm.set(torch.full((3,), 0.3), torch.full((3,), 0.1))
    model.target_norm.set(torch.full((3,), 0.3), torch.full((3,), 0.1))
    model.metadata = {"scale": 2}
    out = Path(path).with_name(Path(path).stem + "_out")
    # warm up torch/rasterio allocators on a tiny scene so the baseline includes them
    tiny = Path(path).with_name("tiny.tif")
    super_resolve_file(model, tiny, out / "tiny_x2.tif", tile=tile, overlap=overlap)
    base = _rss_mb()
    tracemalloc.start()
    if mode == "api":
        super_resolve_file(model, path, out / "scene_x2.tif", tile=tile, overlap=overlap, batch_size=4)
    else:
        dm = GeoTiffDataModule(predict_paths=[path], tile=tile, overlap=overlap, output_dir=str(out), predict_batch_size=4,
                               patch_size=16, stats_cache_dir=str(out / "cache"))
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
                            enable_model_summary=False)
        trainer.predict(model, datamodule=dm)
    _, traced_peak = tracemalloc.get_traced_memory()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"baseline_rss_mb": base, "peak_rss_mb": peak, "peak_above_baseline_mb": peak - base,
                      "tracemalloc_peak_mb": traced_peak / 2**20}))


def make_scene(path: Path, height: int, width: int) -> None:
    """A 3-band float32 GeoTIFF written strip by strip (the generator itself stays small)."""
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "float32", "nodata": -1.0,
               "crs": "EPSG:32633", "transform": Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0), "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, height, 256):
            h = min(256, height - r)
            yy, xx = np.mgrid[r : r + h, 0:width]
            block = np.stack([0.3 + 0.1 * np.sin(xx / (7 + b) + yy / (11 + b)) for b in range(3)])
            block += 0.01 * rng.standard_normal(block.shape)
            dst.write(block.astype("float32"), window=Window(0, r, width, h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--sizes", nargs="+", default=["512x512", "1024x1024", "2048x512"], help="HEIGHTxWIDTH of the LR scenes")
    ap.add_argument("--mode", choices=["trainer", "api"], default="trainer")
    ap.add_argument("--child", nargs=4, metavar=("PATH", "TILE", "OVERLAP", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), args.child[3])
        return
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            h, w = (int(v) for v in size.split("x"))
            folder = Path(tmp) / size
            folder.mkdir()
            make_scene(folder / "tiny.tif", 64, 64)
            make_scene(folder / "scene.tif", h, w)
            proc = subprocess.run([sys.executable, __file__, "--child", str(folder / "scene.tif"), str(args.tile), str(args.overlap), args.mode],
                                  capture_output=True, text=True, env=env, cwd=REPO)
            if proc.returncode:
                raise SystemExit(proc.stderr[-3000:])
            results[size] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[size]
            print(f"{size:>10} LR -> x2: peak RSS {r['peak_rss_mb']:.0f} MB (baseline {r['baseline_rss_mb']:.0f} MB, "
                  f"+{r['peak_above_baseline_mb']:.1f} MB), tracemalloc peak {r['tracemalloc_peak_mb']:.1f} MB", flush=True)
    first = results[args.sizes[0]]
    for size in args.sizes[1:]:
        r = results[size]
        print(f"ratio {size} / {args.sizes[0]}: above-baseline RSS {r['peak_above_baseline_mb'] / max(first['peak_above_baseline_mb'], 1e-9):.2f}, "
              f"tracemalloc {r['tracemalloc_peak_mb'] / max(first['tracemalloc_peak_mb'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
