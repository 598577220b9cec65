r"""Shared plumbing of the monitoring callbacks (private).

Everything here is collective-free: no ``strategy.broadcast``/``reduce``/``barrier`` and no reads of synced
``trainer.callback_metrics``. A helper that must only run on rank zero says so; the callers guard it with
``trainer.is_global_zero`` around the writing only.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from lightning.fabric.loggers.tensorboard import TensorBoardLogger as _FabricTensorBoardLogger
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn

if TYPE_CHECKING:
    import lightning.pytorch as pl
    from torch.utils.tensorboard import SummaryWriter

__all__ = [
    "append_table",
    "current_step",
    "find_tensorboard",
    "is_due",
    "log_scalars",
    "optimizer_names",
    "run_folder",
    "tensorboard_writer",
    "validate_int_args",
    "validate_modules_arg",
    "warn_if_no_tensorboard",
    "warn_once",
    "write_histogram",
]


def find_tensorboard(trainer: pl.Trainer) -> TensorBoardLogger | None:
    """Return the first TensorBoard logger in ``trainer.loggers`` (Lightning or Fabric flavour), else ``None``."""
    for logger in trainer.loggers:
        if isinstance(logger, _FabricTensorBoardLogger):
            return logger  # type: ignore[return-value]
    return None


def tensorboard_writer(trainer: pl.Trainer) -> SummaryWriter | None:
    """The ``SummaryWriter`` of the TensorBoard logger, on rank zero only (other ranks get ``None``).

    ``logger.experiment`` is a no-op dummy on other ranks; returning ``None`` there lets callers skip the
    preparation (``.cpu()``, histograms, figures) as well as the write.
    """
    if not trainer.is_global_zero:
        return None
    logger = find_tensorboard(trainer)
    return None if logger is None else logger.experiment


def warn_once(owner: Any, key: str, message: str) -> None:
    """``rank_zero_warn`` ``message`` the first time ``key`` is seen on ``owner`` (one warning per instance)."""
    seen: set[str] = owner.__dict__.setdefault("_warned_keys", set())
    if key not in seen:
        seen.add(key)
        rank_zero_warn(message)


def warn_if_no_tensorboard(owner: Any, trainer: pl.Trainer, what: str) -> None:
    """Warn once per ``owner`` when no TensorBoard logger is attached: ``what`` is skipped, files are still written."""
    if find_tensorboard(trainer) is None:
        loggers = ", ".join(type(lg).__name__ for lg in trainer.loggers) or "none"
        warn_once(
            owner,
            "no_tensorboard",
            f"{type(owner).__name__}: no TensorBoardLogger in `trainer.loggers` (loggers: {loggers}); {what} "
            "are skipped. Scalars still go to the attached loggers and files are still written to the run folder.",
        )


def current_step(trainer: pl.Trainer, fallback: int) -> int:
    """The logger x-axis: one step per training batch, as used by ``self.log``.

    This is ``trainer.fit_loop.epoch_loop._batches_that_stepped`` (private in Lightning, hence the ``getattr``
    chain); ``fallback`` (the callback's own batch counter) is used if the attribute ever disappears.
    ``trainer.global_step`` is not used: it counts optimizer steps and grows by two per batch in a GAN.
    """
    epoch_loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(epoch_loop, "_batches_that_stepped", None)
    return int(step) if isinstance(step, int) else int(fallback)


def is_due(step: int, every_n: int) -> bool:
    """Cadence rule shared by all callbacks: due at steps (or epochs) ``0, n, 2n, ...``; ``n <= 0`` disables."""
    return every_n > 0 and step % every_n == 0


def run_folder(trainer: pl.Trainer) -> str:
    """Folder for on-disk artefacts: what ``trainer.log_dir`` gives, without its collective ``broadcast``.

    ``trainer.log_dir`` broadcasts from rank zero and would hang if called from a rank-zero-only branch. The rule
    is the same: the first logger's ``log_dir`` for TensorBoard/CSV loggers, else its ``save_dir``, else
    ``trainer.default_root_dir``. Meant to be called on rank zero, where the value is the one ``log_dir`` returns.
    """
    folder: str | None = None
    if trainer.loggers:
        first = trainer.loggers[0]
        folder = first.log_dir if isinstance(first, (TensorBoardLogger, CSVLogger)) else first.save_dir
    return os.fspath(folder) if folder is not None else os.fspath(trainer.default_root_dir)


def log_scalars(trainer: pl.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """Write ``metrics`` at ``step`` to every logger in ``trainer.loggers`` (rank zero only)."""
    if not metrics or not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=step)


@torch.no_grad()
def write_histogram(writer: SummaryWriter, tag: str, values: Tensor, step: int, bins: int = 64) -> None:
    """Histogram of the finite entries of ``values`` computed on their device, written with ``add_histogram_raw``.

    Only ``2 * bins + 5`` numbers leave the device (``add_histogram`` would copy the whole tensor to numpy).
    Non-finite entries are left out; nothing is written if no finite entry remains.
    """
    flat = values.detach().reshape(-1).float()
    flat = flat[torch.isfinite(flat)]
    if flat.numel() == 0:
        return
    lo, hi = flat.min(), flat.max()
    stats = torch.stack([lo, hi, flat.sum(), (flat * flat).sum()]).tolist()
    vmin, vmax, total, total_sq = stats
    if vmax <= vmin:  # constant data: widen to a tiny interval so the bucket has a width
        pad = max(abs(vmin) * 1e-6, 1e-12)
        lo_edge, hi_edge = vmin - pad, vmax + pad
    else:
        lo_edge, hi_edge = vmin, vmax
    counts = torch.histc(flat, bins=bins, min=lo_edge, max=hi_edge)
    limits = torch.linspace(lo_edge, hi_edge, bins + 1, device=flat.device)[1:]
    writer.add_histogram_raw(
        tag,
        min=vmin,
        max=vmax,
        num=int(flat.numel()),
        sum=total,
        sum_squares=total_sq,
        bucket_limits=limits.cpu().tolist(),
        bucket_counts=counts.cpu().tolist(),
        global_step=step,
    )


def _unique(names: Sequence[str]) -> list[str]:
    """Disambiguate repeated names as ``name``, ``name-1``, ``name-2`` (the ``LearningRateMonitor`` scheme)."""
    out: list[str] = []
    counts: dict[str, int] = {}
    for name in names:
        n = counts.get(name, 0)
        counts[name] = n + 1
        out.append(name if n == 0 else f"{name}-{n}")
    return out


def optimizer_names(pl_module: nn.Module, optimizers: Iterable[torch.optim.Optimizer]) -> list[str]:
    """Name each optimizer after the direct child of ``pl_module`` that owns all of its parameters.

    An optimizer whose parameters all belong to ``pl_module.generator`` is ``"generator"``, and so on; one whose
    parameters span several children (or sit on ``pl_module`` itself) is ``"opt<i>"`` with ``i`` its position.
    Repeated names get ``-1``, ``-2`` suffixes.
    """
    children = [(name, {id(p) for p in child.parameters()}) for name, child in pl_module.named_children()]
    names = []
    for i, optimizer in enumerate(optimizers):
        optimizer = getattr(optimizer, "_optimizer", optimizer)  # LightningOptimizer -> torch optimizer
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        owner = next((name for name, owned in children if ids and owned and ids <= owned), None)
        names.append(owner if owner is not None else f"opt{i}")
    return _unique(names)


def validate_modules_arg(modules: Sequence[str] | None, owner: str) -> list[str] | None:
    """Check the ``modules`` argument of a callback: ``None`` or a non-empty list of non-empty strings."""
    if modules is None:
        return None
    if isinstance(modules, str) or not all(isinstance(m, str) and m for m in modules) or not modules:
        raise MisconfigurationException(
            f"{owner}: `modules` must be None or a non-empty list of module names, got {modules!r}."
        )
    return list(modules)


def append_table(trainer: pl.Trainer, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Append ``rows`` to the CSV ``name`` in the run folder, writing ``header`` first if the file is new.

    Appending (rather than rewriting) keeps earlier rows across a resume. Call on rank zero only.
    """
    folder = run_folder(trainer)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    new_file = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new_file:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def validate_int_args(*checks: tuple[str, Any, int], note: str = "") -> None:
    """Raise ``MisconfigurationException`` unless each ``(name, value, minimum)`` is an int >= minimum."""
    for name, value, minimum in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise MisconfigurationException(f"`{name}` must be an integer >= {minimum}{note}, got {value!r}.")
