"""Atomic checkpoint writing: a checkpoint appears under its name complete, or not at all.

Lightning's ``TorchCheckpointIO`` serialises to memory and then writes straight to the target path,
so a run killed mid-write (pre-emption, out of disk) can leave a truncated ``last.ckpt``. Here local
checkpoints go through :func:`aerogan.atomic.atomic_output`: written beside the target, flushed to disk, then
renamed over it (``os.replace`` is atomic on POSIX and Windows). Remote paths fall back to Lightning's.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO

from aerogan.atomic import atomic_output


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to ``path`` through a temporary file beside it, flushed to disk, and an atomic rename."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic (see module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        if not _is_local_file_protocol(str(path)):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)
