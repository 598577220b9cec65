"""Hard consistency projection: make a super-resolved output agree exactly with its LR input.

Given the output ``y`` (HR grid) and the LR target bands ``x``, the layer returns the closest image to
``y`` (in the Euclidean norm) whose degradation equals ``x``:

    y' = y + Dᵀ (D Dᵀ)⁻¹ (x − D y)

where ``D`` is the training degradation (blur on the HR grid, then a ``scale x scale`` block mean),
a linear map acting per sample and per band. ``Dᵀ`` is the adjoint of ``D`` obtained with
``torch.func.vjp``; ``(D Dᵀ)⁻¹`` is applied by conjugate gradients (CG) on the LR grid, one independent
system per sample and band, in float64, preconditioned by the inverse of ``D Dᵀ``'s circulant (FFT)
approximation, so only the border effects are left to iterate on. When ``D`` is the block mean alone, ``D Dᵀ = I / s²`` and
``Dᵀ (D Dᵀ)⁻¹`` is nearest upsampling: the closed form is used (no CG).

How it differs from SEN2SR's hard constraint (``sen2sr`` ``HardConstraint`` / ``FourierHardConstraint``):
SEN2SR swaps the low frequencies of the output (a fixed Fourier low-pass mask) for those of the
*bicubic-upsampled* LR image. That is an approximation: the output degraded by the real sensor blur and
decimation does not reproduce the LR input, and the swap also overwrites high-frequency detail that
the degradation would have kept apart. Here the constraint is exact for the actual ``D`` (up to float
rounding) and the change is the minimum-norm one: only the component of ``y`` that ``D`` sees
(its row space) is corrected, its null space (the detail the network invents) is left untouched.

Gradients are implicit: the CG solve is a custom ``autograd.Function`` whose backward solves the same
(symmetric) system again, so memory does not grow with the number of iterations and gradients of any
order are exact up to the solver tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerogan.nets.upsample import check_positive_int

__all__ = ["ConsistencyProjection"]

Degrade = Callable[[Tensor], Tensor]

#: Attribute names under which a degradation module may expose its blur sigma (for the fast path and messages).
_SIGMA_ATTRIBUTES: tuple[str, ...] = ("sigma", "blur_sigma")
#: How far the true residual may exceed ``tol`` before the solve is declared failed (float rounding).
_RESIDUAL_SLACK = 10.0
#: Smallest preconditioner eigenvalue relative to the largest (keeps it positive definite, bounds its gain).
_SPECTRUM_FLOOR = 1e-8


def _band_dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-(sample, band) inner products over the spatial dims, shape ``(B, C, 1, 1)``."""
    return (a * b).sum(dim=(-2, -1), keepdim=True)


def _relative(num_sq: Tensor, den_sq: Tensor) -> Tensor:
    """``sqrt(num / den)`` per system; a zero right-hand side counts as solved (relative residual 0)."""
    return torch.where(den_sq > 0, num_sq / den_sq.clamp_min(torch.finfo(den_sq.dtype).tiny), 0.0).sqrt()


