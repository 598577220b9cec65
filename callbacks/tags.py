"""TensorBoard tag names written by the monitors and read back by ``aerogan report``: one place for both.

Each monitor writes under its own prefix; the helpers build the full tags so that a writer and a
reader can never disagree on a spelling.
"""

from __future__ import annotations

GRAD_NORM = "grad_norm"
GRAD_HIST = "grad_hist"
WEIGHT_DRIFT = "weight_drift"
TOPOLOGY = "topology"
CAPACITY = "capacity"
THEORY = "theory"

#: Loss-term labels of the gradient-norm monitor: reaction = supervised term, diffusion = adversarial term.
SUPERVISED_TERM = "supervised"
ADVERSARIAL_TERM = "adversarial"
TERM_SUM = "sum"
TERM_RATIO = "ratio"
TERM_COSINE = "cosine"
TOTAL = "total"
NONFINITE_COUNT = "nonfinite_count"

#: Per-layer statistics of the weight-drift monitor.
FROBENIUS = "frobenius"
PER_NEURON = "per_neuron"
TOP_NEURONS = "top_neurons"


def grad_norm_tag(optimizer: str, param: str) -> str:
    """``grad_norm/<optimizer>/<param or total>``: one optimizer's gradient norm."""
    return f"{GRAD_NORM}/{optimizer}/{param}"


def grad_hist_tag(optimizer: str, param: str) -> str:
    """``grad_hist/<optimizer>/<param>``: histogram of one parameter's gradient (TensorBoard only)."""
    return f"{GRAD_HIST}/{optimizer}/{param}"


def loss_term_tag(term: str, param: str) -> str:
    """``grad_norm/terms/<term>/<param or total>``: a loss term's gradient norm (or ratio/cosine)."""
    return f"{GRAD_NORM}/terms/{term}/{param}"


def weight_drift_tag(layer: str, stat: str) -> str:
    """``weight_drift/<layer>/<stat>``: a layer's drift from initialization."""
    return f"{WEIGHT_DRIFT}/{layer}/{stat}"


def topology_tag(layer: str, figure: str) -> str:
    """``topology/<layer>/<figure>``: a weight-topology image."""
    return f"{TOPOLOGY}/{layer}/{figure}"


def capacity_tag(term: str) -> str:
    """``capacity/<term>``: one term of the capacity bound."""
    return f"{CAPACITY}/{term}"


def theory_tag(quantity: str) -> str:
    """``theory/<quantity>``: a two-layer theory measurement."""
    return f"{THEORY}/{quantity}"
