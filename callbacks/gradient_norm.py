r"""
Gradient Norm Monitor
=====================

Per-optimizer gradient norms (total and per layer) and, for modules that expose their loss terms, the
gradient of each loss term separately: the *reaction* (``-∇ supervised``) and *diffusion* (``-∇ adversarial``)
fields of the adversarial-regularisation analysis.

"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn
from typing_extensions import override

from callbacks._logging import (
    current_step,
    is_due,
    log_scalars,
    optimizer_names,
    tensorboard_writer,
    validate_int_args,
    warn_if_no_tensorboard,
    write_histogram,
)
from callbacks.tags import (
    ADVERSARIAL_TERM,
    NONFINITE_COUNT,
    SUPERVISED_TERM,
    TERM_COSINE,
    TERM_RATIO,
    TERM_SUM,
    TOTAL,
    grad_hist_tag,
    grad_norm_tag,
    loss_term_tag,
)

__all__ = ["GradientNormMonitor"]

_RESERVED_TERM_NAMES = frozenset({TERM_SUM, TERM_RATIO, TERM_COSINE})


class GradientNormMonitor(Callback):
    r"""Log gradient norms per optimizer and per layer, and the gradients of the individual loss terms.

    **Optimizer gradients.** In ``on_before_optimizer_step`` (gradients already unscaled under AMP, not yet
    clipped; under manual optimization the hook fires once per ``opt.step()``) the norms are taken over the
    parameters of *that* optimizer only, so a GAN's generator norm never includes stale critic gradients. Each
    optimizer is named after the direct child of the LightningModule that owns all of its parameters
    (``generator``, ``critic``, ...), else ``opt<i>``. Logged every ``every_n_steps`` batches:

    - ``grad_norm/<opt>/total``: the ``norm_type``-norm over all gradients of the optimizer;
    - ``grad_norm/<opt>/<param name>``: per parameter, names as in ``pl_module.named_parameters()``
      (if ``per_layer``);
    - ``grad_norm/<opt>/nonfinite_count``: number of NaN/Inf gradient entries (norms are then NaN/Inf; nothing
      raises);
    - histograms ``grad_hist/<opt>/<param name>`` (TensorBoard only, if ``log_histograms``).

    If an optimizer steps several times in one batch (e.g. ``n_critic`` critic steps), only its first step of
    that batch is recorded.

    **Final values.** Whatever the cadence, the end of fit (``on_train_end``) logs the norms of each optimizer's
    last recorded step (its first step of the last batch it stepped in, at that batch's step) unless that step
    was already logged; to make this possible the per-parameter norms of every batch are kept on the device
    (no host transfer) until the next batch replaces them. Entries are not counted on those steps:
    ``nonfinite_count`` is then 0 when every norm is finite and left out otherwise (the norms are NaN/Inf). If the module has ``loss_terms``, the loss-term
    analysis also runs once more on the last training batch at the final weights, logged at the final step
    (the number of batches trained), the step at which :class:`~callbacks.WeightDriftMonitor` logs the drift
    of the final weights.

    **Loss-term gradients (reaction and diffusion).** If the LightningModule defines
    ``loss_terms(batch) -> Mapping[str, Tensor]`` (scalar terms that sum to the generator loss, e.g.
    ``{"supervised": ..., "adversarial": ...}``) then every ``loss_terms_every_n_steps`` batches, in
    ``on_train_batch_start`` (so at the weights and on the batch the coming step uses), the callback calls it
    and takes ``torch.autograd.grad`` of each term separately with respect to
    ``pl_module.loss_terms_parameters()`` (``(name, parameter)`` pairs) if defined, else all parameters that
    require gradients. With ``R = -∇ supervised`` (reaction) and ``D = -∇ adversarial`` (diffusion), it logs,
    per parameter (if ``per_layer``) and as ``total`` over all of them (2-norms):

    - ``grad_norm/terms/<term>/<param name>`` and ``.../total``: ``‖∇ term‖``, i.e. ``‖R‖`` and ``‖D‖``;
    - ``grad_norm/terms/sum/<param name>`` and ``.../total``: ``‖Σ_terms ∇ term‖ = ‖R + D‖``, the norm of the
      generator-loss gradient;
    - for a pair of terms ``(first, second)``: ``grad_norm/terms/ratio/...`` ``= ‖∇ second‖ / ‖∇ first‖`` and
      ``grad_norm/terms/cosine/...`` ``= cos(∇ first, ∇ second)``. The pair is ``("supervised",
      "adversarial")`` when both terms exist (then ratio ``= ‖D‖/‖R‖`` and cosine ``= cos(R, D)``, whatever
      other terms, e.g. a weight penalty, are present), else the two terms in the mapping's order when there
      are exactly two; otherwise no ratio/cosine. A layer where a norm is zero gets no ratio/cosine entry.

    Any term names work except ``sum``, ``ratio`` and ``cosine``. The extra forward/backward leaves training
    untouched: parameters get ``requires_grad=True`` only for its duration (manual optimization may have
    toggled them off), ``.grad`` is never written (``torch.autograd.grad`` returns the gradients), all module
    buffers (BatchNorm statistics, spectral-norm vectors) are restored and the RNG state is forked, so dropout
    or noise in ``loss_terms`` does not shift the training run. It runs without autocast (float32 for float32
    weights) and on every rank (no collectives; ranks run in lockstep so it costs no extra wall time and stays
    safe with ``SyncBatchNorm``); only rank zero writes.

    The x-axis is the batch counter Lightning's ``self.log`` uses (``fit_loop.epoch_loop._batches_that_stepped``),
    not ``trainer.global_step``, which counts optimizer steps (two per batch in a GAN). Cadences are due at
    batches ``0, n, 2n, ...``.

    Args:
        every_n_steps: log optimizer gradient norms every this many batches.
        per_layer: also log one entry per parameter (otherwise only totals and counts).
        norm_type: the p of the p-norm for optimizer gradients (``float('inf')`` for the max norm). Loss-term
            norms are always 2-norms, which the cosine needs.
        loss_terms_every_n_steps: run the loss-term analysis every this many batches; ``0`` disables it.
        log_histograms: also write gradient histograms to TensorBoard (computed on device, written with
            ``add_histogram_raw``; at the cadence only, not for the final values).
        enabled: ``False`` turns every hook into a no-op (how ``aerogan fit --monitors.gradient_norm.enabled
            false`` switches the monitor off).

    Raises:
        MisconfigurationException:
            If ``every_n_steps < 1``, ``loss_terms_every_n_steps < 0`` or ``norm_type`` is not positive.

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from callbacks import GradientNormMonitor
        >>> monitor = GradientNormMonitor(every_n_steps=50, loss_terms_every_n_steps=200)
        >>> trainer = Trainer(callbacks=[monitor])

    The module side of the loss-term contract::

        def loss_terms(self, batch):
            lr, hr = batch
            sr = self.generator(lr)
            return {"supervised": self.pixel_loss(sr, hr), "adversarial": self.adv_weight * self.g_loss(sr)}

        def loss_terms_parameters(self):
            return self.generator.named_parameters(prefix="generator")

    """

    def __init__(
        self,
        every_n_steps: int = 25,
        per_layer: bool = True,
        norm_type: float = 2.0,
        loss_terms_every_n_steps: int = 100,
        log_histograms: bool = False,
        enabled: bool = True,
    ) -> None:
        validate_int_args(("every_n_steps", every_n_steps, 1))
        validate_int_args(("loss_terms_every_n_steps", loss_terms_every_n_steps, 0), note=" (0 disables)")
        try:
            norm_type = float(norm_type)
        except (TypeError, ValueError):
            raise MisconfigurationException(f"`norm_type` must be a number, got {norm_type!r}.") from None
        if not norm_type > 0:
            raise MisconfigurationException(f"`norm_type` must be positive (or inf), got {norm_type!r}.")

        self.every_n_steps = every_n_steps
        self.per_layer = bool(per_layer)
        self.norm_type = norm_type
        self.loss_terms_every_n_steps = loss_terms_every_n_steps
        self.log_histograms = bool(log_histograms)
        self.enabled = bool(enabled)

        #: The values most recently computed (all ranks), tag -> float.
        self.last_metrics: dict[str, float] = {}
        self._optimizer_names: dict[int, str] = {}
        self._param_names: dict[int, str] = {}
        self._last_logged: dict[str, int] = {}
        self._last_seen: dict[str, int] = {}
        # per optimizer: (step, parameter names, on-device values) of its latest unlogged first step of a batch
        self._pending: dict[str, tuple[int, list[str], Tensor]] = {}
        self._last_batch: Any = None
        self._last_terms_step: int | None = None
        self._batches_seen = 0

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        self._param_names = {id(p): n for n, p in pl_module.named_parameters()}
        self._name_optimizers(trainer, pl_module)
        self._last_logged, self._last_seen, self._pending = {}, {}, {}
        self._last_batch = None
        self._last_terms_step = None
        if self.log_histograms:
            warn_if_no_tensorboard(self, trainer, "gradient histograms")

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self.enabled:
            return
        step = current_step(trainer, self._batches_seen)
        optimizer = getattr(optimizer, "_optimizer", optimizer)
        name = self._optimizer_names.get(id(optimizer))
        if name is None:  # optimizers were (re)created after fit start
            self._name_optimizers(trainer, pl_module)
            name = self._optimizer_names.get(id(optimizer), f"opt{len(self._optimizer_names)}")
        if self._last_seen.get(name) == step:  # only the optimizer's first step of a batch
            return
        self._last_seen[name] = step

        named = [
            (self._param_names.get(id(p), f"param{i}"), p)
            for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"])
            if p.grad is not None
        ]
        if not named:
            return
        pnames = [n for n, _ in named]
        if not is_due(step, self.every_n_steps):
            # norms only (the entry count would cost a pass over every gradient), kept on the device and logged
            # only if this turns out to be the optimizer's last step of the fit
            values = self._optimizer_values([p for _, p in named], count_nonfinite=False)
            self._pending[name] = (step, pnames, values)
            return
        self._pending.pop(name, None)
        self._log_optimizer(trainer, name, pnames, self._optimizer_values([p for _, p in named]), step)
        if self.log_histograms:
            writer = tensorboard_writer(trainer)
            if writer is not None:
                for pname, p in named:
                    write_histogram(writer, grad_hist_tag(name, pname), _dense(p.grad), step)

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self.enabled or not callable(getattr(pl_module, "loss_terms", None)):
            return
        step = current_step(trainer, self._batches_seen)
        if not is_due(step, self.loss_terms_every_n_steps):
            return
        self._log_terms(trainer, pl_module, batch, step)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batches_seen += 1
        if self.enabled and self.loss_terms_every_n_steps > 0 and callable(getattr(pl_module, "loss_terms", None)):
            self._last_batch = batch  # for the final loss-term analysis (one batch kept alive)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Final values: the last recorded optimizer steps, and the loss terms at the final weights."""
        if not self.enabled:
            return
        for name, (step, pnames, values) in sorted(self._pending.items()):
            if self._last_logged.get(name) != step:
                self._log_optimizer(trainer, name, pnames, values, step)
        self._pending = {}
        batch, self._last_batch = self._last_batch, None
        if batch is not None:
            # runs before the strategy's teardown; every rank computes (lockstep, no collective), rank zero writes
            self._log_terms(trainer, pl_module, batch, current_step(trainer, self._batches_seen))

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"batches_seen": self._batches_seen}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._batches_seen = int(state_dict.get("batches_seen", 0))

    # ------------------------------------------------------------------ computations

    def compute_term_gradients(self, pl_module: nn.Module, batch: Any) -> dict[str, float]:
        """Gradient of each term of ``pl_module.loss_terms(batch)``: returns the ``grad_norm/terms/...`` metrics.

        Public so it can be called outside a Trainer; leaves parameters, ``.grad``, buffers and RNG untouched.
        """
        named = _term_parameters(pl_module)
        params = [p for _, p in named]
        grads: dict[str, Sequence[Tensor | None]] = {}
        with _requires_grad(params), _preserved_state(pl_module), torch.enable_grad():
            terms = _check_terms(pl_module.loss_terms(batch))  # type: ignore[operator]
            items = list(terms.items())
            for i, (term, value) in enumerate(items):
                if value.requires_grad:
                    grads[term] = torch.autograd.grad(
                        value, params, retain_graph=i < len(items) - 1, allow_unused=True
                    )
                else:  # a constant term (e.g. weight 0): zero gradient
                    grads[term] = [None] * len(params)
            del terms, items
        return self._term_metrics([n for n, _ in named], params, grads)

    def _log_terms(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, step: int) -> None:
        if self._last_terms_step == step:
            return
        self._last_terms_step = step
        metrics = self.compute_term_gradients(pl_module, batch)
        self.last_metrics.update(metrics)
        log_scalars(trainer, metrics, step)

    @torch.no_grad()
    def _optimizer_values(self, params: list[Tensor], count_nonfinite: bool = True) -> Tensor:
        """``[total, nonfinite count, per-parameter norms...]`` of the gradients, on the device (no host sync).

        Without ``count_nonfinite`` the count is NaN (unknown); :meth:`_optimizer_metrics` then derives it.
        """
        grads = [_dense(p.grad) for p in params]  # type: ignore[arg-type]
        device = grads[0].device
        norms = _norms(grads, self.norm_type, device)
        total = torch.linalg.vector_norm(norms, ord=self.norm_type)
        if count_nonfinite:
            nonfinite = torch.stack([(~torch.isfinite(g)).sum().to(device) for g in grads]).sum().float()
        else:
            nonfinite = torch.full((), float("nan"), device=device)
        return torch.cat([total.view(1), nonfinite.view(1), norms])

    def _log_optimizer(self, trainer: pl.Trainer, name: str, pnames: list[str], values: Tensor, step: int) -> None:
        self._last_logged[name] = step
        metrics = self._optimizer_metrics(name, pnames, values.tolist())
        self.last_metrics.update(metrics)
        log_scalars(trainer, metrics, step)

    def _optimizer_metrics(self, name: str, pnames: list[str], values: list[float]) -> dict[str, float]:
        metrics = {grad_norm_tag(name, TOTAL): values[0]}
        count = values[1]
        if math.isnan(count) and all(math.isfinite(v) for v in values[2:]):
            count = 0.0  # uncounted, but a finite norm has no NaN/Inf entry
        if not math.isnan(count):  # uncounted with a non-finite norm: the NaN/Inf norms show it, no NaN count
            metrics[grad_norm_tag(name, NONFINITE_COUNT)] = count
        if self.per_layer:
            metrics.update({grad_norm_tag(name, pname): v for pname, v in zip(pnames, values[2:], strict=True)})
        return metrics

    def _term_metrics(
        self, names: list[str], params: list[Tensor], grads: Mapping[str, Sequence[Tensor | None]]
    ) -> dict[str, float]:
        terms = list(grads)
        pair = _ratio_pair(terms)
        ia, ib = (terms.index(pair[0]), terms.index(pair[1])) if pair else (0, 0)
        device = params[0].device
        zero = torch.zeros((), device=device)
        rows: list[Tensor] = []  # per parameter: one norm per term, the norm of the sum, [dot of the pair]
        for k in range(len(params)):
            gs = [grads[t][k] for t in terms]
            row = [_norm(g, 2.0).to(device) if g is not None else zero for g in gs]
            present = [g.float() for g in gs if g is not None]
            summed = torch.stack(present).sum(0) if present else None
            row.append(_norm(summed, 2.0).to(device) if summed is not None else zero)
            if pair:
                a, b = gs[ia], gs[ib]
                row.append(
                    (a.float() * b.float()).sum().to(device) if a is not None and b is not None else zero
                )
            rows.append(torch.stack(row))
        table = torch.stack(rows).tolist()  # one device->host transfer

        metrics: dict[str, float] = {}
        n_terms = len(terms)
        labels = [*terms, TERM_SUM]
        totals_sq = [0.0] * (n_terms + 1)
        dot_total = 0.0
        for name, row in zip(names, table, strict=True):
            for j, label in enumerate(labels):
                totals_sq[j] += row[j] ** 2
                if self.per_layer:
                    metrics[loss_term_tag(label, name)] = row[j]
            if pair:
                dot_total += row[n_terms + 1]
                if self.per_layer:
                    metrics.update(_pair_metrics(name, row[ia], row[ib], row[n_terms + 1]))
        totals = [math.sqrt(v) for v in totals_sq]
        for j, label in enumerate(labels):
            metrics[loss_term_tag(label, TOTAL)] = totals[j]
        if pair:
            metrics.update(_pair_metrics(TOTAL, totals[ia], totals[ib], dot_total))
        return metrics

    def _name_optimizers(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizers = [getattr(o, "_optimizer", o) for o in trainer.optimizers]
        names = [n if n != "terms" else "terms_opt" for n in optimizer_names(pl_module, optimizers)]
        self._optimizer_names = {id(o): n for o, n in zip(optimizers, names, strict=True)}


# ---------------------------------------------------------------------- helpers


def _dense(grad: Tensor) -> Tensor:
    grad = grad.detach()
    return grad.coalesce().values() if grad.is_sparse else grad


def _norms(grads: list[Tensor], p: float, device: torch.device) -> Tensor:
    """Per-tensor ``p``-norms (float32) on ``device``: one fused ``_foreach_norm`` (as ``clip_grad_norm_`` uses)
    when every gradient is a float32 tensor there, else one norm per tensor."""
    if all(g.dtype == torch.float32 and g.device == device and g.layout == torch.strided for g in grads):
        return torch.stack(torch._foreach_norm(grads, p))
    return torch.stack([_norm(g, p).to(device) for g in grads])


def _norm(t: Tensor, p: float) -> Tensor:
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return torch.linalg.vector_norm(t, ord=p).float()


def _ratio_pair(terms: list[str]) -> tuple[str, str] | None:
    """The two terms compared by ratio/cosine: (supervised, adversarial) if both exist, else the only two."""
    if SUPERVISED_TERM in terms and ADVERSARIAL_TERM in terms:
        return SUPERVISED_TERM, ADVERSARIAL_TERM
    if len(terms) == 2:
        return terms[0], terms[1]
    return None


def _pair_metrics(name: str, first: float, second: float, dot: float) -> dict[str, float]:
    out = {}
    if first > 0:
        out[loss_term_tag(TERM_RATIO, name)] = second / first
        if second > 0:
            out[loss_term_tag(TERM_COSINE, name)] = dot / (first * second)
    return out


def _term_parameters(pl_module: nn.Module) -> list[tuple[str, Tensor]]:
    getter = getattr(pl_module, "loss_terms_parameters", None)
    if callable(getter):
        named = [(str(n), p) for n, p in getter()]
        if not named or not all(isinstance(p, Tensor) for _, p in named):
            raise TypeError("`loss_terms_parameters()` must yield at least one (name, parameter) pair.")
    else:
        named = [(n, p) for n, p in pl_module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError("`loss_terms` analysis: the module has no trainable parameters.")
    return named


def _check_terms(terms: Any) -> Mapping[str, Tensor]:
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError(
            f"`loss_terms(batch)` must return a non-empty mapping name -> scalar tensor, got {type(terms)}."
        )
    for name, value in terms.items():
        if not isinstance(name, str) or name in _RESERVED_TERM_NAMES:
            raise ValueError(
                f"`loss_terms` names must be strings other than {sorted(_RESERVED_TERM_NAMES)}: {name!r}."
            )
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise TypeError(f"`loss_terms()[{name!r}]` must be a scalar tensor, got {value!r}.")
    return {name: value.reshape(()) for name, value in terms.items()}


@contextmanager
def _requires_grad(params: Iterable[Tensor]) -> Iterator[None]:
    """Enable ``requires_grad`` on ``params`` for the block, then restore each flag."""
    params = list(params)
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


@contextmanager
def _preserved_state(module: nn.Module) -> Iterator[None]:
    """Restore every buffer of ``module`` (object and values) and the CPU/CUDA RNG states after the block."""
    saved = [
        (owner, key, buf, buf.detach().clone())
        for owner in module.modules()
        for key, buf in owner._buffers.items()
        if buf is not None
    ]
    cuda = sorted(
        {t.device.index or 0 for t in [*module.parameters(), *module.buffers()] if t.device.type == "cuda"}
    )
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        with torch.no_grad():
            for owner, key, buf, copy in saved:
                owner._buffers[key] = buf
                buf.copy_(copy)
