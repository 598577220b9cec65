"""Datamodules: synthetic scenes (the embedded default), GeoTIFF and array scenes, multi-resolution scenes
(Sentinel-2 10/20/60 m), digits; :mod:`datamodules.contract` states what a super-resolution datamodule provides."""

from datamodules.arrays import ArrayDataModule
from datamodules.contract import SuperResolutionData, check_datamodule
from datamodules.degradation import Degradation
from datamodules.digits import DigitsDataModule
from datamodules.geotiff import GeoTiffDataModule
from datamodules.multires import MultiResolutionDataModule
from datamodules.super_resolution import SuperResolutionDataModule
from datamodules.synthetic import SyntheticDataModule

__all__ = [
    "ArrayDataModule", "Degradation", "DigitsDataModule", "GeoTiffDataModule", "MultiResolutionDataModule",
    "SuperResolutionData", "SuperResolutionDataModule", "SyntheticDataModule", "check_datamodule",
]