def _blur_sigma(degrade: object) -> tuple[str, float] | None:
    """``(attribute, value)`` of the blur sigma a degradation module exposes, or None."""
    for name in _SIGMA_ATTRIBUTES:
        value = getattr(degrade, name, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return name, float(value)
    return None


def _circulant_inverse(normal: Callable[[Tensor], Tensor], like: Tensor) -> Callable[[Tensor], Tensor]:
    """Preconditioner: the inverse of the circulant approximation of ``D Dᵀ`` on the LR grid.

    A blur followed by a block mean is shift invariant on the LR grid but for the borders, so ``D Dᵀ`` is
    close to a convolution whose kernel is its response to a centred impulse (one application, one per
    sample and band). Dividing by that kernel's spectrum (floored to stay positive definite) leaves CG
    only the border effects to resolve: about 10 iterations instead of about 90 for the protocol's blur.
    """
    h, w = like.shape[-2:]
    impulse = torch.zeros_like(like)
    impulse[..., h // 2, w // 2] = 1.0
    kernel = torch.roll(normal(impulse), shifts=(-(h // 2), -(w // 2)), dims=(-2, -1))
    spectrum = torch.fft.rfft2(kernel).real
    floor = spectrum.amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(like.dtype).tiny) * _SPECTRUM_FLOOR
    spectrum = spectrum.clamp_min(floor)

    def apply(r: Tensor) -> Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(r) / spectrum, s=(h, w))

    return apply


class _NormalSolver:
    """Conjugate gradients for ``(D Dᵀ) u = r`` on the LR grid, batched over samples and bands."""

    def __init__(self, degrade: Degrade, hr_shape: torch.Size, tol: float, max_iter: int, describe: str) -> None:
        self.degrade = degrade
        self.hr_shape = hr_shape
        self.tol = tol
        self.max_iter = max_iter
        self.describe = describe

    def solve(self, rhs: Tensor) -> Tensor:
        """``(D Dᵀ)⁻¹ rhs`` (no autograd); raises ``ValueError`` when CG does not reach ``tol``."""
        _, adjoint = torch.func.vjp(self.degrade, rhs.new_zeros(self.hr_shape))

        def normal(u: Tensor) -> Tensor:
            return self.degrade(adjoint(u)[0])

        precondition = _circulant_inverse(normal, rhs)
        u = precondition(rhs)  # exact for the block mean alone (D Dᵀ = I / s²), close for a blur
        r = rhs - normal(u)
        z = precondition(r)
        p = z
        rr, rz = _band_dot(r, r), _band_dot(r, z)
        bb = _band_dot(rhs, rhs)
        threshold = self.tol**2 * bb
        tiny = torch.finfo(rhs.dtype).tiny
        iterations = 0
        for _ in range(self.max_iter):
            done = rr <= threshold
            if bool(done.all()):
                break
            mp = normal(p)
            pmp = _band_dot(p, mp)
            # A converged system, or a direction D Dᵀ annihilates (singular D), takes no step.
            alpha = torch.where(done | (pmp <= 0), 0.0, rz / pmp.clamp_min(tiny))
            u = u + alpha * p
            r = r - alpha * mp
            z = precondition(r)
            rz_next = _band_dot(r, z)
            beta = torch.where(done, 0.0, rz_next / rz.clamp_min(tiny))
            p = z + beta * p
            rr, rz = _band_dot(r, r), rz_next
            iterations += 1
        # The recursive residual can drift below the true one on a near-singular system: check the true one.
        true_r = rhs - normal(u)
        worst = float(_relative(_band_dot(true_r, true_r), bb).max())
        if not worst <= self.tol * _RESIDUAL_SLACK:
            raise ValueError(
                "model.consistency_projection: the degradation "
                f"{self.describe} cannot be inverted on the LR grid {tuple(rhs.shape[-2:])}: conjugate "
                f"gradients left a relative residual of {worst:.2e} after {iterations} iterations "
                f"(tol={self.tol:.1e}), so no output degrades exactly to the LR input. The blur removes "
                "(almost) all of the LR grid's highest frequencies, which makes D Dᵀ singular. Use a smaller "
                "blur sigma (about 0.5 x scale HR pixels is well posed), raise max_iter or tol, or turn the "
                "projection off (model.consistency_projection: null)."
            )
        return u


class _SolveNormal(torch.autograd.Function):
    """``u = (D Dᵀ)⁻¹ r`` with an implicit gradient: ``D Dᵀ`` is symmetric, so ``∂L/∂r = (D Dᵀ)⁻¹ ∂L/∂u``."""

    @staticmethod
    def forward(rhs: Tensor, solver: _NormalSolver) -> Tensor:
        return solver.solve(rhs)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, _NormalSolver], output: Tensor) -> None:
        ctx.solver = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        # Applying the Function again keeps the backward differentiable (higher-order gradients).
        return _SolveNormal.apply(grad, ctx.solver), None


class ConsistencyProjection(nn.Module):
    """Final layer: ``y' = y + Dᵀ (D Dᵀ)⁻¹ (x − D y)``, so that ``D y' = x`` for any generator and scale.

    Call it as ``projection(sr, lr)`` with the generator output ``sr`` ``(B, C, H, W)`` and the LR target
    bands ``lr`` ``(B, C, h, w)`` (the bands of the input that the output super-resolves), in the same
    units or under the same per-band affine normalisation (a blur with a normalised kernel and a block
    mean keep constants, so the projection commutes with it). The scale ``H / h`` is read from the shapes.

    Args:
        degrade: the training degradation ``D``, a linear map acting per sample and band, ``(B, C, H, W) ->
            (B, C, h, w)``, that accepts float64 input (e.g. kornia Gaussian blur then ``avg_pool2d``).
            ``None`` means the ``s x s`` block mean alone, as does a module exposing ``sigma == 0`` (or
            ``blur_sigma == 0``): both use the closed form ``y + nearest_up(x − block_mean(y))``.
        max_iter: conjugate-gradient iterations per solve at most.
        tol: relative residual ``||x − D y'|| / ||x − D y||`` each (sample, band) system must reach (checked
            on the true residual, with a 10x allowance for rounding); a solve that does not reach it within
            ``max_iter`` raises ``ValueError`` (the degradation is not invertible on the LR grid).
        precision: ``"float64"`` solves in double precision (exact to float32 rounding); ``"input"`` solves
            in the output's dtype (for a degradation that cannot run in float64).
    """

    def __init__(
        self,
        degrade: nn.Module | Callable[[Tensor], Tensor] | None = None,
        max_iter: int = 100,
        tol: float = 1e-6,
        precision: Literal["float64", "input"] = "float64",
    ) -> None:
        super().__init__()
        if degrade is not None and not callable(degrade):
            raise ValueError(f"degrade must be a module or callable (B, C, H, W) -> (B, C, h, w) or None, got {degrade!r}")
        self.max_iter = check_positive_int("max_iter", max_iter)
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 < tol < 1:
            raise ValueError(f"tol must be a number in (0, 1) (e.g. 1e-6), got {tol!r}")
        if precision not in ("float64", "input"):
            raise ValueError(f"precision must be 'float64' or 'input', got {precision!r}")
        self.degrade = degrade
        self.tol = float(tol)
        self.precision = precision

    def is_block_mean(self) -> bool:
        """Whether ``D`` is the block mean alone (closed-form projection, no CG)."""
        if self.degrade is None:
            return True
        sigma = _blur_sigma(self.degrade)
        return sigma is not None and sigma[1] == 0.0

    def describe(self, scale: int) -> str:
        """The degradation in words, for error messages: its blur sigma and the scale."""
        sigma = _blur_sigma(self.degrade)
        if sigma is not None:
            return f"({type(self.degrade).__name__}, blur {sigma[0]}={sigma[1]:g}, scale={scale})"
        return f"({self.degrade!r}, scale={scale})"

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        """Project ``sr`` ``(B, C, H, W)`` onto ``{y : D y = lr}``, ``lr`` ``(B, C, h, w)``; same dtype as ``sr``."""
        scale = self._check_shapes(sr, lr)
        with torch.autocast(device_type=sr.device.type, enabled=False):
            if self.is_block_mean():
                return self._block_mean_projection(sr, lr.to(sr.dtype), scale)
            dtype = torch.float64 if self.precision == "float64" else sr.dtype
            y, x = sr.to(dtype), lr.to(dtype)
            degraded = self.degrade(y)
            if degraded.shape != x.shape:
                raise ValueError(
                    f"model.consistency_projection: the output {tuple(sr.shape)} degrades to "
                    f"{tuple(degraded.shape)} but the LR target bands are {tuple(lr.shape)}: the degradation "
                    f"{self.describe(scale)} must map the output grid onto the LR grid"
                )
            solver = _NormalSolver(self.degrade, y.shape, self.tol, self.max_iter, self.describe(scale))
            correction = _SolveNormal.apply(x - degraded, solver)
            _, adjoint = torch.func.vjp(self.degrade, torch.zeros_like(y))
            return (y + adjoint(correction)[0]).to(sr.dtype)

    @staticmethod
    def _block_mean_projection(y: Tensor, x: Tensor, scale: int) -> Tensor:
        """Closed form for ``D`` = block mean: ``Dᵀ (D Dᵀ)⁻¹ = s² Dᵀ`` = nearest upsampling."""
        residual = x - F.avg_pool2d(y, scale)
        return y + F.interpolate(residual, scale_factor=scale, mode="nearest")

    @staticmethod
    def _check_shapes(sr: Tensor, lr: Tensor) -> int:
        """The integer scale between ``sr`` and ``lr``; ``ValueError`` naming both shapes otherwise."""
        if sr.ndim != 4 or lr.ndim != 4 or sr.shape[:2] != lr.shape[:2]:
            raise ValueError(
                f"ConsistencyProjection expects the output (B, C, H, W) and the LR target bands (B, C, h, w) "
                f"with the same B and C, got {tuple(sr.shape)} and {tuple(lr.shape)}"
            )
        (hh, ww), (h, w) = sr.shape[-2:], lr.shape[-2:]
        if h == 0 or w == 0 or hh % h or ww % w or hh // h != ww // w:
            raise ValueError(
                f"ConsistencyProjection: output {tuple(sr.shape)} and LR target bands {tuple(lr.shape)} are "
                "not an integer scale apart (H = scale * h and W = scale * w)"
            )
        return hh // h
