"""Super-resolve arrays and whole raster scenes from Python (notebooks), without a Trainer.

Same tiling, blending, nodata handling and atomic writing as ``aerogan predict``, on one device::

    from aerogan.inference import load_model, super_resolve_array, super_resolve_file

    model = load_model("runs/landsat7_x2/version_0/checkpoints/last.ckpt")
    sr = super_resolve_array(model, lr, tile=256, overlap=32)          # (C, H, W) -> (C_out, sH, sW)
    super_resolve_file(model, "scene.tif", "scene_x2.tif", tile=512, overlap=64)

Inputs are in physical units (the model normalises with the statistics stored in its checkpoint).
Invalid input pixels (nodata, NaN) are filled with the model's input band means by its ``predict_step``
(as in ``aerogan predict``) and come out as NaN (arrays) or nodata (files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import aerogan.nets  # noqa: F401 - class paths of generators in checkpoints
from aerogan.prediction.overlap import seamless_overlap
from aerogan.prediction.plan import (
    DEFAULT_BLOCK_WIDTH,
    OutputDtype,
    OutputSpec,
    PredictionPlan,
    PredictScene,
    make_plan,
)
from aerogan.prediction.run import PredictionRun
from aerogan.prediction.sinks import gdal_cache
from aerogan.prediction.sources import ArraySource, Layout, RasterSource, resolve_band_names
from aerogan.prediction.tiles import PredictTiles
from aerogan.super_resolution import SuperResolution


def load_model(model_or_checkpoint: SuperResolution | str | os.PathLike, map_location: str | torch.device | None = None) -> SuperResolution:
    """A :class:`SuperResolution` from a checkpoint written by ``aerogan fit`` (switched to eval mode), or ``model``
    itself unchanged when one is given (its train/eval mode is the caller's)."""
    if isinstance(model_or_checkpoint, SuperResolution):
        return model_or_checkpoint
    path = Path(model_or_checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    model = SuperResolution.load_from_checkpoint(path, map_location=map_location or "cpu", weights_only=False)
    if not model.input_norm.initialized:
        raise ValueError(f"{path}: the checkpoint holds no band statistics (was it written by aerogan fit?)")
    return model.eval()


def _device(model: SuperResolution, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device


def model_scale(model: SuperResolution) -> int:
    """The model's integer scale (checkpoint metadata, else the generator's ``scale``)."""
    scale = (model.metadata or {}).get("scale") or getattr(model.generator, "scale", None)
    if scale is None:
        raise ValueError("cannot tell the model's scale (no checkpoint metadata and no generator.scale)")
    return int(scale)


def run_plan(model: SuperResolution, plan: PredictionPlan, batch_size: int = 4, device: str | torch.device | None = None,
             memory: bool = False) -> PredictionRun:
    """Predict every tile of ``plan`` on one device and write the outputs (committed unless ``memory``)."""
    dev = _device(model, device)
    model = model.to(dev)
    run = PredictionRun(plan, band_names=(model.metadata or {}).get("target_band_names"), memory=memory)
    tiles = PredictTiles(plan, batch_size)
    was_training = model.training
    model.eval()
    try:
        with gdal_cache(plan), torch.inference_mode():
            for k in range(len(tiles)):
                item = tiles[k]
                batch = {"input": item["input"].to(dev), "valid": item["valid"].to(dev)}
                y = model.predict_step(batch, k).float().cpu().numpy()
                run.add(item["scene"], item["strip"], item["first"], y, item["valid"].numpy(), item["nonfinite"])
            if not memory:
                run.commit()
            else:
                run.warn_nonfinite()
    except BaseException:
        run.abort()
        raise
    finally:
        model.train(was_training)
    return run


def _overlap(model: SuperResolution, tile: int, overlap: int | None) -> int:
    """``overlap``, or the smallest seamless one for this model's generator when it is None."""
    if overlap is not None:
        return overlap
    return seamless_overlap(model.inference_generator, model.input_norm.mean.numel(), model_scale(model), tile)


def _check_channels(model: SuperResolution, count: int, where: str) -> None:
    n_in = model.input_norm.mean.numel()
    if count != n_in:
        names = (model.metadata or {}).get("input_band_names")
        raise ValueError(f"{where}: {count} band(s) given, but the model takes {n_in} ({names})")


def super_resolve_array(
    model: SuperResolution | str | os.PathLike,
    array: np.ndarray,
    tile: int = 256,
    overlap: int | None = None,
    layout: Layout = "channels_first",
    nodata: float | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    block_width: int | None = DEFAULT_BLOCK_WIDTH,
) -> np.ndarray:
    """Super-resolve one scene held in memory: (C, H, W) -> (C_out, H*s, W*s) float32 (or channels last).

    Pixels whose input is ``nodata`` or NaN come out as NaN. ``overlap / 4`` input pixels are dropped at
    every inner tile edge; the default (``None``) measures the generator's receptive radius and takes
    the smallest seamless overlap (:func:`aerogan.prediction.overlap.seamless_overlap`). Scenes wider than
    ``block_width`` output px are made in block columns (:func:`aerogan.prediction.plan.block_columns`).
    """
    model = load_model(model)
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[None] if layout == "channels_first" else a[..., None]
    if a.ndim != 3:
        raise ValueError(f"super_resolve_array expects one scene (C, H, W) or (H, W, C), got shape {a.shape}")
    src = ArraySource(a, None, layout, nodata=nodata)
    _check_channels(model, src.count, "array")
    spec = OutputSpec(path=Path("<memory>"), format="npy", height=src.height, width=src.width)
    overlap = _overlap(model, tile, overlap)
    plan = make_plan([PredictScene(src, list(range(src.count)), 0)], [spec], model_scale(model), tile, overlap,
                     block_width=block_width)
    out = run_plan(model, plan, batch_size, device, memory=True).result()
    return out.transpose(1, 2, 0) if layout == "channels_last" else out


def _input_bands(model: SuperResolution, src: RasterSource, input_bands: Sequence[int | str] | None) -> list[int]:
    n_in = model.input_norm.mean.numel()
    names = (model.metadata or {}).get("input_band_names") or []
    if input_bands is not None:
        bands = resolve_band_names(list(input_bands), src.descriptions, "input_bands", src.name)
    elif src.has_descriptions and names and all(n in src.descriptions for n in names):
        bands = [src.descriptions.index(n) for n in names]
    elif src.count == n_in:
        bands = list(range(src.count))
    else:
        raise ValueError(
            f"{src.name}: {src.count} band(s), the model takes {n_in} ({names}); pass input_bands=[...] to choose them"
        )
    bad = [b for b in bands if not 0 <= b < src.count]
    if bad:
        raise ValueError(f"{src.name}: input band(s) {bad} do not exist (the file has {src.count} bands)")
    _check_channels(model, len(bands), src.name)
    return bands


def super_resolve_file(
    model: SuperResolution | str | os.PathLike,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    tile: int = 256,
    overlap: int | None = None,
    input_bands: Sequence[int | str] | None = None,
    nodata: float | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    output_dtype: OutputDtype = "float32",
    block_width: int | None = DEFAULT_BLOCK_WIDTH,
) -> Path:
    """Super-resolve a whole raster ``src`` into the GeoTIFF ``dst`` (strip by strip within block columns of
    ``block_width`` output px, so memory follows the block, not the width; written atomically).

    The output has ``src``'s CRS and bounds, its pixel size divided by the scale, the model's target band
    names as band descriptions, and nodata where the input was nodata (see
    :mod:`aerogan.prediction.sinks` for the encoding). ``input_bands``: indices or descriptions of the
    bands to feed (default: the model's input band names if the file has them, else all bands).
    """
    model = load_model(model)
    source = RasterSource(src, nodata=nodata, in_memory=False)
    try:
        bands = _input_bands(model, source, input_bands)
        spec = OutputSpec(
            path=Path(dst), format="GTiff", height=source.height, width=source.width, input_dtype=source.dtype,
            input_nodata=source.nodata, crs=source.crs, transform=source.transform, source_name=source.name,
        )
        plan = make_plan([PredictScene(source, bands, 0)], [spec], model_scale(model), tile, _overlap(model, tile, overlap),
                         output_dtype, block_width)
        run_plan(model, plan, batch_size, device)
    finally:
        source.close()
    return Path(dst)
