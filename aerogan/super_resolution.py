"""Super-resolution / band synthesis specialisation of :class:`AdversarialRegularization`.

Adds what a remote-sensing user expects around the objective: per-band normalisation taken from the
datamodule and stored in the checkpoint, metrics on physical values (PSNR, SSIM, SAM, per-band RMSE;
ERGAS at test) for the model *and* the bicubic baseline, the "trustworthy pixels" metrics (consistency
with the input under the data's degradation, synthesis over the upsampled input, per-pixel correctness),
TensorBoard sample panels with a correctness map, and prediction in physical units. Data properties
(band counts, scale, band names, data range, the nominal degradation) come from the datamodule at
``setup`` and travel in the checkpoint under ``"aerogan"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from aerogan.adversarial import AdversarialRegularization
from aerogan.degradation import GaussianBlockMean
from aerogan.metrics import (
    BandRMSE,
    Consistency,
    Correctness,
    SignalToReconstructionError,
    Synthesis,
    ergas,
    image_metrics,
    tags,
)
from aerogan.nets.projection import ConsistencyProjection
from aerogan.normalization import BandNormalizer
from aerogan.panels import luminance, render_correctness, render_panels

if TYPE_CHECKING:
    from datamodules.contract import SuperResolutionData

_METADATA_KEYS = ("scale", "input_band_names", "target_band_names", "target_in_input", "data_range", "rgb_bands", "degradation")
#: The metrics that need the upsampled input (consistency also needs the data's degradation).
_TRUST_METRICS = ("consistency", "baseline_consistency", "synthesis", "correctness")


class SuperResolution(AdversarialRegularization):
    """Adversarially regularized SR for any band count and integer scale.

    Args:
        generator / critic: the networks f and g.
        num_panels: samples shown in the TensorBoard panel (0 disables panels).
        panel_every_n_epochs: validation epochs between panels.
        consistency_projection: end every generator pass with :class:`~aerogan.nets.ConsistencyProjection`
            (the minimum change that makes the output, degraded by the data's nominal degradation, give back
            the input bands exactly), in training, evaluation and prediction alike. Needs the target bands
            among the inputs and a degradation the projection can invert (checked at setup).
        **kwargs: the other arguments of :class:`AdversarialRegularization` (objective, losses, lambda_adv,
            n_critic, optimizers, ...), passed on unchanged.
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module | None = None,
        num_panels: int = 4,
        panel_every_n_epochs: int = 1,
        consistency_projection: bool = False,
        **kwargs: Any,
    ) -> None:
        # jsonargparse follows **kwargs into AdversarialRegularization.__init__, so the CLI and
        # --print_config list (and validate) every one of its arguments under model.init_args.
        super().__init__(generator=generator, critic=critic, **kwargs)
        if num_panels < 0 or panel_every_n_epochs < 1:
            raise ValueError(f"model.num_panels ({num_panels}) must be >= 0 and model.panel_every_n_epochs ({panel_every_n_epochs}) >= 1")
        self.num_panels = num_panels
        self.panel_every_n_epochs = panel_every_n_epochs
        self.consistency_projection = bool(consistency_projection)
        self._projection: ConsistencyProjection | None = None
        self.input_norm = BandNormalizer()
        self.target_norm = BandNormalizer()
        # one normaliser per guide group of a guided generator (multi-resolution data), finest first
        self.guide_norms = nn.ModuleList(BandNormalizer() for _ in getattr(generator, "guide_channels", ()))
        self.metadata: dict[str, Any] = {}
        self._metrics_ready = False
        self._trust_metrics: tuple[str, ...] = ()
        self._baseline_seen: set[str] = set()

    # ------------------------------------------------------------------ data properties
    def setup(self, stage: str) -> None:
        # deferred: the scene datamodules import aerogan.prediction, which imports this module
        from datamodules.contract import check_datamodule

        datamodule = self.trainer.datamodule if self._trainer is not None else None
        # the one check of the datamodule: it names every member it lacks (datamodules.contract)
        dm = check_datamodule(datamodule) if datamodule is not None else None
        if dm is not None:
            self._check_generator(dm)
            previous = dict(self.metadata)
            # the normalisation in use: the datamodule's, unless the buffers came from a checkpoint (fine-tuning)
            normalization = previous.get("normalization")
            if not self.input_norm.initialized:
                stats = dm.statistics()
                normalization = dict(stats.get("normalization", {"kind": "zscore"}))
                self.input_norm.set(stats["input_mean"], stats["input_std"])
                self.target_norm.set(stats["target_mean"], stats["target_std"])
                for norm, mean, std in zip(self.guide_norms, stats.get("guide_mean", []), stats.get("guide_std", []), strict=True):
                    norm.set(mean, std)
            self.metadata = {
                "scale": dm.scale,
                # paired sensors: input and target bands index different files, so the datamodule names them
                "input_band_names": dm.input_band_names(),
                "target_band_names": dm.target_band_names(),
                "target_in_input": dm.target_in_input,
                "data_range": dm.data_range,
                "rgb_bands": dm.rgb_bands,
                "degradation": dict(dm.degradation_spec),
            }
            if self.guide_norms:
                self.metadata["guide_band_names"] = dm.guide_band_names()
                self.metadata["guide_ratios"] = list(dm.guide_ratios)
            if normalization is not None:
                self.metadata["normalization"] = normalization
            # what the model was last trained on (the domain-shift guard compares each new scene with it); data
            # without a summary (empty) keeps the one a checkpoint brought, as does evaluation on other data
            summary = dm.input_summary() if stage == "fit" or "input_summary" not in previous else {}
            if summary:
                self.metadata["input_summary"] = summary
            elif "input_summary" in previous:
                self.metadata["input_summary"] = previous["input_summary"]
        if not self.input_norm.initialized:
            raise RuntimeError(
                "SuperResolution needs band statistics: use a datamodule with statistics() or load a checkpoint"
            )
        if self.consistency_projection and dm is not None:
            self._check_projection(dm.patch_size)
        self._build_metrics()

    def _check_generator(self, dm: SuperResolutionData) -> None:
        """Fail before training when the generator cannot map the data's LR patches to its HR patches."""
        p = dm.patch_size
        x = torch.zeros(1, dm.in_channels, p // dm.scale, p // dm.scale, device=self.device)
        data_guides = list(zip(dm.guide_channels, dm.guide_ratios, strict=True))
        net_guides = list(zip(getattr(self.generator, "guide_channels", ()), getattr(self.generator, "guide_ratios", ()), strict=True))
        if data_guides != net_guides:
            raise ValueError(
                f"the data has guide groups (channels, ratio) {data_guides} but the generator was built for {net_guides}: "
                "model.generator.guide_channels and guide_ratios must match data.guide_channels and data.guide_ratios "
                "(the CLI links them from a multi-resolution datamodule; a guided net needs guided data)"
            )
        guides = tuple(torch.zeros(1, c, p // r, p // r, device=self.device) for c, r in data_guides)
        was_training = self.generator.training
        self.generator.eval()
        try:
            with torch.no_grad():
                y = super().generate(x, guides)  # the network alone: the projection needs the statistics set below
            if self.critic is not None:
                with torch.no_grad():
                    self.judge(y, guides)  # materialises lazy critics before DDP wraps the model
        except Exception as err:  # noqa: BLE001 - re-raised with the configuration that caused it
            raise ValueError(
                f"the generator cannot take the data's input (batch of {dm.in_channels} bands, "
                f"{p // dm.scale}x{p // dm.scale} px): {err}. Check model.generator.in_channels, data.input_bands and data.patch_size"
            ) from err
        finally:
            self.generator.train(was_training)
        expected = (1, dm.out_channels, p, p)
        if tuple(y.shape) != expected:
            raise ValueError(
                f"the generator maps a {tuple(x.shape)} input to {tuple(y.shape)}, but the data needs {expected}: "
                f"model.generator.out_channels must be {dm.out_channels} and model.generator.scale {dm.scale}"
            )

    def _build_metrics(self) -> None:
        if self._metrics_ready:
            return
        rng = float(self.metadata.get("data_range", 1.0))
        nb = self.target_norm.mean.numel()
        self.val_metrics = image_metrics(rng, nb).to(self.device)
        self.val_baseline = image_metrics(rng, nb).to(self.device)
        self.val_rmse = BandRMSE(nb).to(self.device)
        self.test_metrics = image_metrics(rng, nb).to(self.device)
        self.test_baseline = image_metrics(rng, nb).to(self.device)
        self.test_rmse = BandRMSE(nb).to(self.device)
        self.test_baseline_rmse = BandRMSE(nb).to(self.device)
        scale = int(self.metadata.get("scale", 1))
        self.test_ergas = ergas(scale).to(self.device)
        self.test_baseline_ergas = ergas(scale).to(self.device)
        for stage in ("val", "test"):
            setattr(self, f"{stage}_sre", SignalToReconstructionError(nb).to(self.device))
            setattr(self, f"{stage}_baseline_sre", SignalToReconstructionError(nb).to(self.device))
        self._build_trust_metrics(nb, scale)
        self._metrics_ready = True

    def _build_trust_metrics(self, nb: int, scale: int) -> None:
        """Consistency (and its bicubic twin), synthesis and correctness, where they are defined.

        They compare the output with the upsampled input, so band synthesis (target bands not among the
        inputs, or scale 1) has none: one warning says so. Consistency degrades the output with the data's
        nominal degradation (``metadata["degradation"]``, from the datamodule or the checkpoint); without it,
        only consistency is skipped.
        """
        if self.metadata.get("target_in_input") is None or scale == 1:
            rank_zero_warn(
                "SuperResolution: consistency, synthesis and correctness are not computed: they compare the output "
                "with the upsampled input, which band synthesis (target bands not among the inputs, or scale 1) "
                f"does not have (data scale {scale}, target_in_input {self.metadata.get('target_in_input')})"
            )
            self._trust_metrics = ()
            return
        spec = self.metadata.get("degradation")
        names = list(_TRUST_METRICS)
        if spec is None:
            rank_zero_warn(
                "SuperResolution: consistency is not computed: the datamodule states no degradation_spec "
                "({'scale': int, 'sigma': HR pixels}) and the checkpoint holds none"
            )
            names = [n for n in names if not n.endswith("consistency")]
        else:
            if int(spec.get("scale", -1)) != scale or float(spec.get("sigma", -1.0)) < 0:
                raise ValueError(
                    f"the data's degradation_spec {spec} must be {{'scale': {scale}, 'sigma': >= 0}} (HR pixels) "
                    f"for data of scale {scale}"
                )
        for stage in ("val", "test"):
            if spec is not None:
                for name in ("consistency", "baseline_consistency"):
                    metric = Consistency(nb, scale, float(spec["sigma"]), spatial=True)
                    setattr(self, f"{stage}_{name}", metric.to(self.device))
            setattr(self, f"{stage}_synthesis", Synthesis(nb).to(self.device))
            setattr(self, f"{stage}_correctness", Correctness().to(self.device))
        self._trust_metrics = tuple(names)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["aerogan"] = dict(self.metadata)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        stored = checkpoint.get("aerogan", {})
        self.metadata = {**stored, **self.metadata}
        if "normalization" in stored:  # the buffers just loaded are the checkpoint's, so is what they mean
            self.metadata["normalization"] = stored["normalization"]

    # ------------------------------------------------------------------ model in physical units
    def prepare_batch(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.input_norm(batch["input"]), self.target_norm(batch["target"])

    def prepare_guides(self, batch: Mapping[str, Any]) -> tuple[Tensor, ...]:
        guides = batch.get("guides", ()) if isinstance(batch, Mapping) else ()
        return self.normalize_guides(guides)

    def normalize_guides(self, guides: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Physical guide groups (finest first) in network space; their count must be the generator's."""
        if len(guides) != len(self.guide_norms):
            raise ValueError(
                f"the generator takes {len(self.guide_norms)} guide group(s) "
                f"({self.metadata.get('guide_band_names', [])}) but {len(guides)} were given"
            )
        return tuple(norm(g) for norm, g in zip(self.guide_norms, guides, strict=True))

    def generate(self, x: Tensor, guides: Sequence[Tensor] = (), network: nn.Module | None = None) -> Tensor:
        """The generator's output, projected onto the outputs consistent with ``x`` when ``consistency_projection``.

        The projection runs in normalised target space: the degradation is linear, per band, and keeps
        constants, so consistency there is consistency in physical units.
        """
        pred = super().generate(x, guides, network)
        if not self.consistency_projection:
            return pred
        lr = self.target_norm(self.input_norm.inverse(x)[:, self.metadata["target_in_input"]])
        if pred.dtype in (torch.bfloat16, torch.float16):  # a mixed-precision network: the solver still runs in float32
            with torch.autocast(pred.device.type, enabled=False):
                return self._projector()(pred.float(), lr.float())
        return self._projector()(pred, lr.to(pred.dtype))

    def physical(self, y: Tensor) -> Tensor:
        """Normalised target-space tensors in the data's units (the spectral-angle term compares these)."""
        return self.target_norm.inverse(y)

    def _projector(self) -> ConsistencyProjection:
        """The projection for the data's nominal degradation (``metadata["degradation"]``), built once."""
        if self._projection is None:
            if self.metadata.get("target_in_input") is None or int(self.metadata.get("scale", 1)) == 1:
                raise ValueError(
                    "model.consistency_projection: true needs the target bands among the inputs at a scale > 1 "
                    f"(the data has target_in_input {self.metadata.get('target_in_input')}, scale {self.metadata.get('scale')}); "
                    "band synthesis has no input to be consistent with: set it to false"
                )
            spec = self.metadata.get("degradation")
            if spec is None:
                raise ValueError(
                    "model.consistency_projection: true needs the data's degradation (a datamodule with degradation_spec, "
                    "or a checkpoint that stores it)"
                )
            self._projection = ConsistencyProjection(GaussianBlockMean(int(spec["scale"]), float(spec["sigma"])))
        return self._projection

    def _check_projection(self, patch_size: int) -> None:
        """Fail at setup, not mid-training, when the projection cannot invert the data's degradation."""
        projector = self._projector()
        scale = int(self.metadata["scale"])
        n = self.target_norm.mean.numel()
        generator = torch.Generator().manual_seed(0)
        sr = torch.randn(1, n, patch_size, patch_size, generator=generator)
        lr = torch.randn(1, n, patch_size // scale, patch_size // scale, generator=generator)
        with torch.no_grad():
            projector(sr, lr)  # raises a ValueError naming model.consistency_projection when it cannot

    def super_resolve(self, x: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """Physical LR input (B, C_in, h, w) (and guide groups) -> physical SR output (B, C_out, h*s, w*s)."""
        pred = self.generate(self.input_norm(x), self.normalize_guides(guides), self.inference_generator)
        return self.target_norm.inverse(pred)

    def bicubic(self, x: Tensor) -> Tensor | None:
        """The bicubic baseline of the target bands, or None when they are not among the inputs."""
        idx = self.metadata.get("target_in_input")
        if idx is None:
            return None
        scale = int(self.metadata.get("scale", 1))
        lr = x[:, idx]
        return lr if scale == 1 else F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, batch: Mapping[str, Tensor], stage: str) -> tuple[Tensor, Tensor | None]:
        x_n, y_n = self.prepare_batch(batch)
        pred_n = self.generate(x_n, self.prepare_guides(batch), self.inference_generator)
        loss = self.pixel_loss(pred_n, y_n)
        self.log(tags.tag(stage, tags.LOSS), loss, prog_bar=stage == tags.VAL, on_epoch=True, sync_dist=True, batch_size=x_n.shape[0])
        sr = self.target_norm.inverse(pred_n.float())
        hr = batch["target"].float()
        base = self.bicubic(batch["input"].float())
        getattr(self, f"{stage}_metrics").update(sr, hr)
        getattr(self, f"{stage}_rmse").update(sr, hr)
        getattr(self, f"{stage}_sre").update(sr, hr)
        if base is not None:
            getattr(self, f"{stage}_baseline").update(base, hr)
            getattr(self, f"{stage}_baseline_sre").update(base, hr)
            self._update_trust_metrics(stage, sr, base, hr, batch["input"].float()[:, self.metadata["target_in_input"]])
            self._baseline_seen.add(stage)
        if stage == "test":
            self.test_ergas.update(sr, hr)
            if base is not None:
                self.test_baseline_rmse.update(base, hr)
                self.test_baseline_ergas.update(base, hr)
        return sr, base

    def _update_trust_metrics(self, stage: str, sr: Tensor, base: Tensor, hr: Tensor, lr: Tensor) -> None:
        """Consistency of SR and bicubic with the input ``lr`` (target bands), synthesis, correctness."""
        if "consistency" in self._trust_metrics:
            getattr(self, f"{stage}_consistency").update(sr, lr)
            getattr(self, f"{stage}_baseline_consistency").update(base, lr)
        if "synthesis" in self._trust_metrics:
            getattr(self, f"{stage}_synthesis").update(sr, base)
            getattr(self, f"{stage}_correctness").update(sr, base, hr)

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        sr, base = self._evaluate(batch, "val")
        if batch_idx == 0 and self._should_render_panels():
            self._log_panels(batch, sr, base)

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        model = getattr(self, f"{stage}_metrics")
        baseline = getattr(self, f"{stage}_baseline")
        values = {tags.tag(stage, k): v for k, v in model.compute().items()}
        base_updated = stage in self._baseline_seen
        self._baseline_seen.discard(stage)
        base_values = {tags.tag(stage, k, bicubic=True): v for k, v in baseline.compute().items()} if base_updated else {}
        rmse = getattr(self, f"{stage}_rmse").compute()
        names = self.metadata.get("target_band_names") or [f"B{i}" for i in range(rmse.numel())]
        values.update({tags.tag(stage, tags.RMSE, band=n): v for n, v in zip(names, rmse, strict=True)})
        values[tags.tag(stage, tags.RMSE)] = rmse.mean()
        values[tags.tag(stage, tags.SRE)] = getattr(self, f"{stage}_sre").compute().mean()
        psnr_tag = tags.tag(stage, tags.PSNR)
        if base_values:
            values[tags.tag(stage, tags.SRE, bicubic=True)] = getattr(self, f"{stage}_baseline_sre").compute().mean()
            values.update(self._trust_values(stage, names))
            values.update(base_values)
            values[tags.tag(stage, tags.PSNR_GAIN)] = values[psnr_tag] - base_values[tags.tag(stage, tags.PSNR, bicubic=True)]
        if stage == tags.TEST:
            values[tags.tag(stage, tags.ERGAS)] = self.test_ergas.compute()
            if base_updated:
                values[tags.tag(stage, tags.ERGAS, bicubic=True)] = self.test_baseline_ergas.compute()
                values[tags.tag(stage, tags.RMSE, bicubic=True)] = self.test_baseline_rmse.compute().mean()
        psnr = values.pop(psnr_tag)
        self.log_dict({k: v.float() for k, v in values.items()}, prog_bar=False)
        self.log(psnr_tag, psnr.float(), prog_bar=True)
        self._reset_metrics(stage)

    def _trust_values(self, stage: str, names: Sequence[str]) -> dict[str, Tensor]:
        """``{stage}/consistency/...`` (with ``_bicubic`` twins), ``{stage}/synthesis/...``, ``{stage}/correctness/...``.

        Synthesis and correctness have no bicubic twin: the bicubic output *is* the upsampled input, so its
        synthesis is 0 and every classified pixel of it is an omission, by definition.
        """
        values: dict[str, Tensor] = {}
        multiband = len(names) > 1
        if "consistency" in self._trust_metrics:
            for bicubic, name in ((False, "consistency"), (True, "baseline_consistency")):
                c = getattr(self, f"{stage}_{name}").compute()
                for key in ("rmse", "l1"):
                    metric = f"{tags.CONSISTENCY}/{key}"
                    values[tags.tag(stage, metric, bicubic=bicubic)] = c[key].mean()
                    if not bicubic:
                        values.update({tags.tag(stage, metric, band=n): v for n, v in zip(names, c[key], strict=True)})
                if multiband:
                    values[tags.tag(stage, tags.CONSISTENCY_SAM, bicubic=bicubic)] = c["sam"]
                values[tags.tag(stage, tags.CONSISTENCY_SHIFT, bicubic=bicubic)] = c["shift"]
        if "synthesis" in self._trust_metrics:
            l1 = getattr(self, f"{stage}_synthesis").compute()
            values[tags.tag(stage, tags.SYNTHESIS_L1)] = l1.mean()
            values.update({tags.tag(stage, tags.SYNTHESIS_L1, band=n): v for n, v in zip(names, l1, strict=True)})
            for key, value in getattr(self, f"{stage}_correctness").compute().items():
                values[tags.tag(stage, f"{tags.CORRECTNESS}/{key}")] = value
        return values

    def _stage_metrics(self, stage: str) -> list[Any]:
        names = ["metrics", "baseline", "rmse", "sre", "baseline_sre", *self._trust_metrics]
        names += ["ergas", "baseline_ergas", "baseline_rmse"] if stage == "test" else []
        return [getattr(self, f"{stage}_{n}") for n in names]

    def _reset_metrics(self, stage: str) -> None:
        # Outside inference mode: states reset inside it become inference tensors, which a later
        # evaluation run under no_grad (DDP with gloo) cannot update in place.
        with torch.inference_mode(False):
            for metric in self._stage_metrics(stage):
                metric.reset()

    def on_validation_epoch_start(self) -> None:
        self._reset_metrics("val")

    def on_test_epoch_start(self) -> None:
        self._reset_metrics("test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def predict_step(self, batch: Mapping[str, Tensor] | Tensor, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Physical SR of ``batch["input"]`` (or of a bare tensor).

        A batch with ``"valid"`` (B, h, w) (the tiles of :mod:`aerogan.prediction`) has its invalid pixels
        filled first (:meth:`fill_invalid`), the one place where nodata is replaced before the network.
        """
        if not isinstance(batch, Mapping):
            return self.super_resolve(batch)
        x = batch["input"]
        if "valid" in batch:
            x = self.fill_invalid(x, batch["valid"])
        return self.super_resolve(x, batch.get("guides", ()))

    def fill_invalid(self, x: Tensor, valid: Tensor) -> Tensor:
        """``x`` (B, C, h, w) with the pixels where ``valid`` (B, h, w) is False set to the input band means.

        After normalisation they are 0, so nodata (or NaN) never feeds extreme values to the generator,
        whose receptive field would carry them into the valid pixels nearby.
        """
        if valid.shape != (x.shape[0], *x.shape[2:]):
            raise ValueError(f"predict_step: batch['valid'] has shape {tuple(valid.shape)}, expected {(x.shape[0], *x.shape[2:])}")
        return torch.where(valid[:, None].to(torch.bool), x, self.input_norm.mean.to(x).view(1, -1, 1, 1))

    # ------------------------------------------------------------------ panels
    def _tensorboard(self) -> TensorBoardLogger | None:
        return next((lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)), None)

    def _should_render_panels(self) -> bool:
        trainer = self.trainer
        return (
            self.num_panels > 0
            and trainer.is_global_zero
            and not trainer.sanity_checking
            and self.current_epoch % self.panel_every_n_epochs == 0
            and self._tensorboard() is not None
        )

    def _log_panels(self, batch: Mapping[str, Tensor], sr: Tensor, base: Tensor | None) -> None:
        """Rank zero only, no collectives: render the first ``num_panels`` samples of the fixed first batch."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                n = min(self.num_panels, sr.shape[0])
                hr = batch["target"][:n].float()
                if base is None:  # band synthesis: show the input's first bands on the HR grid instead
                    x = batch["input"][:n].float()
                    scale = int(self.metadata.get("scale", 1))
                    base = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
                    base = base[:, [min(i, base.shape[1] - 1) for i in range(hr.shape[1])]]
                rgb = self.metadata.get("rgb_bands") or [0, min(1, hr.shape[1] - 1), min(2, hr.shape[1] - 1)]
                image = render_panels(base[:n], sr[:n], hr, rgb)
                correctness_image = None
                if "correctness" in self._trust_metrics:  # the bicubic baseline exists: base is the upsampled input
                    correctness_image = render_correctness(self.val_correctness.classify(sr[:n], base[:n], hr), luminance(hr, rgb))
            step = getattr(getattr(self.trainer.fit_loop, "epoch_loop", None), "_batches_that_stepped", self.global_step)
            experiment = self._tensorboard().experiment
            experiment.add_image("samples/lr_sr_hr_error", image, global_step=step)
            if correctness_image is not None:
                experiment.add_image("samples/correctness", correctness_image, global_step=step)
        finally:
            self.train(was_training)
