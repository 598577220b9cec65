"""Data-only reference scores: the validation RMSE of baselines fitted on the training pixels.

Used by :class:`callbacks.EpochsToThreshold` to fix a convergence threshold from the data before any training
(the epochs-to-converge study, docs/science.md §3). Nothing here depends on a model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["baseline_rmse"]


def _pixels(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(input pixels (N, C_in), target pixels (N, C_out)) of a batch; LR input bicubic-upsampled to the target grid."""
    x, y = batch["input"].double(), batch["target"].double()
    if x.shape[-2:] != y.shape[-2:]:
        x = torch.nn.functional.interpolate(x, size=y.shape[-2:], mode="bicubic", align_corners=False)
    return x.movedim(1, -1).reshape(-1, x.shape[1]), y.movedim(1, -1).reshape(-1, y.shape[1])


def _split_pixels(dm: Any, split: str, max_items: int = 4096) -> tuple[Tensor, Tensor]:
    """All finite (input, target) pixels of ``split``'s dataset, LR made by the datamodule's own degradation."""
    if not hasattr(dm, "datasets") or not callable(getattr(dm, "_make_dataset", None)):
        raise TypeError(
            f"baseline_rmse: {type(dm).__name__} is not a datamodules.SuperResolutionDataModule "
            "(expected `datasets` and `_make_dataset`); use rule='absolute' with a fixed value instead."
        )
    if split not in dm.datasets:
        dm.datasets[split] = dm._make_dataset(split)
    ds = dm.datasets[split]
    if len(ds) == 0:
        raise ValueError(f"baseline_rmse: the {split!r} split of {type(dm).__name__} is empty")
    step = max(1, len(ds) // max_items)
    xs, ys = [], []
    for i in range(0, len(ds), step):
        sample = ds[i]
        if "image" in sample:
            batch = dm.make_pair(sample["image"][None], augment=False, randomize=False)
        else:
            batch = {"input": sample["input"][None], "target": sample["target"][None]}
        x, y = _pixels(batch)
        ok = torch.isfinite(x).all(1) & torch.isfinite(y).all(1)
        xs.append(x[ok])
        ys.append(y[ok])
    x_all, y_all = torch.cat(xs), torch.cat(ys)
    if len(x_all) == 0:
        raise ValueError(f"baseline_rmse: the {split!r} split of {type(dm).__name__} has no finite pixel")
    return x_all, y_all


def baseline_rmse(dm: Any) -> dict[str, Any]:
    """Validation RMSE (per band, then averaged, as ``val/rmse``) of the mean and linear baselines.

    Both are fitted on the training split's pixels (every patch of the training lattice, no augmentation) and
    evaluated on the validation patches, in the datamodule's physical units: ``mean_baseline`` predicts the
    training mean of each target band, ``linear_baseline`` is the per-pixel least-squares map (with intercept)
    from the input bands to the targets.
    """
    xt, yt = _split_pixels(dm, "train")
    xv, yv = _split_pixels(dm, "val")
    mean = yt.mean(0)
    mean_band = ((yv - mean) ** 2).mean(0).sqrt()
    design = torch.cat([xt, torch.ones(len(xt), 1, dtype=xt.dtype)], 1)
    coef = torch.linalg.lstsq(design, yt).solution
    pred = torch.cat([xv, torch.ones(len(xv), 1, dtype=xv.dtype)], 1) @ coef
    lin_band = ((pred - yv) ** 2).mean(0).sqrt()
    return {
        "mean_baseline": float(mean_band.mean()),
        "mean_baseline_per_band": mean_band.tolist(),
        "linear_baseline": float(lin_band.mean()),
        "linear_baseline_per_band": lin_band.tolist(),
        "train_pixels": int(len(xt)),
        "val_pixels": int(len(xv)),
    }
