"""Critic gradient penalties: WGAN-GP's (Gulrajani et al. 2017) and R1 on real samples (Mescheder et al. 2018).

Both differentiate the critic with respect to its input in float32 with autocast disabled (see
:func:`gradient_penalty`) and keep the graph, so the penalty trains the critic."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["gradient_penalty", "r1_penalty"]


def gradient_penalty(
    critic: nn.Module, real: Tensor, fake: Tensor, target: float = 1.0, eps: Tensor | None = None
) -> Tensor:
    """Return ``mean_b (||grad_x critic(x_hat_b)|| - target)^2`` with ``x_hat = eps*real + (1-eps)*fake``.

    - ``eps ~ U[0, 1]`` is drawn once per sample as ``torch.rand((B, 1, ..., 1))`` in float32 on
      ``real.device`` (so seeding the global generator reproduces it) and broadcast over all
      non-batch dims; works for images ``(B, C, H, W)`` and vectors ``(B, D)``.
    - The gradient norm is taken per sample over ALL flattened non-batch dims, as in the paper.
      (BasicSR's ``gradient_penalty_loss`` uses ``norm(2, dim=1)``, i.e. over channels only,
      which penalises every pixel separately instead of the per-sample Lipschitz constant.)
    - ``eps`` may be given as a (B,) tensor of mixing weights (tests, reproducibility across
      process layouts); otherwise it is drawn as above.
    - ``create_graph=True`` so the penalty backpropagates into the critic's parameters.
    - ``fake`` must be detached by the caller; both inputs are detached here as well, so the
      penalty can never send gradients to the generator.
    - The penalty is computed in float32 with autocast disabled for the critic call: it is a
      gradient of a gradient, and in bf16/fp16 the squared-norm difference near ``target``
      loses almost all precision (bf16 has ~3 significant digits) and fp16 can overflow,
      which makes the penalty noisy or non-finite. The critic's weights must therefore be
      float32 (the normal case under autocast / mixed precision).
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if real.ndim < 2:
        raise ValueError(
            f"expected batched inputs (B, ...) with at least 2 dims, got shape {tuple(real.shape)}"
        )
    batch = real.shape[0]
    device = real.device
    shape = (batch,) + (1,) * (real.ndim - 1)
    if eps is None:
        eps = torch.rand(shape, device=device, dtype=torch.float32)
    else:
        if eps.numel() != batch:
            raise ValueError(f"eps must hold one weight per sample ({batch}), got shape {tuple(eps.shape)}")
        eps = eps.to(device=device, dtype=torch.float32).reshape(shape)
    real32 = real.detach().to(torch.float32)
    fake32 = fake.detach().to(torch.float32)
    x_hat = eps * real32 + (1.0 - eps) * fake32
    return _input_gradient_penalty(
        critic, x_hat, lambda grad: ((torch.linalg.vector_norm(grad, ord=2, dim=1) - target) ** 2).mean()
    )


def r1_penalty(critic: nn.Module, real: Tensor) -> Tensor:
    """Return ``mean_b ||grad_y critic(y_b)||^2`` at the real samples ``y`` (R1, Mescheder et al. 2018).

    The caller weights it by ``gamma / 2``. As :func:`gradient_penalty`: the squared norm is taken per sample
    over all non-batch dims, in float32 with autocast disabled, with ``create_graph=True``; ``real`` is
    detached, so only the critic receives gradients.
    """
    if real.ndim < 2:
        raise ValueError(f"expected batched inputs (B, ...) with at least 2 dims, got shape {tuple(real.shape)}")
    return _input_gradient_penalty(critic, real.detach().to(torch.float32), lambda grad: grad.pow(2).sum(1).mean())


def _input_gradient_penalty(critic: nn.Module, x: Tensor, reduce: Callable[[Tensor], Tensor]) -> Tensor:
    """``reduce`` of the per-sample input gradients ``(B, numel)`` of ``critic`` at float32 ``x``, without autocast."""
    x = x.requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        scores = critic(x)
        (grad,) = torch.autograd.grad(outputs=scores.float().sum(), inputs=x, create_graph=True)
        return reduce(grad.flatten(1))
