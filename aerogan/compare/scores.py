"""The comparison's scores beyond the test metrics: the threshold fixed from the data before any run, the
training-split RMSE and the whole-crop inference time of a fitted row (:func:`score_row`, the runs' ``after`` hook)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from aerogan.atomic import atomic_output
from aerogan.experiments import RunSpec, build
from aerogan.metrics import tags

__all__ = ["TEST_METRICS", "eval_batches", "fix_threshold", "inference", "score_row", "split_rmse", "write_threshold_overlay"]

#: Default threshold factor per rule (the preset's ``threshold_factor`` overrides).
FACTORS = {"bicubic": 0.5, "linear_baseline": 1.0}
#: Test metrics kept per row: tag -> key in the row's values.
TEST_METRICS = {
    tags.TEST_RMSE: "test_rmse",
    tags.TEST_RMSE_BICUBIC: "test_rmse_bicubic",
    tags.TEST_SRE: "test_sre",
    tags.TEST_SRE_BICUBIC: "test_sre_bicubic",
    tags.TEST_CONSISTENCY_RMSE: "test_consistency_rmse",
    tags.TEST_CONSISTENCY_RMSE + tags.BICUBIC: "test_consistency_rmse_bicubic",
    tags.TEST_HALLUCINATION: "test_hallucination",
}


def eval_batches(dm: Any, split: str, max_windows: int | None = None) -> Iterator[dict[str, Any]]:
    """Deterministic batches ``{"input", "target"[, "guides"]}`` of ``split`` (every k-th window, no augmentation)."""
    from torch.utils.data import DataLoader, Subset

    if split not in dm.datasets:
        dm.setup("fit" if split in ("train", "val") else split)
    ds = dm.datasets[split]
    step = 1 if not max_windows else max(1, math.ceil(len(ds) / max_windows))
    for batch in DataLoader(Subset(ds, range(0, len(ds), step)), batch_size=dm.batch_size, shuffle=False):
        yield dm.on_after_batch_transfer(batch, 0)


def fix_threshold(dm: Any, factors: dict[str, float] | None = None) -> dict[str, Any]:
    """The validation-RMSE threshold, from the data alone: ``factor x`` the bicubic (or linear) baseline."""
    import torch.nn.functional as F

    from aerogan.metrics import BandRMSE

    factors = {**FACTORS, **(factors or {})}
    idx = dm.target_in_input
    if idx is not None and dm.scale > 1:
        rule, metric = "bicubic", BandRMSE(dm.out_channels)
        for batch in eval_batches(dm, "val"):
            up = F.interpolate(batch["input"][:, idx].float(), scale_factor=dm.scale, mode="bicubic", align_corners=False)
            metric.update(up, batch["target"].float())
        baseline = float(metric.compute().mean())
        what = "the bicubic validation RMSE of the task's data (bicubic upsampling of the LR target bands)"
    else:
        from datamodules.baselines import baseline_rmse

        rule = "linear_baseline"
        baseline = float(baseline_rmse(dm)["linear_baseline"])
        what = ("the validation RMSE of a per-pixel linear least-squares map (with intercept) from the input bands to "
                "the targets, fitted on the training pixels (the task has no bicubic baseline)")  # fmt: skip
    factor = float(factors[rule])
    value = factor * baseline
    text = (f"{tags.VAL_RMSE} <= {factor:g} x {what} = {factor:g} x {baseline:.6g} = {value:.6g} (per band in data units, "
            "then averaged over bands; computed from the data before any run)")  # fmt: skip
    return {"rule": rule, "factor": factor, "baseline": baseline, "value": value, "monitor": tags.VAL_RMSE, "text": text}


def write_threshold_overlay(out: Path, value: float) -> Path:
    """``<out>/threshold.yaml``: the fits' callbacks (the threshold recorder and a last-checkpoint writer)."""
    cfg = {"trainer": {"callbacks": [
        {"class_path": "callbacks.EpochsToThreshold",
         "init_args": {"monitor": tags.VAL_RMSE, "rule": "absolute", "value": float(value), "stop_on_reach": False}},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True, "save_top_k": 0}},
    ]}}  # fmt: skip
    path = out / "threshold.yaml"
    with atomic_output(path) as tmp:
        tmp.write_text("# written by aerogan compare: the threshold fixed before the runs\n" + yaml.safe_dump(cfg, sort_keys=False))
    return path


def split_rmse(model: Any, dm: Any, split: str, max_windows: int) -> float:
    """RMSE (data units, per band then averaged) of ``model`` on up to ``max_windows`` windows of ``split``."""
    from aerogan.metrics import BandRMSE

    metric = BandRMSE(dm.out_channels)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for batch in eval_batches(dm, split, max_windows):
            guides = [g.to(device) for g in batch.get("guides", ())]
            sr = model.super_resolve(batch["input"].to(device), guides)
            metric.update(sr.float().cpu(), batch["target"].float())
    return float(metric.compute().mean())


def inference(model: Any, dm: Any, folder: Path, device: torch.device, spec: RunSpec) -> dict[str, Any]:
    """Wall seconds to predict the task's whole crop(s), as ``aerogan predict`` does, written under ``folder``.

    Scene datamodules fix their prediction plan (tiles, the overlap measured on the model) once, so each row
    predicts through a fresh one writing to ``folder``.
    """
    t0 = time.perf_counter()
    scenes = dm.prediction_scenes()
    if scenes is not None:
        from aerogan.inference import super_resolve_product
        from aerogan.prediction.api import model_scale

        options = dm.product_options(model_scale(model))
        products = []
        for scene in scenes:
            report = super_resolve_product(model, scene, folder / dm.product_path(scene).name, device=device, **options)
            products.append(str(report.out_path))
        how = "super_resolve_product: the whole crop, every band on the finest grid, written as a COG"
    else:
        import lightning as L

        fresh = build([*spec.cli_args(), f"--data.init_args.output_dir={folder}"]).datamodule
        trainer = L.Trainer(accelerator=device.type, devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.predict(model, datamodule=fresh, return_predictions=False)
        products = sorted(str(p) for p in folder.glob("*") if p.is_file())
        how = "aerogan predict's path (Trainer.predict with the scene writer): every prediction scene of the task"
    return {"inference_s": time.perf_counter() - t0, "inference_how": how, "products": products}


def score_row(spec: RunSpec, cli: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The comparison's columns of one fitted and tested run (the :class:`RunSpec` ``after`` hook): the test
    metrics under the table's names, the training-split RMSE and the whole-crop inference time."""
    model, dm = cli.model, cli.datamodule
    device = cli.trainer.strategy.root_device
    values: dict[str, Any] = {key: record["metrics"].get(tag) for tag, key in TEST_METRICS.items()}
    values["train_rmse"] = split_rmse(model, dm, "train", int(spec.labels.get("train_windows", 256)))
    values.update(inference(model, dm, Path(record["run_dir"]) / "predictions", device, spec))
    history = record.get("history") or []
    return {**values, "history": [{"epoch": h["epoch"], "value": h["value"]} for h in history],
            "best_val_rmse": record.get("best_value"), "final_val_rmse": record.get("final_value"),
            "seconds_per_epoch": (record.get("wall_time_s") or 0.0) / max(1, len(history)),
            "checkpoint": record.get("ckpt_path"), "samples_per_epoch": getattr(dm, "samples_per_epoch", None)}  # fmt: skip
