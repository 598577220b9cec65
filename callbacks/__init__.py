"""Monitoring callbacks for Lightning: gradient norms, weight drift, topology snapshots, capacity, theory,
and the epochs-to-threshold early stopping.

Usable on their own in any Lightning project::

    from callbacks import CapacityMonitor, GradientNormMonitor, TopologySnapshot, WeightDriftMonitor
"""

from callbacks.capacity import CapacityMonitor
from callbacks.epochs_to_threshold import EpochsToThreshold
from callbacks.gradient_norm import GradientNormMonitor
from callbacks.theory import TwoLayerTheoryMonitor
from callbacks.topology import TopologySnapshot
from callbacks.weight_drift import WeightDriftMonitor

__all__ = [
    "CapacityMonitor",
    "EpochsToThreshold",
    "GradientNormMonitor",
    "TopologySnapshot",
    "TwoLayerTheoryMonitor",
    "WeightDriftMonitor",
]
