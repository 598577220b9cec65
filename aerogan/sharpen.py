"""``aerogan sharpen``: fit the models a product needs on the product itself, then write it at its finest resolution.

A model trained on one scene may not hold on another (other land cover, season, sensor calibration). A
multi-resolution product can teach its own model: Wald's protocol degrades every band group by the
ratio between a coarse group and the finest one, and a guided network learns to undo that one level
down, where the product's own coarse bands are the truth (DSen2, Lanaras et al. 2018). Nothing but the
product's own bands is used.

The models come from the groups of the product: every group coarser than the finest is a target, with all
finer groups as guides, finest first (Sentinel-2: T2 brings B05 B06 B07 B8A B11 B12 to 10 m with B02 B03
B04 B08; S6 brings B01 B09 to 10 m with both; a 20 m guide + 40 m bands input needs one x2 model). A
model starts from an ``--init`` checkpoint with the same target bands (fine-tuning) or from scratch, and
training stops on a wall-clock deadline: ``minutes`` is shared between the models in proportion to the
bands each produces, every fit ending at its own deadline (:class:`~aerogan.training_budget.DeadlineTimer`).
The product is then written exactly as ``aerogan product`` writes it.

Whole tiles work like crops: patches are read by window, the nodata lattice and the band summaries are
streamed by strips, no full-tile tensor is ever built.

Command line::

    aerogan sharpen S2_10m.tif S2_20m.tif S2_60m.tif --out S2_sharp.tif --minutes 8 [--init T2.ckpt --init S6.ckpt]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters_context

from aerogan.checkpoint_io import AtomicCheckpointIO
from aerogan.metrics import tags
from aerogan.prediction.product import (
    ProductReport,
    add_projection_argument,
    print_report,
    super_resolve_product,
)
from aerogan.super_resolution import SuperResolution
from aerogan.training_budget import BudgetProgressBar, DeadlineTimer
from datamodules.band_catalog import S2_BANDS, open_catalog
from datamodules.multires import MultiResolutionDataModule

__all__ = ["SharpenRecipe", "SharpenReport", "SharpenTask", "main", "plan_tasks", "sharpen"]

_RES_TOL = 1e-6
#: The instantiator Lightning records with hyperparameters given as a config, so checkpoints rebuild their nets.
_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"


@dataclass
class SharpenRecipe:
    """How each model is fitted on the product (defaults measured on the real Sentinel-2 crop; README).

    Attributes:
        objective: ``supervised``, ``regularized`` (with the critic) or ``adversarial``.
        lambda_adv / n_critic: the critic's weight and steps per generator step (regularized objective).
        num_features / num_blocks: the DSen2 generator trained from scratch (an ``--init`` keeps its own net).
        lr: Adam learning rate of the generator (constant: the fit ends on time, not on an epoch count).
        batch_size: patches per step.
        patch_size: training patch side in target pixels of the training level, per scale (other scales:
            ``8 * scale``); shrunk to fit small products.
        projection: train and predict with the consistency projection (the output, degraded, gives back the
            input bands exactly).
        gain_jitter / offset_jitter / brightness_jitter: radiometric augmentation (off: the product is its own
            domain).
    """

    objective: Literal["supervised", "regularized", "adversarial"] = "supervised"
    lambda_adv: float = 1e-3
    n_critic: int = 1
    num_features: int = 64
    num_blocks: int = 6
    lr: float = 5e-4
    batch_size: int = 16
    patch_size: dict[int, int] = field(default_factory=lambda: {2: 32, 3: 24, 6: 18})
    projection: bool = True
    gain_jitter: float = 0.0
    offset_jitter: float = 0.0
    brightness_jitter: float = 0.0

    def patch_for(self, scale: int) -> int:
        return int(self.patch_size.get(scale, 8 * scale))


@dataclass
class SharpenTask:
    """One model the product needs: its target bands, guide groups (finest first), scale and starting point."""

    target_bands: list[str]
    guide_bands: list[list[str]]
    scale: int
    init: str | None = None

    @property
    def label(self) -> str:
        s2 = {("B05", "B06", "B07", "B8A", "B11", "B12"): "T2", ("B01", "B09"): "S6"}
        name = s2.get(tuple(sorted(self.target_bands, key=_s2_rank)), "")
        return f"{name + ' ' if name else ''}{self.target_bands} x{self.scale}"


@dataclass
class FitSummary:
    """What one fit did: its task, steps, seconds, last training loss, and the checkpoint saved (if any)."""

    task: SharpenTask
    steps: int
    seconds: float
    loss: float
    checkpoint: str | None = None


@dataclass
class SharpenReport:
    """The product written and the fits that made its models; ``fit_seconds`` is the whole fitting phase."""

    product: ProductReport
    fits: list[FitSummary]
    fit_seconds: float
    minutes: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_path": str(self.product.out_path), "band_names": self.product.band_names, "minutes": self.minutes,
            "fit_seconds": self.fit_seconds, "write_seconds": self.product.seconds,
            "fits": [{**asdict(f.task), "steps": f.steps, "seconds": f.seconds, "loss": f.loss, "checkpoint": f.checkpoint} for f in self.fits],
            "models": [asdict(m) for m in self.product.models],
        }


def _s2_rank(name: str) -> int:
    return S2_BANDS.index(name) if name in S2_BANDS else len(S2_BANDS)


def plan_tasks(
    sources: Sequence[str | os.PathLike], init: Sequence[str | os.PathLike] = (), nodata: float | None = None
) -> list[SharpenTask]:
    """The models a product needs: one per group coarser than the finest, guided by every finer group.

    Groups are the product's bands by resolution. An ``init`` checkpoint joins the task whose target bands it
    produces (its band order and guide groups are kept; the product must hold them); an ``init`` that no
    task needs is an error naming it.
    """
    catalog = open_catalog([str(s) for s in sources], nodata)
    if not catalog:
        raise ValueError(f"{', '.join(map(str, sources))}: no bands found")
    by_res: dict[float, list[str]] = {}
    for name, ref in catalog.items():
        res = ref.file.resolution[0]
        key = next((r for r in by_res if abs(r - res) <= _RES_TOL * max(r, res)), res)
        by_res.setdefault(key, []).append(name)
    levels = sorted(by_res)
    if len(levels) < 2:
        raise ValueError(
            f"{', '.join(map(str, sources))}: every band is at {levels[0]:g} m; sharpening needs bands at two or more "
            "resolutions (a fine group to guide a coarse one)"
        )
    groups = [sorted(by_res[r], key=_s2_rank) for r in levels]
    tasks = []
    for i in range(1, len(levels)):
        ratio = levels[i] / levels[0]
        if abs(ratio - round(ratio)) > 1e-6 * ratio:
            raise ValueError(f"bands {groups[i]} at {levels[i]:g} m are not an integer multiple of the finest {levels[0]:g} m")
        tasks.append(SharpenTask(groups[i], [groups[k] for k in range(i)], round(ratio)))
    for path in init:
        meta = _read_checkpoint(path)["aerogan"]
        targets = list(meta.get("target_band_names") or [])
        task = next((t for t in tasks if sorted(t.target_bands) == sorted(targets)), None)
        if task is None:
            raise ValueError(
                f"--init {path}: the checkpoint produces {targets}, which no model of this product does "
                f"(the product's models produce {[t.target_bands for t in tasks]})"
            )
        guides = [list(g) for g in meta.get("guide_band_names") or []]
        if task.init is not None:
            raise ValueError(f"--init {path}: {task.label} already starts from {task.init}; give one checkpoint per model")
        missing = [b for g in guides for b in g if b not in catalog]
        if missing:
            raise ValueError(f"--init {path}: its guide bands {missing} are not in the product; available: {sorted(catalog)}")
        task.target_bands, task.guide_bands, task.init = targets, guides, str(path)
    return tasks


def _model_config(task: SharpenTask, recipe: SharpenRecipe, base: dict[str, Any] | None, guide_ratios: list[int]) -> dict[str, Any]:
    """The module's config (class paths and init args, as LightningCLI would save it), so checkpoints reload."""
    if base is not None:
        config = {k: v for k, v in base.items() if k not in ("_instantiator",)}
    else:
        config = {
            "_class_path": "aerogan.super_resolution.SuperResolution",
            "generator": {"class_path": "aerogan.nets.DSen2", "init_args": {
                "in_channels": len(task.target_bands), "out_channels": len(task.target_bands), "scale": task.scale,
                "num_features": recipe.num_features, "num_blocks": recipe.num_blocks,
                "guide_channels": [len(g) for g in task.guide_bands],
                "guide_ratios": list(guide_ratios),
            }},
            "critic": {"class_path": "aerogan.nets.PatchCritic", "init_args": {"num_features": 32, "num_layers": 3}},
        }
    config.update({
        "objective": recipe.objective, "lambda_adv": recipe.lambda_adv, "n_critic": recipe.n_critic,
        "consistency_projection": recipe.projection, "num_panels": 0,
        "optimizer_g": {"class_path": "torch.optim.Adam", "init_args": {"lr": recipe.lr, "betas": [0.9, 0.99]}},
        "optimizer_d": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-4, "betas": [0.0, 0.9]}},
        "scheduler_g": None, "scheduler_d": None,
    })
    return config


