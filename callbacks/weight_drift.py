r"""
Weight Drift Monitor
====================

How far each layer, and each neuron of it, has moved from its initial weights ``θ0``:
``‖W(t) − W(0)‖_F`` per layer and ``‖w_j(t) − w_j(0)‖₂`` per neuron (row of a Linear weight, output channel of
a convolution).

"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from torch import Tensor
from typing_extensions import override

from callbacks._layers import WeightLayer, capture, match_modules, neuron_rows, weight_layers
from callbacks._logging import (
    append_table,
    current_step,
    is_due,
    log_scalars,
    tensorboard_writer,
    validate_int_args,
    validate_modules_arg,
    warn_if_no_tensorboard,
    warn_once,
    write_histogram,
)
from callbacks.tags import FROBENIUS, NONFINITE_COUNT, PER_NEURON, TOP_NEURONS, weight_drift_tag

__all__ = ["WeightDriftMonitor"]

TABLE_NAME = "weight_drift.csv"
TABLE_COLUMNS = ("step", "epoch", "layer", "neuron", "drift")


class WeightDriftMonitor(Callback):
    r"""Track the drift of every weight layer from its initial weights θ0, per layer and per neuron.

    θ0 is captured in ``on_fit_start``, after the strategy has wrapped the model and DDP has broadcast rank
    zero's weights, unless a checkpoint already restored it: θ0 is part of the callback's ``state_dict``, so a
    run resumed with ``ckpt_path`` (even with a new callback instance) measures drift from the *original*
    initialisation. The snapshot lives on the device of the weights (one extra copy of the tracked weights).

    Weight layers are ``nn.Linear`` and convolution layers (``modules`` restricts them to the given submodules
    and those under them, e.g. ``["generator"]``); a *neuron* is a row of a Linear weight or an output channel
    of a convolution. Biases and normalisation layers are not tracked. Every ``every_n_steps`` batches, in
    ``on_train_batch_start`` (so the value at step ``s`` is the drift after ``s`` batches; step 0 gives 0), it
    logs for each layer ``<layer>`` (module name, e.g. ``generator.head``):

    - ``weight_drift/<layer>/frobenius``: ``‖W(t) − W(0)‖_F``;
    - ``weight_drift/<layer>/relative``: the same divided by ``‖W(0)‖_F`` (NaN for a zero-initialised layer);
    - ``weight_drift/<layer>/max``, ``.../mean``: over the per-neuron drifts ``‖w_j(t) − w_j(0)‖₂``;
    - ``weight_drift/<layer>/top1`` ... ``top<k>``: the ``top_k`` largest per-neuron drifts, largest first
      (their neuron indices are in the table and in the TensorBoard text ``weight_drift/<layer>/top_neurons``);
    - ``weight_drift/<layer>/nonfinite_count``: NaN/Inf weight entries (affected summaries become NaN; nothing
      raises);
    - histogram ``weight_drift/<layer>/per_neuron`` of the per-neuron drifts (``histogram=True``, TensorBoard
      only; computed on device with ``torch.histc`` and written with ``add_histogram_raw``; non-finite values
      left out).

    With ``write_table=True``, rank zero appends the full per-neuron table to ``<run folder>/weight_drift.csv``
    (tidy CSV, columns ``step,epoch,layer,neuron,drift``; header written once, so appending after a resume is
    safe) at the end of every ``table_every_n_epochs``-th training epoch and at the end of training. The run
    folder is the first logger's ``log_dir`` (TensorBoard/CSV loggers) or ``save_dir``, else
    ``trainer.default_root_dir``. ``step`` is the number of batches trained so far and ``epoch`` the number of
    completed training epochs (at an early stop inside an epoch: the index of that epoch).

    **Final values.** At the end of training (``on_train_end``, whatever the cadence) the scalars and the
    histogram are logged once more for the final weights, at the final step (the number of batches trained),
    unless that exact step was already logged; the table gets its final row block at the same step. So even a
    run shorter than ``every_n_steps`` ends with the drift of its last weights.

    All ranks compute the scalars (no collectives: weights are identical across DDP ranks); only rank zero
    writes scalars, histograms, text and the table.

    Args:
        every_n_steps: log the scalars (and histograms) every this many batches.
        top_k: number of largest per-neuron drifts logged as scalars (``0`` for none).
        histogram: write the per-neuron drift histogram to TensorBoard.
        write_table: write ``weight_drift.csv``.
        table_every_n_epochs: write the table every this many epochs (and always at the end of training).
        modules: names of the submodules to track (each entry selects that module and everything under it);
            ``None`` tracks every weight layer.
        enabled: ``False`` turns every hook into a no-op (how ``aerogan fit --monitors.weight_drift.enabled
            false`` switches the monitor off).

    Raises:
        MisconfigurationException:
            If a cadence is not a positive integer, ``top_k < 0``, or an entry of ``modules`` matches no
            submodule (at fit start).

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from callbacks import WeightDriftMonitor
        >>> drift = WeightDriftMonitor(every_n_steps=100, modules=["generator"])
        >>> trainer = Trainer(callbacks=[drift])

    """

    def __init__(
        self,
        every_n_steps: int = 50,
        top_k: int = 5,
        histogram: bool = True,
        write_table: bool = True,
        table_every_n_epochs: int = 1,
        modules: list[str] | None = None,
        enabled: bool = True,
    ) -> None:
        validate_int_args(
            ("every_n_steps", every_n_steps, 1), ("top_k", top_k, 0), ("table_every_n_epochs", table_every_n_epochs, 1)
        )
        self.modules = validate_modules_arg(modules, type(self).__name__)
        self.every_n_steps = every_n_steps
        self.top_k = top_k
        self.histogram = bool(histogram)
        self.write_table = bool(write_table)
        self.table_every_n_epochs = table_every_n_epochs
        self.enabled = bool(enabled)

        #: The scalars most recently computed (all ranks), tag -> float.
        self.last_metrics: dict[str, float] = {}
        self._layers: dict[str, WeightLayer] = {}
        self._theta0: dict[str, Tensor] = {}
        self._theta0_norm: dict[str, Tensor] = {}
        self._last_step: int | None = None
        self._last_table_step: int | None = None
        self._batches_seen = 0

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(modules=self.modules)

    # ------------------------------------------------------------------ public helpers

    def covers(self, layer_name: str) -> bool:
        """Whether this monitor tracks the layer ``layer_name`` (if it is a weight layer)."""
        return match_modules(layer_name, self.modules)

    def reference(self, layer_name: str) -> Tensor | None:
        """θ0 of ``layer_name`` (the raw weight tensor at fit start or as restored), or ``None``."""
        return self._theta0.get(layer_name)

    @torch.no_grad()
    def per_neuron_drift(self) -> dict[str, Tensor]:
        """``‖w_j(t) − w_j(0)‖₂`` for every neuron of every tracked layer, on the weights' device (float32)."""
        out = {}
        for name, layer in self._layers.items():
            ref = self._reference_on_device(name, layer)
            diff = neuron_rows(layer.param.detach(), layer.neuron_dim).float()
            diff = diff - neuron_rows(ref, layer.neuron_dim).float()
            out[name] = torch.linalg.vector_norm(diff, dim=1)
        return out

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            self._layers = {}
            return
        self._layers = weight_layers(pl_module, self.modules, owner=type(self).__name__)
        if not self._layers:
            warn_once(self, "no_layers", f"{type(self).__name__}: no Linear/Conv weight layer to track.")
        self._theta0 = capture(self._layers, self._theta0)
        with torch.no_grad():
            self._theta0_norm = {n: torch.linalg.vector_norm(t.float()) for n, t in self._theta0.items()}
        self._last_step = None
        if self.histogram:
            warn_if_no_tensorboard(self, trainer, "drift histograms and top-neuron text")

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = current_step(trainer, self._batches_seen)
        if is_due(step, self.every_n_steps):
            self._log_drift(trainer, step)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches_seen += 1

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        completed = trainer.current_epoch + 1
        if completed % self.table_every_n_epochs == 0:
            self._write_table(trainer, completed)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on_train_end runs before the strategy's teardown moves the model to the CPU
        self._log_drift(trainer, current_step(trainer, self._batches_seen))  # the final weights
        self._write_table(trainer, trainer.current_epoch)  # completed epochs (or the one stopped in)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "theta0": dict(self._theta0),
            "batches_seen": self._batches_seen,
            "last_table_step": self._last_table_step,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # keep the tensors as loaded; on_fit_start moves them next to the weights (and checks shapes)
        self._theta0 = dict(state_dict.get("theta0", {}))
        self._batches_seen = int(state_dict.get("batches_seen", 0))
        self._last_table_step = state_dict.get("last_table_step")

    # ------------------------------------------------------------------ internals

    def _log_drift(self, trainer: pl.Trainer, step: int) -> None:
        """Scalars (all ranks compute, rank zero writes) and histograms of the drift at ``step``, once per step."""
        if not self._layers or self._last_step == step:
            return
        self._last_step = step
        drifts = self.per_neuron_drift()
        metrics = self._summaries(drifts)
        self.last_metrics = metrics
        log_scalars(trainer, metrics, step)
        if self.histogram:
            writer = tensorboard_writer(trainer)
            if writer is not None:
                for name, drift in drifts.items():
                    write_histogram(writer, weight_drift_tag(name, PER_NEURON), drift, step)

    def _reference_on_device(self, name: str, layer: WeightLayer) -> Tensor:
        ref = self._theta0[name]
        if ref.device != layer.param.device:
            ref = self._theta0[name] = ref.to(layer.param.device)
        return ref

    @torch.no_grad()
    def _summaries(self, drifts: dict[str, Tensor]) -> dict[str, float]:
        keys: list[str] = []
        parts: list[Tensor] = []
        for name, drift in drifts.items():
            layer = self._layers[name]
            frob = torch.linalg.vector_norm(drift)
            norm0 = self._theta0_norm[name].to(drift.device)
            k = min(self.top_k, drift.numel())
            nonfinite = (~torch.isfinite(layer.param.detach())).sum().float().to(drift.device)
            relative = torch.where(norm0 > 0, frob / norm0, torch.full_like(frob, float("nan")))
            parts.append(torch.stack([frob, relative, drift.max(), drift.mean(), nonfinite]))
            keys += [weight_drift_tag(name, s) for s in (FROBENIUS, "relative", "max", "mean", NONFINITE_COUNT)]
            if k:
                parts.append(torch.topk(drift, k).values)
                keys += [weight_drift_tag(name, f"top{i + 1}") for i in range(k)]
        if not parts:
            return {}
        device = parts[0].device
        values = torch.cat([p.to(device) for p in parts]).tolist()
        return dict(zip(keys, values, strict=True))

    def _write_table(self, trainer: pl.Trainer, epoch: int) -> None:
        step = current_step(trainer, self._batches_seen)
        if not self.write_table or not self._layers or self._last_table_step == step:
            return
        self._last_table_step = step
        if not trainer.is_global_zero:
            return
        drifts = {name: d.cpu() for name, d in self.per_neuron_drift().items()}
        rows = ((step, epoch, name, j, f"{v:.9g}") for name, drift in drifts.items() for j, v in enumerate(drift.tolist()))
        append_table(trainer, TABLE_NAME, TABLE_COLUMNS, rows)
        tb = tensorboard_writer(trainer)
        if tb is not None and self.top_k:
            for name, drift in drifts.items():
                k = min(self.top_k, drift.numel())
                top = torch.topk(drift, k)
                text = ", ".join(
                    f"u_{j}: {v:.3g}" for v, j in zip(top.values.tolist(), top.indices.tolist(), strict=True)
                )
                tb.add_text(weight_drift_tag(name, TOP_NEURONS), text, global_step=step)
