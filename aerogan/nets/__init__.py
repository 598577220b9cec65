"""Generators and critics: multispectral SR nets (single-input or guided), the two-layer theory nets, the study nets."""

from aerogan.nets.critic import MLPCritic, PatchCritic
from aerogan.nets.dsen2 import DSen2
from aerogan.nets.families import CNNDenseNet, CNNResNet, MLPDeep
from aerogan.nets.guidance import GuideFusion
from aerogan.nets.projection import ConsistencyProjection
from aerogan.nets.rdn import RDNGenerator
from aerogan.nets.srresnet import SRResNet
from aerogan.nets.two_layer import TwoLayerCritic, TwoLayerNet
from aerogan.nets.upsample import Upsampler

__all__ = [
    "CNNDenseNet",
    "CNNResNet",
    "ConsistencyProjection",
    "DSen2",
    "GuideFusion",
    "MLPCritic",
    "MLPDeep",
    "PatchCritic",
    "RDNGenerator",
    "SRResNet",
    "TwoLayerCritic",
    "TwoLayerNet",
    "Upsampler",
]
