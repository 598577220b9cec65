"""Everything between a checkpoint and a written scene: plan, tiles, model, blending, files.

One concept per module, each importing only the ones listed before it; the multi-resolution modules
(:mod:`~aerogan.prediction.domain_shift`, :mod:`~aerogan.prediction.product`) read scenes through
:mod:`datamodules.band_catalog` (band groups from rasters, SAFE, STAC):

* :mod:`~aerogan.prediction.sources`: scene readers (GeoTIFF windows, arrays) and nodata masks;
* :mod:`~aerogan.prediction.plan`: scenes, output specs, tile grids, blend weights, strips per rank;
* :mod:`~aerogan.prediction.overlap`: the generator's measured receptive radius and the seamless overlap;
* :mod:`~aerogan.prediction.tiles`: the plan's tiles as a dataset, and each rank's loader;
* :mod:`~aerogan.prediction.sinks`: output files (GeoTIFF, ``.npy``, parts) written atomically, encoding;
* :mod:`~aerogan.prediction.assembler`: blending one scene's tiles strip by strip into finished rows;
* :mod:`~aerogan.prediction.run`: one rank's share of a plan, and rank zero's merge of the parts;
* :mod:`~aerogan.prediction.writer`: :class:`ScenePredictionWriter`, the callback behind ``aerogan predict``;
* :mod:`~aerogan.prediction.api`: ``load_model``, ``super_resolve_array``, ``super_resolve_file`` (no Trainer);
* :mod:`~aerogan.prediction.product`: ``super_resolve_product``, every band of a multi-resolution product
  on its finest grid (guided models, e.g. Sentinel-2 T2 and S6), one COG.

``super_resolve_product`` and ``ProductReport`` are loaded on first use (module ``__getattr__``), so that
``python -m aerogan.prediction.product`` runs the module once, as ``__main__``.
"""

from typing import Any

from aerogan.prediction.api import load_model, model_scale, run_plan, super_resolve_array, super_resolve_file
from aerogan.prediction.assembler import SceneAssembler
from aerogan.prediction.overlap import receptive_radius, seamless_overlap
from aerogan.prediction.plan import (
    OutputDtype,
    OutputSpec,
    PredictionPlan,
    PredictScene,
    TileGrid,
    blend_weights,
    make_plan,
    partition_strips,
)
from aerogan.prediction.run import PredictionRun, assemble_parts
from aerogan.prediction.sinks import (
    GeoTiffSink,
    MemorySink,
    NpySink,
    PartSink,
    Sink,
    gdal_cache,
    output_encoding,
)
from aerogan.prediction.sources import (
    ArraySource,
    Layout,
    RasterSource,
    SceneSource,
    invalid_mask,
    resolve_band_names,
)
from aerogan.prediction.tiles import PredictTiles, RankStripSampler, tile_loader
from aerogan.prediction.writer import ScenePredictionWriter

__all__ = [
    "ArraySource", "GeoTiffSink", "Layout", "MemorySink", "NpySink", "OutputDtype", "OutputSpec", "PartSink",
    "PredictScene", "PredictTiles", "PredictionPlan", "PredictionRun", "RankStripSampler", "RasterSource",
    "SceneAssembler", "ScenePredictionWriter", "SceneSource", "Sink", "TileGrid", "assemble_parts", "blend_weights",
    "gdal_cache", "invalid_mask", "load_model", "make_plan", "model_scale", "output_encoding", "partition_strips",
    "receptive_radius", "resolve_band_names", "run_plan", "seamless_overlap", "super_resolve_array",
    "super_resolve_file", "super_resolve_product", "ProductReport", "ModelConsistency", "tile_loader",
]

_LAZY = {"super_resolve_product", "ProductReport", "ModelConsistency"}


def __getattr__(name: str) -> Any:
    """``super_resolve_product``, ``ProductReport``, ``ModelConsistency`` from :mod:`aerogan.prediction.product`."""
    if name in _LAZY:
        from aerogan.prediction import product

        return getattr(product, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
