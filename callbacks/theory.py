r"""
Two-Layer Theory Monitor
========================

The quantities of Rout's two-layer theory (ML4PS 2020, docs/science.md §2) measured on the *whole* training set, with
the theorems' reference curves next to them.

Notation: ``f(x) = V σ(U x)/√(d_out m)`` (the generator's ``hidden`` = U, ``output`` = V), critic
``g(y) = aᵀ σ(W y)/√m`` (the critic's ``hidden`` = W, ``output`` = a), ``n`` training pairs, ``z(t)`` the stacked
predictions on them, ``y`` the stacked targets.

**Time.** Gradient descent ``θ_{k+1} = θ_k − η ∇L(θ_k)`` is the explicit Euler discretisation of the gradient flow
``dθ/dt = −∇L`` with ``dt = η``, so after k full-batch steps ``t = Σ_k η_k`` (``= η·k`` at a constant learning
rate). With mini-batches of size B of a summed loss the expected step is ``(B/n) ∇L``, so ``t`` grows by
``η·B/n`` per batch. ``η`` is read from the generator's optimizer (``trainer.optimizers[0]``) at every batch.

**Gram matrices.** ``H(t)_pq = x_pᵀx_q · (1/m) Σ_j 1{u_jᵀx_p ≥ 0, u_jᵀx_q ≥ 0}`` (finite width, current U) and
``H∞_pq = x_pᵀx_q · (π − θ_pq)/(2π)`` with ``θ_pq`` the angle between ``x_p`` and ``x_q``: the closed form of
``E_{u~N(0,I)}[x_pᵀx_q 1{uᵀx_p ≥ 0, uᵀx_q ≥ 0}]`` (exact, no Monte Carlo). ``λ0 = λ_min(H∞)`` is computed once, at
fit start. Both use the first ``gram_max_samples`` training samples (for a larger n the λ_min of this principal
submatrix is an upper bound on the full one's, by Cauchy interlacing).

**Reference curves** (``r0 = ‖z(0) − y‖``):

- ``drift_bound_thm1 = 2√n r0/(√m λ0)``: Theorem 1's per-neuron supervised drift bound, as stated for the
  simplified model (``d_out = 1``, V fixed);
- ``residual_bound = e^{−λ0 t/2} r0``: the supervised residual bound, same model;
- ``*_dout`` variants: with ``d_out`` outputs and the ``1/√(d_out m)`` scaling, the per-output kernel of the
  hidden layer is ``H/d_out`` (``v_ij² = 1``; cross-output terms are mean-zero), so the rate becomes
  ``λ0/d_out``: ``residual_bound_dout = e^{−λ0 t/(2 d_out)} r0`` and
  ``drift_bound_thm1_dout = 2√n d_out r0/(√m λ0)``. Training V as well only adds a positive semi-definite kernel
  (faster decay); these are the references that apply to a trained ``d_out = 10`` network;
- adversarial (Lemma 2, Theorem 2), with ``L`` = the largest critic ``‖W‖_F`` seen so far (the theory's bound on
  the critic weights), ``δ`` = ``delta``, ``λ1 = λ_max(H∞) + λ0/2``, ``κ = λ1/λ0``,
  ``μ = L n √(2 log(2/δ))/√m``: ``residual_floor_adv = κμ``,
  ``residual_bound_adv = (r0 − κμ) e^{−λ0 t/2} + κμ`` and
  ``drift_bound_thm2 = 2√n (r0 − κμ)(1 − e^{−λ0 t/2})/(√m λ0) + μ(1 + κ√n) t/√m``. They are stated for
  ``κμ < r0``; outside that regime they are logged anyway and the report says so.

**Logged** (``theory/<column>`` scalars at Lightning's logger step, and one row per record in
``<run folder>/theory.csv``; see :data:`COLUMNS`): at t = 0 (``on_train_start`` of a fresh run) and after every
``every_n_epochs``-th epoch: the residual ``‖z − y‖`` (Frobenius over all n × d_out entries), ``λ_min(H(t))``,
``λ0``, the fraction of the n × m ReLU activation patterns ``1{u_jᵀx_p ≥ 0}`` flipped since t = 0, per-neuron
drift of U (rows ``u_j``) and of V (columns ``v_j``, as in the paper; :class:`~callbacks.WeightDriftMonitor`
reports rows), the *path length* ``Σ_steps ‖U_{k+1} − U_k‖_F`` (and V's) accumulated at every step (the drift
bounds of Theorems 1–2 integrate ``‖dU/dt‖``, so they bound the path length, of which the net drift
``‖U(t) − U(0)‖_F`` is a lower bound), the critic's ``‖W‖_F`` and ``‖a‖``, ``‖∇_z g‖`` at the predictions (mean and max over the
training set), the Wasserstein estimate ``mean g(y) − mean g(z)``, and the reference curves. Critic columns
are empty (NaN) without a critic; ``‖W‖_F`` / ``‖a‖`` use the critic's ``hidden`` / ``output`` Linear layers.

Training data: ``trainer.datamodule.full_train()`` if the datamodule has it (as
:class:`datamodules.DigitsDataModule` does), else the concatenated batches of its ``train_dataloader()``; both go
through ``pl_module.prepare_batch`` when it exists. Computations run on rank zero only (nothing collective);
rank zero writes.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn
from typing_extensions import override

from callbacks._logging import append_table, current_step, log_scalars
from callbacks.tags import theory_tag

__all__ = ["COLUMNS", "TABLE_NAME", "TwoLayerTheoryMonitor", "gram_finite", "gram_infinite"]

TABLE_NAME = "theory.csv"

#: Columns of ``theory.csv``, in order.
COLUMNS = (
    "epoch", "step", "t", "n", "m", "d_in", "d_out",
    "residual", "residual_rel", "lambda_min_H", "lambda_min_H0", "lambda0", "lambda_max_Hinf", "gram_samples",
    "flip_fraction",
    "u_drift_max", "u_drift_mean", "u_drift_frob", "v_drift_max", "v_drift_mean", "v_drift_frob",
    "u_path_length", "v_path_length",
    "critic_W_frob", "critic_a_norm", "critic_grad_z_mean", "critic_grad_z_max", "wasserstein",
    "drift_bound_thm1", "drift_bound_thm1_dout", "residual_bound", "residual_bound_dout",
    "mu", "kappa", "residual_floor_adv", "residual_bound_adv", "drift_bound_thm2",
)  # fmt: skip


def gram_finite(x: Tensor, u: Tensor) -> Tensor:
    """``H_pq = x_pᵀx_q (1/m) Σ_j 1{u_jᵀx_p ≥ 0} 1{u_jᵀx_q ≥ 0}`` for ``x (n, d)``, ``u (m, d)``; float64."""
    x = x.double()
    act = (x @ u.double().T >= 0).double()
    return (x @ x.T) * (act @ act.T) / u.shape[0]


def gram_infinite(x: Tensor) -> Tensor:
    """``H∞_pq = x_pᵀx_q (π − θ_pq)/(2π)``, the exact expectation over ``u ~ N(0, I)``; float64."""
    x = x.double()
    inner = x @ x.T
    norms = torch.linalg.vector_norm(x, dim=1)
    cos = (inner / (norms[:, None] * norms[None, :]).clamp_min(1e-300)).clamp(-1.0, 1.0)
    return inner * (math.pi - torch.arccos(cos)) / (2 * math.pi)


def _lambda_min_max(h: Tensor) -> tuple[float, float]:
    ev = torch.linalg.eigvalsh(h)
    return float(ev[0]), float(ev[-1])


def _linear(module: nn.Module | None, name: str) -> nn.Linear | None:
    layer = getattr(module, name, None) if module is not None else None
    if isinstance(layer, nn.Linear) and not isinstance(layer.weight, nn.parameter.UninitializedParameter):
        return layer
    return None


class TwoLayerTheoryMonitor(Callback):
    r"""Residual, Gram-matrix health, activation flips, critic state and the theorems' reference curves.

    See the module docstring for the definitions and the time mapping ``t = Σ η·B/n``.

    Args:
        every_n_epochs: record every this many epochs (plus t = 0 on a fresh run).
        gram_max_samples: use at most this many training samples for the Gram matrices (``n × n`` eigenvalues).
        delta: the failure probability δ in ``μ = L n √(2 log(2/δ))/√m``.
        generator: attribute of the LightningModule holding the two-layer generator (``hidden``, ``output``).
        critic: attribute holding the critic (``None`` or missing: critic columns are NaN).
        write_table: append the records to ``<run folder>/theory.csv``.

    Raises:
        MisconfigurationException: bad arguments, or (at fit start) a generator without ``hidden`` / ``output``
            ``nn.Linear`` layers, or no training data to read.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        gram_max_samples: int = 256,
        delta: float = 0.1,
        generator: str = "generator",
        critic: str | None = "critic",
        write_table: bool = True,
    ) -> None:
        for arg, value in (("every_n_epochs", every_n_epochs), ("gram_max_samples", gram_max_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MisconfigurationException(f"`{arg}` must be an integer >= 1, got {value!r}.")
        if not 0 < delta < 1:
            raise MisconfigurationException(f"`delta` must lie in (0, 1), got {delta!r}.")
        self.every_n_epochs = every_n_epochs
        self.gram_max_samples = gram_max_samples
        self.delta = float(delta)
        self.generator_attr = generator
        self.critic_attr = critic
        self.write_table = bool(write_table)

        #: The last record (all columns), and every record of this fit.
        self.last_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self._x: Tensor | None = None
        self._y: Tensor | None = None
        self._state: dict[str, Any] = {}
        self._t = 0.0
        self._batches_seen = 0
        self._last_step: int | None = None
        self._critic_l = 0.0
        self._gen: nn.Module | None = None
        self._prev: tuple[Tensor, Tensor] | None = None
        self._path: list[Tensor | float] = [0.0, 0.0]

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        gen = getattr(pl_module, self.generator_attr, None)
        if _linear(gen, "hidden") is None or _linear(gen, "output") is None:
            raise MisconfigurationException(
                f"TwoLayerTheoryMonitor: `pl_module.{self.generator_attr}` must have `hidden` and `output` nn.Linear "
                "layers (e.g. aerogan.nets.TwoLayerNet)."
            )
        self._last_step = None
        if not trainer.is_global_zero:
            return
        self._gen = gen
        self._prev = (gen.hidden.weight.detach().clone(), gen.output.weight.detach().clone())
        x, y = self._training_set(trainer, pl_module)
        self._x, self._y = x.to(pl_module.device).float(), y.to(pl_module.device).float()
        if not self._state:  # fresh run (a checkpoint restores the t = 0 references)
            self._state = self._references(gen)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if current_step(trainer, self._batches_seen) == 0:
            self._record(trainer, pl_module, epoch=0)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches_seen += 1
        if self._gen is not None and self._prev is not None:
            with torch.no_grad():
                for i, layer in enumerate((self._gen.hidden, self._gen.output)):
                    w = layer.weight.detach()
                    self._path[i] += torch.linalg.vector_norm(w - self._prev[i]).double()  # no host sync
                    self._prev[i].copy_(w)
        if trainer.optimizers:
            lr = float(trainer.optimizers[0].param_groups[0]["lr"])
            n = int(self._state.get("n", 0)) or 1
            size = _batch_size(batch)
            self._t += lr * (size / n if size else 1.0)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        completed = trainer.current_epoch + 1
        if completed % self.every_n_epochs == 0:
            self._record(trainer, pl_module, epoch=completed)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "state": dict(self._state),
            "t": self._t,
            "batches_seen": self._batches_seen,
            "critic_l": self._critic_l,
            "path": [float(v) for v in self._path],
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._state = dict(state_dict.get("state", {}))
        self._t = float(state_dict.get("t", 0.0))
        self._batches_seen = int(state_dict.get("batches_seen", 0))
        self._critic_l = float(state_dict.get("critic_l", 0.0))
        self._path = [float(v) for v in state_dict.get("path", [0.0, 0.0])]

    # ------------------------------------------------------------------ data

    def _training_set(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[Tensor, Tensor]:
        dm = getattr(trainer, "datamodule", None)
        if dm is not None and callable(getattr(dm, "full_train", None)):
            x, y = dm.full_train()
            batches = [{"input": x, "target": y}]
        else:
            loader = dm.train_dataloader() if dm is not None else None
            if loader is None:
                raise MisconfigurationException(
                    "TwoLayerTheoryMonitor needs the training set: use a datamodule with `full_train()` or "
                    "`train_dataloader()`."
                )
            batches = list(loader)
        prepare = getattr(pl_module, "prepare_batch", None)
        xs, ys = [], []
        for batch in batches:
            if callable(prepare):
                bx, by = prepare({k: v.to(pl_module.device) for k, v in batch.items()})
            else:
                bx, by = batch["input"], batch["target"]
            xs.append(bx.flatten(1))
            ys.append(by.flatten(1))
        return torch.cat(xs), torch.cat(ys)

    # ------------------------------------------------------------------ computations

    @torch.no_grad()
    def _references(self, gen: nn.Module) -> dict[str, Any]:
        """Everything fixed at t = 0: U0, V0, the activation pattern, λ0, λ_max(H∞), r0."""
        assert self._x is not None and self._y is not None
        u, v = gen.hidden.weight.detach(), gen.output.weight.detach()
        x = self._x
        k = min(x.shape[0], self.gram_max_samples)
        lam0, lam_max = _lambda_min_max(gram_infinite(x[:k]))
        lam_h0, _ = _lambda_min_max(gram_finite(x[:k], u))
        z0 = gen(x)
        return {
            "u0": u.clone(),
            "v0": v.clone(),
            "act0": (x @ u.T >= 0),
            "lambda0": lam0,
            "lambda_max_Hinf": lam_max,
            "lambda_min_H0": lam_h0,
            "gram_samples": k,
            "r0": float(torch.linalg.vector_norm(z0 - self._y)),
            "n": x.shape[0],
            "m": u.shape[0],
            "d_in": u.shape[1],
            "d_out": v.shape[0],
        }

    def compute(self, pl_module: pl.LightningModule) -> dict[str, float]:
        """All columns but ``epoch`` and ``step`` for the current weights (rank zero, after fit start)."""
        gen = getattr(pl_module, self.generator_attr)
        critic = getattr(pl_module, self.critic_attr, None) if self.critic_attr else None
        s, x, y = self._state, self._x, self._y
        assert x is not None and y is not None and s
        nan = float("nan")
        out: dict[str, float] = {k: nan for k in COLUMNS}
        n, m, d_out = int(s["n"]), int(s["m"]), int(s["d_out"])
        lam0, r0, t = float(s["lambda0"]), float(s["r0"]), self._t
        out.update({"t": t, "n": n, "m": m, "d_in": int(s["d_in"]), "d_out": d_out})
        with torch.no_grad():
            u, v = gen.hidden.weight.detach(), gen.output.weight.detach()
            u0, v0 = s["u0"].to(u.device), s["v0"].to(v.device)
            z = gen(x)
            out["residual"] = float(torch.linalg.vector_norm(z - y))
            out["residual_rel"] = out["residual"] / r0 if r0 > 0 else nan
            k = int(s["gram_samples"])
            out["lambda_min_H"], _ = _lambda_min_max(gram_finite(x[:k], u))
            out["lambda_min_H0"] = float(s["lambda_min_H0"])
            out["lambda0"], out["lambda_max_Hinf"], out["gram_samples"] = lam0, float(s["lambda_max_Hinf"]), k
            out["flip_fraction"] = float(((x @ u.T >= 0) != s["act0"].to(u.device)).float().mean())
            du = torch.linalg.vector_norm(u - u0, dim=1)  # rows u_j
            dv = torch.linalg.vector_norm(v - v0, dim=0)  # columns v_j
            out.update({
                "u_drift_max": float(du.max()), "u_drift_mean": float(du.mean()),
                "u_drift_frob": float(torch.linalg.vector_norm(du)),
                "v_drift_max": float(dv.max()), "v_drift_mean": float(dv.mean()),
                "v_drift_frob": float(torch.linalg.vector_norm(dv)),
                "u_path_length": float(self._path[0]), "v_path_length": float(self._path[1]),
            })  # fmt: skip
        if critic is not None:
            with torch.enable_grad():  # first call: also materialises a lazy critic
                zz = z.detach().requires_grad_(True)
                scores = critic(zz)
                (grad,) = torch.autograd.grad(scores.sum(), zz)
            gnorm = torch.linalg.vector_norm(grad.flatten(1), dim=1)
            out["critic_grad_z_mean"], out["critic_grad_z_max"] = float(gnorm.mean()), float(gnorm.max())
            with torch.no_grad():
                out["wasserstein"] = float(critic(y).mean() - scores.detach().mean())
            w, a = _linear(critic, "hidden"), _linear(critic, "output")
            if w is not None:
                out["critic_W_frob"] = float(torch.linalg.vector_norm(w.weight.detach()))
                self._critic_l = max(self._critic_l, out["critic_W_frob"])
            if a is not None:
                out["critic_a_norm"] = float(torch.linalg.vector_norm(a.weight.detach()))
        # reference curves
        if lam0 > 0:
            out["drift_bound_thm1"] = 2 * math.sqrt(n) * r0 / (math.sqrt(m) * lam0)
            out["drift_bound_thm1_dout"] = out["drift_bound_thm1"] * d_out
            out["residual_bound"] = math.exp(-lam0 * t / 2) * r0
            out["residual_bound_dout"] = math.exp(-lam0 * t / (2 * d_out)) * r0
            if critic is not None and self._critic_l > 0:
                mu = self._critic_l * n * math.sqrt(2 * math.log(2 / self.delta)) / math.sqrt(m)
                kappa = (float(s["lambda_max_Hinf"]) + lam0 / 2) / lam0
                floor = kappa * mu
                decay = math.exp(-lam0 * t / 2)
                out.update({
                    "mu": mu, "kappa": kappa, "residual_floor_adv": floor,
                    "residual_bound_adv": (r0 - floor) * decay + floor,
                    "drift_bound_thm2": 2 * math.sqrt(n) * (r0 - floor) * (1 - decay) / (math.sqrt(m) * lam0)
                    + mu * (1 + kappa * math.sqrt(n)) * t / math.sqrt(m),
                })  # fmt: skip
        return out

    def _record(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        step = current_step(trainer, self._batches_seen)
        if self._last_step == step or not trainer.is_global_zero or not self._state:
            return
        self._last_step = step
        row = self.compute(pl_module)
        row["epoch"], row["step"] = epoch, step
        self.last_metrics = row
        self.history.append(row)
        skip = {"epoch", "step", "n", "m", "d_in", "d_out"}
        log_scalars(
            trainer, {theory_tag(k): v for k, v in row.items() if k not in skip and math.isfinite(v)}, step
        )
        if self.write_table:
            append_table(trainer, TABLE_NAME, COLUMNS, [[_fmt(row[c]) for c in COLUMNS]])


def _fmt(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    return f"{value:.9g}"


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, Tensor) and value.ndim:
                return int(value.shape[0])
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Tensor):
        return int(batch[0].shape[0])
    return 0