def _build_model(task: SharpenTask, recipe: SharpenRecipe, datamodule: MultiResolutionDataModule) -> SuperResolution:
    """A fresh guided DSen2, or the ``--init`` checkpoint's net (and normalisation) under the recipe's training."""
    from lightning.pytorch.cli import instantiate_module

    start = _read_checkpoint(task.init) if task.init is not None else None
    # the config the checkpoint was built from (class paths and init args of its nets), as Lightning saved it
    base = dict(start.get("hyper_parameters", {})) if start is not None else None
    if base is not None and "generator" not in base:
        raise ValueError(f"--init {task.init}: the checkpoint does not record its network (not written by aerogan fit or sharpen)")
    config = _model_config(task, recipe, base, list(datamodule.guide_ratios))
    with _given_hyperparameters_context(hparams=config, instantiator=_INSTANTIATOR):
        model = instantiate_module(SuperResolution, config)
    if start is not None:
        missing, _ = model.load_state_dict(start["state_dict"], strict=False)  # the normalisers resize to the checkpoint's
        lost = [k for k in missing if k.startswith(("generator.", "input_norm", "target_norm", "guide_norms"))]
        if lost:
            raise ValueError(f"--init {task.init}: the checkpoint lacks {lost[:5]} for its own network")
        model.metadata = dict(start["aerogan"])
    return model


