"""Datamodules: synthetic scenes (the embedded default), GeoTIFF and array scenes, digits."""

from datamodules.degradation import Degradation
from datamodules.super_resolution import SuperResolutionDataModule
from datamodules.synthetic import SyntheticDataModule

__all__ = ["Degradation", "SuperResolutionDataModule", "SyntheticDataModule"]
