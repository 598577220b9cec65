r"""The two-layer networks of Rout's theory (ML4PS 2020 / AAAI-21, eqs. 1–2; docs/science.md §1–§2).

Generator ``f(x) = V σ(U x) / √(d_out m)`` and critic ``g(y) = aᵀ σ(W y) / √m``, σ = ReLU, no biases,
initialised as the theory assumes: ``u_j ~ N(0, I)``, ``v_ij`` uniform on ``{±1}``, ``w_r ~ N(0, I)``,
``a_r`` uniform on ``{±1}``. Both are plain ``nn.Linear`` pairs named ``hidden`` and ``output`` so the
monitoring callbacks (drift, topology, capacity, theory) find them by name.

Trained with :class:`aerogan.AdversarialRegularization` (``supervised_loss="half_sse"``, plain SGD, full
batch) this is the theory's gradient descent on ``L_sup = ½ Σ_p ‖f(x_p) − y_p‖²`` or, with
``lambda_adv = n`` and the WGAN generator term ``−mean_p g(f(x_p))``, on ``L_aug = L_sup − Σ_p g(f(x_p))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from aerogan.nets.upsample import check_positive_int

__all__ = ["TwoLayerCritic", "TwoLayerNet", "init_gaussian_", "init_signs_"]


def _generator(seed: int | None) -> torch.Generator | None:
    """A CPU generator seeded with ``seed``; ``None`` (the global torch RNG) without a seed."""
    if seed is None:
        return None
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    return gen


@torch.no_grad()
def init_gaussian_(weight: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Fill ``weight`` with i.i.d. N(0, 1) entries (rows ``u_j ~ N(0, I)``)."""
    weight.copy_(torch.randn(weight.shape, generator=generator, dtype=weight.dtype, device="cpu"))
    return weight


@torch.no_grad()
def init_signs_(weight: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Fill ``weight`` with i.i.d. entries uniform on ``{−1, +1}``."""
    signs = torch.randint(0, 2, weight.shape, generator=generator, device="cpu").to(weight.dtype) * 2 - 1
    weight.copy_(signs)
    return weight


class TwoLayerNet(nn.Module):
    r"""``f(x) = V σ(U x) / √(d_out m)``: the theory's two-layer ReLU generator.

    Args:
        in_channels: input dimension ``d_in`` (the datamodule links it; 64 for 8×8 digits, 784 for MNIST).
        out_channels: output dimension ``d_out`` (10 for one-hot digit labels).
        scale: must be 1 (the CLI links the datamodule's ``scale``; this is not an SR network).
        width: hidden width ``m``.
        freeze_output: keep ``V`` at its initial ±1 values (the simplified model of the theorems); the
            weight then has ``requires_grad=False`` and the optimizer leaves it alone.
        seed: seed of the initialisation (``None``: the global torch RNG, i.e. ``seed_everything``).

    Inputs of shape ``(B, d_in)`` (or ``(B, *)`` with ``prod(*) == d_in``, flattened) map to ``(B, d_out)``.
    At initialisation and for ``‖x‖ = 1``, each output has mean 0 and variance
    ``E[σ(uᵀx)²] / d_out = ‖x‖² / (2 d_out)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 1,
        width: int = 1024,
        freeze_output: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if scale != 1 or isinstance(scale, bool):
            raise ValueError(
                f"TwoLayerNet maps vectors to vectors and needs scale=1, got scale={scale!r}; "
                "use it with a datamodule whose `scale` is 1 (e.g. datamodules.DigitsDataModule)"
            )
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.scale = 1
        self.width = check_positive_int("width", width)
        self.freeze_output = bool(freeze_output)
        self.seed = seed
        self.hidden = nn.Linear(self.in_channels, self.width, bias=False)  # U (m × d_in), row j = u_j
        self.output = nn.Linear(self.width, self.out_channels, bias=False)  # V (d_out × m), column j = v_j
        self.act = nn.ReLU()
        self.reset_parameters()

    @property
    def norm(self) -> float:
        """The output scaling ``1 / √(d_out m)``."""
        return 1.0 / math.sqrt(self.out_channels * self.width)

    def reset_parameters(self) -> None:
        """Re-draw ``U ~ N(0, 1)`` and ``V ~ U{±1}`` (from ``seed`` when given)."""
        gen = _generator(self.seed)
        init_gaussian_(self.hidden.weight, gen)
        init_signs_(self.output.weight, gen)
        self.output.weight.requires_grad_(not self.freeze_output)

    def features(self, x: Tensor) -> Tensor:
        """Hidden activations ``σ(U x)``, shape ``(B, m)``."""
        return self.act(self.hidden(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, d_in) -> (B, d_out)``."""
        if x.ndim < 2 or x[0].numel() != self.in_channels:
            raise ValueError(
                f"TwoLayerNet expects (B, {self.in_channels}) inputs, got shape {tuple(x.shape)}"
            )
        return self.output(self.features(x)) * self.norm

    def extra_repr(self) -> str:
        return f"d_in={self.in_channels}, d_out={self.out_channels}, m={self.width}, freeze_output={self.freeze_output}"


class _LazyGaussianLinear(nn.LazyLinear):
    """A bias-free ``LazyLinear`` whose materialised weight follows the N(0, 1) rule (not Kaiming)."""

    def __init__(self, out_features: int, seed: int | None) -> None:
        super().__init__(out_features, bias=False)
        self._init_seed = seed

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            init_gaussian_(self.weight, _generator(self._init_seed))


class TwoLayerCritic(nn.Module):
    r"""``g(y) = aᵀ σ(W y) / √m``: the theory's two-layer ReLU critic, one score per sample.

    Args:
        in_channels: input dimension (the generator's ``d_out``); ``None`` infers it from the first input
            (the weight is then a lazy parameter, materialised with the same N(0, 1) rule on first use).
        width: hidden width ``m`` (the theory uses the generator's width).
        seed: seed of the initialisation (``None``: the global torch RNG).

    Layers: ``hidden`` (``W``, m × d_out, rows ``w_r ~ N(0, I)``) and ``output`` (``a``, 1 × m, entries ±1).
    Returns shape ``(B,)``. By positive homogeneity, ``g(f(x)) = aᵀσ(WVσ(Ux)) / (m √d_out)``.
    """

    def __init__(self, in_channels: int | None = None, width: int = 1024, seed: int | None = None) -> None:
        super().__init__()
        if in_channels is not None:
            check_positive_int("in_channels", in_channels)
        self.in_channels = in_channels
        self.width = check_positive_int("width", width)
        self.seed = seed
        gen = _generator(seed)
        if in_channels is None:
            # The output layer's draw must not depend on when the hidden layer materialises: draw it from
            # its own stream (seed + 1) when seeded.
            self.hidden: nn.Module = _LazyGaussianLinear(self.width, seed)
            gen = _generator(None if seed is None else seed + 1)
        else:
            self.hidden = nn.Linear(in_channels, self.width, bias=False)
            init_gaussian_(self.hidden.weight, gen)
        self.output = nn.Linear(self.width, 1, bias=False)
        init_signs_(self.output.weight, gen)
        self.act = nn.ReLU()

    def forward(self, y: Tensor) -> Tensor:
        """``(B, d) -> (B,)``."""
        return self.output(self.act(self.hidden(y.flatten(1)))).squeeze(1) / math.sqrt(self.width)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, m={self.width}"