def _read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """An ``--init`` checkpoint as saved (weights, metadata, config); checked to hold a trained model's metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init {path}: no such checkpoint")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "target_band_names" not in ckpt.get("aerogan", {}):
        raise ValueError(f"--init {path}: not a checkpoint written by aerogan fit or sharpen (no weights or band metadata)")
    return ckpt


def _datamodule(task: SharpenTask, recipe: SharpenRecipe, sources: Sequence[str], nodata: float | None, seed: int) -> MultiResolutionDataModule:
    """Wald pairs from the whole product (no held-out block: the product is the only data), patches fitted to it."""
    common = dict(
        sources=list(sources), target_bands=task.target_bands, guide_bands=task.guide_bands, batch_size=recipe.batch_size,
        samples_per_epoch=max(recipe.batch_size, 32 * recipe.batch_size), val_fraction=0.0, test_fraction=0.0, seed=seed,
        nodata=nodata, gain_jitter=recipe.gain_jitter, offset_jitter=recipe.offset_jitter,
        brightness_jitter=recipe.brightness_jitter,
    )
    patch = recipe.patch_for(task.scale)
    while True:
        try:
            return MultiResolutionDataModule(patch_size=patch, **common)
        except ValueError as err:
            if "smaller than one patch" not in str(err) or patch <= task.scale:
                raise
            patch -= task.scale


def _fit(task: SharpenTask, recipe: SharpenRecipe, sources: Sequence[str], deadline: float, *, nodata: float | None,
         seed: int, device: str | None, save_dir: Path | None) -> tuple[SuperResolution, FitSummary]:
    t0 = time.monotonic()
    L.seed_everything(seed, verbose=False)
    dm = _datamodule(task, recipe, sources, nodata, seed)
    model = _build_model(task, recipe, dm)
    timer = DeadlineTimer(deadline)
    callbacks: list[L.Callback] = [timer, BudgetProgressBar(timer, task.label)]
    logger: Any = False
    if save_dir is not None:
        from lightning.pytorch.loggers import TensorBoardLogger

        from aerogan.cli import MONITOR_DEFAULTS, MONITORS

        name = "_".join(task.target_bands)
        logger = TensorBoardLogger(save_dir=str(save_dir), name=name, default_hp_metric=False)
        callbacks += [cls(**MONITOR_DEFAULTS.get(key, {})) for key, cls in MONITORS.items()]
    accelerator = "auto" if device is None else ("gpu" if str(device).startswith("cuda") else str(device))
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, max_epochs=-1, max_steps=-1, limit_val_batches=0, num_sanity_val_steps=0,
        logger=logger, enable_checkpointing=False, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
        log_every_n_steps=10, enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    checkpoint = None
    if save_dir is not None:
        path = save_dir / f"{'_'.join(task.target_bands)}.ckpt"
        trainer.save_checkpoint(path)
        checkpoint = str(path)
    loss = trainer.callback_metrics.get(tags.TRAIN_LOSS, torch.tensor(float("nan")))
    summary = FitSummary(task, int(trainer.global_step), time.monotonic() - t0, float(loss), checkpoint)
    return model.eval(), summary


def sharpen(
    sources: Sequence[str | os.PathLike] | str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    init: Sequence[str | os.PathLike] = (),
    minutes: float = 8.0,
    save_models: str | os.PathLike | None = None,
    recipe: SharpenRecipe | None = None,
    nodata: float | None = None,
    seed: int = 0,
    device: str | None = None,
    projection: bool | None = None,
    tile: int | None = None,
    batch_size: int = 4,
    dtype: str | None = None,
) -> SharpenReport:
    """Fit the product's models on the product itself within ``minutes``, then write it (as ``aerogan product``).

    Args:
        sources: group rasters, a Sentinel-2 ``.SAFE`` folder or ``.zip``, or a STAC Item JSON.
        out_path: the product GeoTIFF (COG), written atomically.
        init: checkpoints to fine-tune from, one per model at most (matched by target bands).
        minutes: wall-clock budget of the fitting phase (data, models and training; not the writing).
        save_models: folder for the fitted checkpoints (``<target bands>.ckpt``) and their TensorBoard logs
            with the monitors; by default nothing but the product is written.
        recipe: training settings (:class:`SharpenRecipe`).
        nodata, tile, batch_size, dtype: as :func:`~aerogan.prediction.product.super_resolve_product`.
        seed: seed of the patch draws and initialisation.
        device: ``cpu``, ``cuda``, ... (default: Lightning's ``auto``).
        projection: override the recipe's consistency projection at inference only (``None``: as trained).
    """
    start = time.monotonic()
    if not (isinstance(minutes, int | float) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"minutes={minutes!r} must be a number > 0")
    recipe = recipe or SharpenRecipe()
    items = [str(sources)] if isinstance(sources, str | os.PathLike) else [str(s) for s in sources]
    tasks = plan_tasks(items, init, nodata)
    save_dir = Path(save_models) if save_models is not None else None
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    deadline = start + 60.0 * minutes
    weights = [len(t.target_bands) for t in tasks]
    models, fits = [], []
    for i, task in enumerate(tasks):
        now = time.monotonic()
        share = weights[i] / sum(weights[i:])
        model, fit = _fit(task, recipe, items, now + max(0.0, deadline - now) * share, nodata=nodata, seed=seed,
                          device=device, save_dir=save_dir)
        models.append(model)
        fits.append(fit)
    fit_seconds = time.monotonic() - start
    product = super_resolve_product(models, items, out_path, nodata=nodata, dtype=dtype, tile=tile, batch_size=batch_size,
                                    device=device, projection=projection)
    return SharpenReport(product, fits, fit_seconds, float(minutes))


def main(argv: Sequence[str] | None = None) -> SharpenReport | list[Any]:
    """``aerogan sharpen SOURCES... --out PRODUCT.tif [--init CKPT ...] [--minutes N] [--save-models DIR]``."""
    p = argparse.ArgumentParser(prog="aerogan sharpen", description=__doc__.splitlines()[0].strip("`: "))
    p.add_argument("sources", nargs="+", help="group rasters, a .SAFE folder or .zip, or a STAC Item JSON; with --out-dir: "
                                              "products (.SAFE folders or .zips, STAC Items or ItemCollections, folders of group rasters)")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="the output GeoTIFF (COG)")
    dest.add_argument("--out-dir", help="an archive: each product sharpened on itself, one COG per product in this folder; "
                                        "complete ones are skipped (see aerogan product --out-dir)")
    p.add_argument("--force", action="store_true", help="with --out-dir: make every product again")
    p.add_argument("--no-progress", action="store_true", help="with --out-dir: no progress bars")
    p.add_argument("--shard", default=None, metavar="I/N", help="with --out-dir: the I-th of N independent jobs (a SLURM array)")
    p.add_argument("--init", action="append", default=[], help="a checkpoint to fine-tune (repeat: one per model)")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of the fitting (default 8)")
    p.add_argument("--save-models", default=None, help="folder for the fitted checkpoints and their logs")
    p.add_argument("--objective", default=None, choices=["supervised", "regularized", "adversarial"],
                   help=f"training objective (default {SharpenRecipe.objective})")
    p.add_argument("--nodata", type=float, default=None, help="nodata value of every input (default: the files', else 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="torch device (default: Lightning's auto)")
    p.add_argument("--tile", type=int, default=None, help="prediction tile side in output px")
    p.add_argument("--dtype", default=None, help="output dtype (default: the input's)")
    p.add_argument("--report", default=None, help="also write the report (fits, consistency, warnings) as JSON here")
    add_projection_argument(p)
    args = p.parse_args(argv)
    recipe = SharpenRecipe(**({"objective": args.objective} if args.objective else {}))
    if args.out_dir is not None:
        return _archive(args, recipe)
    report = sharpen(args.sources, args.out, init=args.init, minutes=args.minutes, save_models=args.save_models, recipe=recipe,
                     nodata=args.nodata, seed=args.seed, device=args.device, projection=args.projection, tile=args.tile,
                     dtype=args.dtype)
    for f in report.fits:
        start = f"from {f.task.init}" if f.task.init else "from scratch"
        print(f"fitted {f.task.label} {start}: {f.steps} steps in {f.seconds:.1f} s, last loss {f.loss:.4g}"
              + (f", saved {f.checkpoint}" if f.checkpoint else ""))
    print(f"fitting took {report.fit_seconds:.1f} s of a {60 * report.minutes:.0f} s budget")
    print_report(report.product)
    if args.report:
        import json

        from aerogan.atomic import atomic_output

        with atomic_output(args.report) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return report


def _archive(args: argparse.Namespace, recipe: SharpenRecipe) -> list[Any]:
    """``--out-dir``: every product sharpened on itself, resumable, with the products table (one process per job;
    ``--shard I/N`` spreads an archive over a SLURM array)."""
    from aerogan.prediction.product import print_archive, product_record
    from aerogan.prediction.shards import parse_shard, run_archive

    def make(product: Any, out: Path, progress: Any) -> Any:
        report = sharpen(product.sources, out, init=args.init, minutes=args.minutes, save_models=None if args.save_models is None
                         else Path(args.save_models) / product.name, recipe=recipe, nodata=args.nodata, seed=args.seed,
                         device=args.device, projection=args.projection, tile=args.tile, dtype=args.dtype)
        record = product_record(product, report.product)
        record.seconds = report.fit_seconds + report.product.seconds
        return record

    records = run_archive(args.sources, args.out_dir, make, tool="aerogan sharpen", models_tag=None, shard=parse_shard(args.shard),
                          force=args.force, progress=not args.no_progress)
    print_archive(records, args.out_dir, "aerogan sharpen")
    return records


if __name__ == "__main__":
    from aerogan.allocator import reuse_freed_memory

    reuse_freed_memory()  # as the aerogan command runs (torchrun -m / srun python -m launch this module)
    main()
