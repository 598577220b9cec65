"""Datamodules: synthetic scenes (the embedded default), GeoTIFF and array scenes, digits."""

from datamodules.arrays import ArrayDataModule
from datamodules.degradation import Degradation
from datamodules.digits import DigitsDataModule
from datamodules.geotiff import GeoTiffDataModule
from datamodules.multires import MultiResolutionDataModule as MultiResolutionDataModule
from datamodules.super_resolution import SuperResolutionDataModule
from datamodules.synthetic import SyntheticDataModule

__all__ = [
    "ArrayDataModule", "Degradation", "DigitsDataModule", "GeoTiffDataModule", "SuperResolutionDataModule",
    "SyntheticDataModule",
]
