"""Generators and critics for adversarially regularized multispectral super-resolution."""

from aerogan.nets.critic import MLPCritic, PatchCritic
from aerogan.nets.dsen2 import DSen2
from aerogan.nets.rdn import RDNGenerator
from aerogan.nets.srresnet import SRResNet
from aerogan.nets.upsample import Upsampler

__all__ = ["DSen2", "MLPCritic", "PatchCritic", "RDNGenerator", "SRResNet", "Upsampler"]
