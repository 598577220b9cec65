"""Monitoring callbacks for Lightning: gradient norms, weight drift, topology snapshots, capacity.

Usable on their own in any Lightning project::

    from callbacks import CapacityMonitor, GradientNormMonitor, TopologySnapshot, WeightDriftMonitor
"""

from callbacks.capacity import CapacityMonitor
from callbacks.gradient_norm import GradientNormMonitor
from callbacks.theory import TwoLayerTheoryMonitor
from callbacks.topology import TopologySnapshot
from callbacks.weight_drift import WeightDriftMonitor

__all__ = ["CapacityMonitor", "GradientNormMonitor", "TopologySnapshot", "TwoLayerTheoryMonitor", "WeightDriftMonitor"]
