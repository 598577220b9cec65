r"""Weight-layer discovery shared by the drift, topology and capacity callbacks (private).

A *weight layer* is an ``nn.Linear`` or convolution (``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``) with a
trainable weight. Its *neurons* are the rows of a Linear weight and the output channels of a convolution.
Biases and normalisation layers are not weight layers.

Parametrized weights (``torch.nn.utils.parametrizations.spectral_norm``, ``weight_norm``) are tracked through the
trainable tensor the optimizer updates (``parametrizations.weight.original``), so reading them has no side effect
such as a power iteration; the legacy hook-based ``spectral_norm`` is tracked through ``weight_orig``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["WeightLayer", "capture", "match_modules", "neuron_rows", "weight_layers"]

_LINEAR = (nn.Linear,)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class WeightLayer:
    """One monitored layer.

    Attributes:
        name: module name as in ``pl_module.named_modules()`` (e.g. ``"generator.head"``).
        module: the module itself.
        param: the trainable weight tensor (the raw one for parametrized modules).
        neuron_dim: the neuron axis of ``param``: 0, or 1 for transposed convolutions.
        kind: ``"linear"`` or ``"conv"``.

    """

    name: str
    module: nn.Module
    param: nn.Parameter
    neuron_dim: int
    kind: str

    @property
    def num_neurons(self) -> int:
        return int(self.param.shape[self.neuron_dim])

    @property
    def fan_in(self) -> int:
        return int(self.param.numel() // max(self.num_neurons, 1))


def raw_weight(module: nn.Module) -> nn.Parameter | None:
    """The trainable weight tensor of ``module`` (see the module docstring), or ``None``."""
    if parametrize.is_parametrized(module, "weight"):
        weight = module.parametrizations.weight.original  # type: ignore[union-attr]
    elif isinstance(getattr(module, "weight_orig", None), nn.Parameter):
        weight = module.weight_orig
    else:
        weight = module._parameters.get("weight")
    if not isinstance(weight, nn.Parameter) or isinstance(weight, nn.parameter.UninitializedParameter):
        return None
    return weight


def match_modules(name: str, patterns: Sequence[str] | None) -> bool:
    """``name`` is selected by ``patterns`` if it equals an entry or lies under it (``entry + "."`` prefix)."""
    if patterns is None:
        return True
    return any(name == p or name.startswith(p + ".") for p in patterns)


def weight_layers(
    pl_module: nn.Module, modules: Sequence[str] | None = None, owner: str = ""
) -> dict[str, WeightLayer]:
    """All weight layers of ``pl_module`` in ``named_modules`` order, restricted to ``modules`` if given.

    Raises:
        MisconfigurationException: if an entry of ``modules`` matches no module of ``pl_module``.

    """
    named = dict(pl_module.named_modules())
    if modules is not None:
        missing = [p for p in modules if not any(match_modules(n, [p]) for n in named if n)]
        if missing:
            raise MisconfigurationException(
                f"{owner}: `modules` entries {missing} match no submodule of {type(pl_module).__name__}."
            )
    layers: dict[str, WeightLayer] = {}
    for name, module in named.items():
        if not name or not match_modules(name, modules):
            continue
        if isinstance(module, _LINEAR):
            kind, neuron_dim = "linear", 0
        elif isinstance(module, _CONV):
            kind, neuron_dim = "conv", 0
        elif isinstance(module, _CONV_T):
            kind, neuron_dim = "conv", 1
        else:
            continue
        weight = raw_weight(module)
        if weight is None or weight.dim() < 2:
            continue
        layers[name] = WeightLayer(name, module, weight, neuron_dim, kind)
    return layers


def neuron_rows(weight: Tensor, neuron_dim: int = 0) -> Tensor:
    """View ``weight`` as ``(num_neurons, fan_in)``: one row per neuron / output channel."""
    if neuron_dim != 0:
        weight = weight.movedim(neuron_dim, 0)
    return weight.reshape(weight.shape[0], -1)


@torch.no_grad()
def capture(layers: dict[str, WeightLayer], previous: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """θ0 snapshot: reuse ``previous[name]`` (e.g. restored from a checkpoint) when its shape matches, else clone.

    Snapshots live on the device and dtype of the weights.
    """
    previous = previous or {}
    out: dict[str, Tensor] = {}
    for name, layer in layers.items():
        ref = previous.get(name)
        w = layer.param
        if ref is not None and tuple(ref.shape) == tuple(w.shape):
            out[name] = ref.to(device=w.device, dtype=w.dtype)
        else:
            out[name] = w.detach().clone()
    return out


def is_square(n: int) -> bool:
    """``n`` is a perfect square ≥ 4 (a flattened square image)."""
    r = math.isqrt(n)
    return n >= 4 and r * r == n
