"""The documented Python API for super-resolving scenes without a Trainer (see :mod:`aerogan.prediction.api`)::

    from aerogan.inference import load_model, super_resolve_array, super_resolve_file, super_resolve_product

``super_resolve_product`` writes every band of a multi-resolution product (Sentinel-2 10/20/60 m) on its
finest grid with guided models (:mod:`aerogan.prediction.product`); ``sharpen`` first fits those models on
the product itself, within a time budget (:mod:`aerogan.sharpen`).
"""

from aerogan.prediction.api import load_model, super_resolve_array, super_resolve_file
from aerogan.prediction.product import ProductReport, super_resolve_product
from aerogan.sharpen import SharpenRecipe, SharpenReport, sharpen

__all__ = [
    "ProductReport", "SharpenRecipe", "SharpenReport", "load_model", "sharpen", "super_resolve_array", "super_resolve_file",
    "super_resolve_product",
]
