"""Atomic output: a file or folder appears under its final name complete, or not at all.

The one atomic-write helper of the project: every writer (checkpoints, exports, predicted scenes, statistics
caches, monitor tables and figures, reports) writes through :func:`atomic_output`::

    with atomic_output("runs/report/drift.png") as tmp:
        fig.savefig(tmp)                       # or torch.save(obj, tmp), rasterio.open(tmp, "w", ...), tmp.mkdir()

``tmp`` is a path that does not exist yet, with the target's own name (so libraries that pick a format from the
suffix, such as ``savefig`` or ``np.savez``, behave as they would on the target), inside a hidden private folder
beside the target. Create a file *or* a folder there; on success it is renamed over the target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output"]


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path for ``path``; when the block succeeds, move what was written there to ``path``.

    * A **file** replaces ``path`` with one ``os.replace`` (atomic on POSIX and Windows: same folder). An existing
      folder at ``path`` is an error (a file never silently replaces a folder).
    * A **folder** is renamed to ``path`` in one step when ``path`` does not exist; an existing folder is first
      moved aside and deleted after the swap, so ``path`` is briefly absent but never partly written.
    * Writing nothing is an error naming ``path``. On any error the temporary output is removed and ``path`` is
      left as it was. Files get the caller's usual permissions (the umask), not a private 0600.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp = staging / target.name
    try:
        yield tmp
        if tmp.is_dir() and not tmp.is_symlink():
            _replace_folder(tmp, target, staging)
        elif tmp.exists() or tmp.is_symlink():
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(f"atomic_output: {target} is a folder; a file cannot replace it")
            os.replace(tmp, target)
        else:
            raise FileNotFoundError(f"atomic_output: nothing was written for {target} (expected a file or folder at {tmp})")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(new: Path, target: Path, staging: Path) -> None:
    """Rename the folder ``new`` to ``target``, moving an existing ``target`` folder aside first."""
    if not target.exists() and not target.is_symlink():
        os.replace(new, target)
        return
    if not target.is_dir() or target.is_symlink():
        raise NotADirectoryError(f"atomic_output: {target} exists and is not a folder; a folder cannot replace it")
    old = staging / f"{target.name}.old"
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)  # put the previous folder back
        raise
