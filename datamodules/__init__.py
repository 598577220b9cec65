"""Datamodules: synthetic scenes (the embedded default), GeoTIFF and array scenes, digits."""

from datamodules.degradation import Degradation
from datamodules.super_resolution import SuperResolutionDataModule
from datamodules.synthetic import SyntheticDataModule

__all__ = ["Degradation", "SuperResolutionDataModule", "SyntheticDataModule"]
from datamodules.digits import DigitsDataModule  # noqa: E402

__all__ += ["DigitsDataModule"]
from datamodules.arrays import ArrayDataModule  # noqa: E402
from datamodules.geotiff import GeoTiffDataModule  # noqa: E402

__all__ += ["ArrayDataModule", "GeoTiffDataModule"]
