r"""
Capacity Monitor
================

The terms of the Neyshabur et al. (2019) capacity measure of a two-layer network
``x ↦ V σ(U x)``: ``‖U0‖₂‖V‖_F + ‖U − U0‖_F‖V‖_F + √h``.

"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor
from typing_extensions import override

from callbacks._layers import WeightLayer, weight_layers
from callbacks._logging import current_step, log_scalars, validate_int_args, warn_once
from callbacks.tags import TOTAL, capacity_tag

__all__ = ["CapacityMonitor"]


class CapacityMonitor(Callback):
    r"""Log the capacity terms of Neyshabur et al. for a two-layer (hidden Linear → output Linear) network.

    With ``U`` the hidden Linear weight (``h × d_in``, ``h`` hidden units), ``U0`` its value at fit start and
    ``V`` the output Linear weight (``d_out × h``), it logs

    - ``capacity/u0_spectral_x_v_frob`` ``= ‖U0‖₂ ‖V‖_F`` (spectral norm of ``U0``);
    - ``capacity/drift_frob_x_v_frob`` ``= ‖U − U0‖_F ‖V‖_F``;
    - ``capacity/sqrt_h`` ``= √h``;
    - ``capacity/total``: their sum.

    Values are logged before training on a fresh run (t = 0, step 0) and at the end of every
    ``every_n_epochs``-th training epoch, at the batch step Lightning's ``self.log`` uses. ``U0`` is captured
    in ``on_fit_start`` unless a checkpoint restored it (it is in the ``state_dict``), on the weights' device.

    Layers are module names as in ``pl_module.named_modules()``. If not given, ``hidden`` is the first
    ``nn.Linear`` and ``output`` the next Linear whose ``in_features`` equals the hidden width; a model without
    such a pair gets a one-time warning and nothing is logged. All ranks compute (no collectives), rank zero
    writes to every attached logger.

    Args:
        every_n_epochs: log every this many epochs.
        hidden: module name of the hidden Linear layer ``U``.
        output: module name of the output Linear layer ``V``.

    Raises:
        MisconfigurationException:
            If ``every_n_epochs < 1``; at fit start, if a given name is not an ``nn.Linear`` of the module or
            the widths do not chain (``V.in_features != U.out_features``).

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from callbacks import CapacityMonitor
        >>> trainer = Trainer(callbacks=[CapacityMonitor(hidden="net.0", output="net.2")])

    """

    def __init__(self, every_n_epochs: int = 1, hidden: str | None = None, output: str | None = None) -> None:
        validate_int_args(("every_n_epochs", every_n_epochs, 1))
        for arg, value in (("hidden", hidden), ("output", output)):
            if value is not None and (not isinstance(value, str) or not value):
                raise MisconfigurationException(f"`{arg}` must be None or a module name, got {value!r}.")
        self.every_n_epochs = every_n_epochs
        self.hidden = hidden
        self.output = output

        #: The values most recently computed (all ranks), tag -> float.
        self.last_metrics: dict[str, float] = {}
        self._u: WeightLayer | None = None
        self._v: WeightLayer | None = None
        self._u0: Tensor | None = None
        self._u0_spectral: Tensor | None = None
        self._last_step: int | None = None
        self._batches_seen = 0

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(hidden=self.hidden, output=self.output)

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._u, self._v = self._resolve(pl_module)
        self._last_step = None
        if self._u is None or self._v is None:
            self._u0 = self._u0_spectral = None
            return
        w = self._u.param
        with torch.no_grad():
            if self._u0 is None or tuple(self._u0.shape) != tuple(w.shape):
                self._u0 = w.detach().clone()
            else:  # restored from a checkpoint: keep it, next to the weights
                self._u0 = self._u0.to(device=w.device, dtype=w.dtype)
            self._u0_spectral = torch.linalg.matrix_norm(self._u0.float(), ord=2)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if current_step(trainer, self._batches_seen) == 0:
            self._log(trainer)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches_seen += 1

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"u0": self._u0, "batches_seen": self._batches_seen}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._u0 = state_dict.get("u0")
        self._batches_seen = int(state_dict.get("batches_seen", 0))

    # ------------------------------------------------------------------ computations

    @torch.no_grad()
    def compute(self) -> dict[str, float]:
        """The capacity terms for the current weights (empty if no layer pair was found)."""
        if self._u is None or self._v is None or self._u0 is None or self._u0_spectral is None:
            return {}
        u = self._u.param.detach().float()
        u0 = self._u0.to(u.device).float()
        v_frob = torch.linalg.vector_norm(self._v.param.detach().float()).to(u.device)
        drift = torch.linalg.vector_norm(u - u0)
        spectral, drift_term = torch.stack([self._u0_spectral.to(u.device) * v_frob, drift * v_frob]).tolist()
        sqrt_h = math.sqrt(self._u.num_neurons)
        return {
            capacity_tag("u0_spectral_x_v_frob"): spectral,
            capacity_tag("drift_frob_x_v_frob"): drift_term,
            capacity_tag("sqrt_h"): sqrt_h,
            capacity_tag(TOTAL): spectral + drift_term + sqrt_h,
        }

    def _log(self, trainer: pl.Trainer) -> None:
        step = current_step(trainer, self._batches_seen)
        if self._last_step == step:
            return
        self._last_step = step
        metrics = self.compute()
        if metrics:
            self.last_metrics = metrics
            log_scalars(trainer, metrics, step)

    def _resolve(self, pl_module: pl.LightningModule) -> tuple[WeightLayer | None, WeightLayer | None]:
        linears = {n: layer for n, layer in weight_layers(pl_module).items() if layer.kind == "linear"}
        names = list(linears)

        def named(arg: str, value: str) -> WeightLayer:
            if value not in linears:
                raise MisconfigurationException(
                    f"CapacityMonitor: `{arg}={value!r}` is not an nn.Linear of {type(pl_module).__name__} "
                    f"(Linear layers: {names})."
                )
            return linears[value]

        u = (
            named("hidden", self.hidden)
            if self.hidden is not None
            else (linears[names[0]] if names else None)
        )
        if u is None:
            warn_once(
                self, "no_pair", "CapacityMonitor: the module has no nn.Linear layer; nothing is logged."
            )
            return None, None
        if self.output is not None:
            v = named("output", self.output)
        else:
            after = names[names.index(u.name) + 1 :]
            v = next((linears[n] for n in after if linears[n].fan_in == u.num_neurons), None)
            if v is None:
                warn_once(
                    self,
                    "no_pair",
                    f"CapacityMonitor: no Linear layer after `{u.name}` takes its {u.num_neurons} outputs; "
                    "nothing is logged (pass `hidden` and `output`).",
                )
                return None, None
        if v.fan_in != u.num_neurons:
            raise MisconfigurationException(
                f"CapacityMonitor: `{v.name}` has {v.fan_in} inputs but `{u.name}` has {u.num_neurons} outputs."
            )
        return u, v
