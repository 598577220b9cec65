"""Monitoring callbacks for Lightning: gradient norms, weight drift, topology snapshots, capacity.

Usable on their own in any Lightning project::

    from callbacks import CapacityMonitor, GradientNormMonitor, TopologySnapshot, WeightDriftMonitor
"""

from callbacks.capacity import CapacityMonitor
from callbacks.gradient_norm import GradientNormMonitor
from callbacks.topology import TopologySnapshot
from callbacks.weight_drift import WeightDriftMonitor

__all__ = ["CapacityMonitor", "GradientNormMonitor", "TopologySnapshot", "WeightDriftMonitor"]
from callbacks.theory import TwoLayerTheoryMonitor  # noqa: E402

__all__ += ["TwoLayerTheoryMonitor"]
