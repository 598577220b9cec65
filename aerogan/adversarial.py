"""The adversarially regularized LightningModule: ``l(f(x), y) - lambda * g(f(x))``.

A generator f is trained on a supervised loss l plus an adversarial term from a critic g that
learns to tell targets y ("real") from predictions f(x) ("fake"). Three objectives:

* ``supervised``: l only (the critic, if given, is still trained, so its Wasserstein estimate shows
  how far predictions are from targets, but it never reaches the generator);
* ``adversarial``: the adversarial term only;
* ``regularized``: l + lambda * (adversarial term), the default.

For WGAN-GP (the reference) the adversarial term is ``-mean g(f(x))``, so the regularized loss is
exactly ``l - lambda * g``. Per batch: one generator forward, ``n_critic`` critic updates on the
(target, detached prediction) pairs of the batch, then one generator update against the updated
critic. Generator steps therefore equal batches, which keeps supervised and regularized runs
comparable epoch for epoch.

:meth:`loss_terms` exposes the generator's loss terms so that a monitoring callback can take the
gradient of each separately (the supervised term's is the "reaction", the adversarial term's the
"diffusion").

Training controls SR GAN users expect (all off by default): generator-only pretraining
(``pretrain_steps``: no critic update and no adversarial term), a schedule of the adversarial weight
λ(t) (``lambda_schedule``, ``lambda_ramp_start``, ``lambda_ramp_steps``; :class:`aerogan.losses.AdversarialWeightSchedule`),
the R1 penalty on real samples (``r1_weight``), relativistic-average losses (``adversarial_loss: ragan``), and
spectral-angle and total-variation terms added to the supervised loss (``sam_weight``, ``tv_weight``).

The training step is lean: the diagnostic scalars (critic scores, Wasserstein estimate, penalty, loss
terms) are logged only at the batches where the logger writes (``trainer.log_every_n_steps``), with the
values and logger step a per-batch ``self.log`` would give; the step's only host-device synchronisation is the optional
finite check (one per optimizer step, see ``check_finite``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from aerogan.losses import (
    AdversarialWeightSchedule,
    GANLoss,
    GANLossName,
    LambdaScheduleName,
    PixelLossName,
    SpectralAngleLoss,
    TotalVariationLoss,
    make_gan_loss,
    make_pixel_loss,
    r1_penalty,
)
from aerogan.metrics import tags
from aerogan.rng import rng_states, set_rng_states

Objective = Literal["supervised", "adversarial", "regularized"]
OBJECTIVES = ("supervised", "adversarial", "regularized")


def _default_optimizer(params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam with the WGAN-GP recipe (lr 1e-4, betas (0.0, 0.9))."""
    return torch.optim.Adam(params, lr=1e-4, betas=(0.0, 0.9))


class AdversarialRegularization(L.LightningModule):
    """Generator + critic trained with manual optimization, the Lightning way.

    Args:
        generator: the network f (``class_path`` in configs).
        critic: the critic g; ``None`` only with ``objective="supervised"``.
        objective: ``supervised``, ``adversarial`` or ``regularized``.
        supervised_loss: ``l1``, ``mse``, ``charbonnier`` or ``half_sse`` (``½ Σ (f − y)²``, the two-layer theory's
            loss), or a loss module ``(prediction, target) -> scalar`` (``class_path`` in configs).
        adversarial_loss: ``wgan-gp`` (reference), ``wgan``, ``hinge``, ``nonsaturating`` or ``lsgan``, or an
            :class:`aerogan.losses.GANLoss` (``class_path: aerogan.losses.Hinge``). Loss objects given in Python
            (not through the CLI) are not saved as hyperparameters: pass them again to ``load_from_checkpoint``,
            as the networks.
        adversarial_loss: also ``ragan`` / ``ralsgan`` (relativistic average, ESRGAN): the generator step then
            also takes the critic's scores on the targets (without gradient).
        lambda_adv: weight of the adversarial term in the generator loss (its value once any ramp is done).
        gp_weight: gradient-penalty weight (WGAN-GP uses 10).
        n_critic: critic updates per generator update.
        critic_warmup_steps: batches during which only the critic is trained, right after any pretraining.
        pretrain_steps: generator-only pretraining: for this many batches at the start the critic is not
            updated and the generator loss has no adversarial term (λ = 0). Objectives ``supervised`` and
            ``regularized`` only.
        lambda_schedule: how λ(t) reaches ``lambda_adv``: ``constant`` (from ``lambda_ramp_start`` on),
            ``linear`` or ``cosine`` (rising from 0 at ``lambda_ramp_start`` to ``lambda_adv`` over
            ``lambda_ramp_steps`` batches; the start counts from batch 0 and must not lie inside the
            pretraining). The generator loss holds ``λ(t) · (GAN generator loss)``; ``train/lambda_adv`` is
            logged when λ varies. Objective ``regularized`` only (``adversarial`` always weighs its term 1).
        lambda_ramp_start / lambda_ramp_steps: the ramp's first batch and length (batches).
        r1_weight: gamma of the R1 penalty ``(gamma / 2) E ||grad_y g(y)||^2`` on real samples (Mescheder et al.
            2018), added to the critic loss (float32, as the gradient penalty), logged as ``train/r1_penalty``.
        sam_weight: weight of the spectral-angle term (mean angle in radians between predicted and target
            spectra, in network space) added to the supervised loss as the loss term ``spectral_angle``.
        tv_weight: weight of the total-variation term (of the prediction; images only) added to the supervised
            loss as the loss term ``total_variation``.
        optimizer_g / optimizer_d: optimizer factories (``OptimizerCallable``) for f and g.
        scheduler_g / scheduler_d: optional LR scheduler factories, stepped once per epoch.
        gradient_clip_g / gradient_clip_d: clip gradient norm (algorithm "norm") when given.
        ema_decay: keep an exponential moving average of the generator (buffers included) with this
            decay, updated after every generator step, stored in checkpoints and used for validation,
            test, prediction and export. ``None`` disables it.
        check_finite: stop with a clear error (after saving the last finite state as a checkpoint)
            when a loss term or a gradient becomes NaN or infinite. Before every optimizer step: one sum
            all-reduce and one host-device synchronisation (the only ones of the training step).
        critic_score_limit: warn when the critic's mean scores exceed this magnitude (collapse); checked at
            the batches where the diagnostics are logged.
        input_key / target_key: batch dictionary keys.
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module | None = None,
        objective: Objective = "regularized",
        supervised_loss: PixelLossName | nn.Module = "l1",
        adversarial_loss: GANLossName | GANLoss = "wgan-gp",
        lambda_adv: float = 1e-3,
        gp_weight: float = 10.0,
        n_critic: int = 5,
        critic_warmup_steps: int = 0,
        pretrain_steps: int = 0,
        lambda_schedule: LambdaScheduleName = "constant",
        lambda_ramp_start: int = 0,
        lambda_ramp_steps: int = 0,
        r1_weight: float = 0.0,
        sam_weight: float = 0.0,
        tv_weight: float = 0.0,
        optimizer_g: OptimizerCallable = _default_optimizer,
        optimizer_d: OptimizerCallable = _default_optimizer,
        scheduler_g: LRSchedulerCallable | None = None,
        scheduler_d: LRSchedulerCallable | None = None,
        gradient_clip_g: float | None = None,
        gradient_clip_d: float | None = None,
        ema_decay: float | None = None,
        check_finite: bool = True,
        critic_score_limit: float = 1e4,
        input_key: str = "input",
        target_key: str = "target",
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"model.objective={objective!r} is not one of {', '.join(OBJECTIVES)}")
        if critic is None and objective != "supervised":
            raise ValueError(f"model.objective={objective!r} needs a critic (model.critic is None)")
        if n_critic < 0 or critic_warmup_steps < 0:
            raise ValueError(f"model.n_critic ({n_critic}) and model.critic_warmup_steps ({critic_warmup_steps}) must be >= 0")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"model.ema_decay must lie in (0, 1) or be null, got {ema_decay}")
        schedule = AdversarialWeightSchedule(lambda_adv, lambda_schedule, lambda_ramp_start, lambda_ramp_steps, pretrain_steps, prefix="model.")
        for name, weight in (("gp_weight", gp_weight), ("r1_weight", r1_weight), ("sam_weight", sam_weight), ("tv_weight", tv_weight)):
            if not weight >= 0:
                raise ValueError(f"model.{name}={weight!r} must be a weight >= 0 (0 disables it)")
        if objective == "adversarial":
            settings = (("pretrain_steps", pretrain_steps > 0), ("lambda_schedule", lambda_schedule != "constant"),
                        ("lambda_ramp_start", lambda_ramp_start > 0), ("sam_weight", sam_weight > 0), ("tv_weight", tv_weight > 0))
            unused = [f"model.{name}" for name, given in settings if given]
            if unused:
                raise ValueError(
                    f"{', '.join(unused)} need a supervised term, which model.objective='adversarial' lacks: "
                    "use objective 'regularized', or the defaults (pretrain_steps 0, a constant schedule from batch 0, weights 0)"
                )
        if _given_hyperparameters.get() is not None:
            # Built by LightningCLI: it saves the whole config (class paths of the nets and optimizers
            # included), so load_from_checkpoint can rebuild the module without the original config.
            self.save_hyperparameters()
        else:
            ignore = ["generator", "critic", "optimizer_g", "optimizer_d", "scheduler_g", "scheduler_d"]
            ignore += [k for k, v in (("supervised_loss", supervised_loss), ("adversarial_loss", adversarial_loss)) if isinstance(v, nn.Module)]
            self.save_hyperparameters(ignore=ignore)
        self.automatic_optimization = False
        self.generator = generator
        self.critic = critic
        self.objective = objective
        self.pixel_loss = make_pixel_loss(supervised_loss, "model.supervised_loss")
        self.adversarial = make_gan_loss(adversarial_loss, "model.adversarial_loss")
        self.lambda_adv = lambda_adv
        self.gp_weight = gp_weight
        self.n_critic = n_critic
        self.critic_warmup_steps = critic_warmup_steps
        self.pretrain_steps = pretrain_steps
        self.adversarial_schedule = schedule
        self.r1_weight = r1_weight
        self.sam_weight = sam_weight
        self.tv_weight = tv_weight
        self.sam_loss = SpectralAngleLoss() if sam_weight > 0 else None
        self.tv_loss = TotalVariationLoss() if tv_weight > 0 else None
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.scheduler_g = scheduler_g
        self.scheduler_d = scheduler_d
        self.gradient_clip_g = gradient_clip_g
        self.gradient_clip_d = gradient_clip_d
        self.input_key = input_key
        self.target_key = target_key
        self.check_finite = check_finite
        self.critic_score_limit = critic_score_limit
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self._batches_seen_host: int | None = None  # host copy of batches_seen: read once per fit, not per step
        self.generator_ema: AveragedModel | None = None
        if ema_decay is not None:
            self.generator_ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            self.generator_ema.requires_grad_(False)  # never trained, so DDP and optimizers ignore it
        self._collapse_warned = False
        self._critic_peak: Tensor | None = None  # (|score|, mean real, mean fake, batch) at the peak, on the device

    @property
    def inference_generator(self) -> nn.Module:
        """The generator used for validation, test, prediction and export: the EMA copy when enabled."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    # ------------------------------------------------------------------ hooks for subclasses
    def prepare_batch(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(network input, target) in the space the networks work in; subclasses normalise here."""
        return batch[self.input_key], batch[self.target_key]

    def physical(self, y: Tensor) -> Tensor:
        """Generator-space outputs in the data's own units (identity here; SR de-normalises): the spectral
        angle is a property of physical spectra, not of per-band standardised ones."""
        return y

    def prepare_guides(self, batch: Mapping[str, Any]) -> tuple[Tensor, ...]:
        """The guide tensors of ``batch`` (multi-resolution data: finer band groups), in network space.

        Empty for single-input data; subclasses normalise here. Guides condition the generator
        (``generator(x, guides)``) and, when the critic has ``condition=True``, the critic.
        """
        return tuple(batch.get("guides", ())) if isinstance(batch, Mapping) else ()

    def generate(self, x: Tensor, guides: Sequence[Tensor] = (), network: nn.Module | None = None) -> Tensor:
        """``f(x)`` or, with guides, ``f(x, guides)``; ``network`` defaults to the trained generator."""
        network = self.generator if network is None else network
        return network(x, tuple(guides)) if len(guides) else network(x)

    def judge(self, y: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        """Critic scores of ``y``: ``g(y | guides)`` for a conditional critic (``critic.condition``), else ``g(y)``."""
        if len(guides) and getattr(self.critic, "condition", False):
            return self.critic(y, tuple(guides))
        return self.critic(y)

    def forward(self, x: Tensor, guides: Sequence[Tensor] = ()) -> Tensor:
        return self.generate(x, guides)

    # ------------------------------------------------------------------ the objective
    @property
    def trains_critic(self) -> bool:
        return self.critic is not None and self.n_critic > 0

    def adversarial_weight(self, step: int | None = None) -> float:
        """λ(t) at batch ``step`` (default: the current one, from the host counter): the weight of the
        adversarial term under the ``regularized`` objective, 0 during pretraining and before the ramp."""
        return self.adversarial_schedule.value(self._batches_seen() if step is None else step)

    def generator_terms(self, prediction: Tensor, target: Tensor, guides: Sequence[Tensor] = ()) -> dict[str, Tensor]:
        """The terms of the generator loss under the current objective; they sum to the loss.

        ``supervised`` (with ``spectral_angle`` and ``total_variation`` when weighted), ``adversarial`` =
        λ(t) times the GAN generator loss (absent during pretraining and before the ramp's start), and the
        generator's own ``weight_penalty`` if it has one.
        """
        terms: dict[str, Tensor] = {}
        if self.objective in ("supervised", "regularized"):
            terms["supervised"] = self.pixel_loss(prediction, target)
            if self.sam_loss is not None:
                terms["spectral_angle"] = self.sam_weight * self.sam_loss(self.physical(prediction), self.physical(target))
            if self.tv_loss is not None:
                terms["total_variation"] = self.tv_weight * self.tv_loss(prediction)
        if self.objective == "adversarial":
            terms["adversarial"] = self._generator_gan_loss(prediction, target, guides)
        elif self.objective == "regularized" and self.adversarial_schedule.active(step := self._batches_seen()):
            terms["adversarial"] = self.adversarial_weight(step) * self._generator_gan_loss(prediction, target, guides)
        penalty = getattr(self.generator, "regularization_loss", None)
        if callable(penalty) and (reg := penalty()) is not None:  # e.g. an L1/L2 weight penalty of the generator
            terms["weight_penalty"] = reg
        return terms

    def _generator_gan_loss(self, prediction: Tensor, target: Tensor, guides: Sequence[Tensor]) -> Tensor:
        """The GAN loss's generator objective on ``prediction``; a relativistic loss also gets the critic's scores
        on the targets, taken without gradient (only then: one more critic forward)."""
        fake_scores = self.judge(prediction, guides)
        if not self.adversarial.needs_real_scores:
            return self.adversarial.generator_loss(fake_scores)
        with torch.no_grad():
            real_scores = self.judge(target, guides)
        return self.adversarial.generator_loss(fake_scores, real_scores)

    def _generator_terms(self, prediction: Tensor, target: Tensor, guides: Sequence[Tensor]) -> dict[str, Tensor]:
        """:meth:`generator_terms`, with the guides only when there are some (subclasses written for
        single-input data override ``generator_terms(prediction, target)`` and keep working)."""
        return self.generator_terms(prediction, target, guides) if len(guides) else self.generator_terms(prediction, target)

    def loss_terms(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Generator loss terms on ``batch`` (``supervised``: reaction, ``adversarial``: diffusion).

        Each is a scalar differentiable w.r.t. :meth:`loss_terms_parameters`; their sum is the
        generator loss. Used by :class:`callbacks.GradientNormMonitor` to take per-term gradients.
        """
        x, y = self.prepare_batch(batch)
        guides = self.prepare_guides(batch)
        return self._generator_terms(self.generate(x, guides), y, guides)

    def loss_terms_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """The parameters the loss terms are meant for: the generator's, named as in ``named_parameters``."""
        return (("generator." + n, p) for n, p in self.generator.named_parameters())

    def critic_step(self, real: Tensor, fake: Tensor, eps: Tensor | None = None, guides: Sequence[Tensor] = ()) -> dict[str, Tensor]:
        """Critic loss on one (real, fake) pair of batches; ``fake`` must be detached.

        ``eps`` optionally fixes the gradient-penalty mixing weights (one per sample). ``guides`` condition
        a conditional critic; the penalty's gradient is then taken with respect to the judged bands only.
        """
        real_scores = self.judge(real, guides)
        fake_scores = self.judge(fake, guides)
        loss = self.adversarial.critic_loss(real_scores, fake_scores)
        out = {
            "critic_real": real_scores.mean().detach(),
            "critic_fake": fake_scores.mean().detach(),
            "wasserstein": (real_scores.mean() - fake_scores.mean()).detach(),
        }
        if self.gp_weight > 0 and (gp := self.adversarial.penalty(self._critic_of(guides), real, fake, eps=eps)) is not None:
            loss = loss + self.gp_weight * gp
            out["gradient_penalty"] = gp.detach()
        if self.r1_weight > 0:
            r1 = r1_penalty(self._critic_of(guides), real)
            loss = loss + (0.5 * self.r1_weight) * r1
            out["r1_penalty"] = r1.detach()
        out["critic_loss"] = loss
        return out

    def _critic_of(self, guides: Sequence[Tensor]) -> nn.Module:
        """The critic as a one-argument module (the conditional critic with its guides bound), for the penalty."""
        if len(guides) and getattr(self.critic, "condition", False):
            return _Conditioned(self.critic, tuple(g.detach() for g in guides))
        return self.critic

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        optimizers = self.optimizers()
        opt_g, opt_d = (optimizers if isinstance(optimizers, list) else [optimizers, None])[:2]
        x, y = self.prepare_batch(batch)
        guides = self.prepare_guides(batch)
        prediction = self.generate(x, guides)
        diagnostics = self._logs_this_step()
        logs: dict[str, Tensor] = {}
        step = self._batches_seen()
        pretraining = self.adversarial_schedule.pretraining(step)

        if self.trains_critic and not pretraining:
            fake = prediction.detach()
            with self.toggled_optimizer(opt_d):
                for _ in range(self.n_critic):
                    out = self.critic_step(y, fake, guides=guides)
                    opt_d.zero_grad(set_to_none=True)
                    self.manual_backward(out["critic_loss"])
                    self._check_finite_step(opt_d, {k: v for k, v in out.items() if k != "wasserstein"}, "critic")
                    if self.gradient_clip_d:
                        self.clip_gradients(opt_d, gradient_clip_val=self.gradient_clip_d, gradient_clip_algorithm="norm")
                    opt_d.step()
            self._track_critic_scores(out)
            if diagnostics:
                logs.update({k: v.detach() for k, v in out.items()})
                self._report_collapse()

        loss_g: Tensor | None = None
        if pretraining or step >= self.pretrain_steps + self.critic_warmup_steps:
            with self.toggled_optimizer(opt_g):
                terms = self._generator_terms(prediction, y, guides)
                loss_g = sum(terms.values())
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(loss_g)
                self._check_finite_step(opt_g, terms, "generator")
                if self.gradient_clip_g:
                    self.clip_gradients(opt_g, gradient_clip_val=self.gradient_clip_g, gradient_clip_algorithm="norm")
                opt_g.step()
            if self.generator_ema is not None:
                # torch's AveragedModel reads its device-side counter (two host-device syncs per update)
                self.generator_ema.update_parameters(self.generator)
            if diagnostics:
                logs.update({k: v.detach() for k, v in terms.items()})
        self.batches_seen += 1
        self._batches_seen_host = step + 1
        # train/loss every batch only for the progress bar; the logger writes it at its own cadence either way
        log_main = diagnostics or self.trainer.progress_bar_callback is not None
        supervised = logs.get("supervised")
        if supervised is None and (diagnostics or (log_main and loss_g is None)):
            with torch.no_grad():
                supervised = self.pixel_loss(prediction, y)
        batch_size = x.shape[0]
        if diagnostics:
            logs["supervised"] = supervised
            if loss_g is not None:
                logs[tags.GENERATOR_LOSS] = loss_g.detach()
            metrics = {tags.tag(tags.TRAIN, k): v for k, v in logs.items()}
            if self.objective == "regularized" and self.adversarial_schedule.varies:
                # a CPU tensor: Lightning keeps it on the CPU, so no host-to-device copy (a float would be copied)
                metrics[tags.tag(tags.TRAIN, tags.LAMBDA_ADV)] = torch.tensor(self.adversarial_weight(step))
            self.log_dict(metrics, prog_bar=False, on_step=True, on_epoch=False, batch_size=batch_size)
        if log_main:
            main = loss_g.detach() if loss_g is not None else supervised
            self.log(tags.TRAIN_LOSS, main, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch_size)

    def _logs_this_step(self) -> bool:
        """Whether the logger writes this batch's values: the diagnostics are only computed and logged then.

        Lightning's own decision (every ``trainer.log_every_n_steps`` batches, counted by the logger step
        ``self.log`` uses, or when the trainer is stopping; every batch under ``fast_dev_run``), so the values
        logged and their step on the logger's x-axis are those a per-batch ``self.log`` would have produced.
        """
        trainer = self.trainer
        return bool(trainer.fast_dev_run) or trainer._logger_connector.should_update_logs

    def _batches_seen(self) -> int:
        """Batches trained so far, kept on the host (the buffer is read once per fit, after any restore)."""
        if self._batches_seen_host is None:
            self._batches_seen_host = int(self.batches_seen)
        return self._batches_seen_host

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                metric = self.trainer.callback_metrics.get(tags.VAL_LOSS)
                if metric is not None:
                    scheduler.step(metric)
            else:
                scheduler.step()

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        x, y = self.prepare_batch(batch)
        loss = self.pixel_loss(self.generate(x, self.prepare_guides(batch), self.inference_generator), y)
        self.log(tags.VAL_LOSS, loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=x.shape[0])

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        x, y = self.prepare_batch(batch)
        loss = self.pixel_loss(self.generate(x, self.prepare_guides(batch), self.inference_generator), y)
        self.log(tags.tag(tags.TEST, tags.LOSS), loss, on_epoch=True, sync_dist=True, batch_size=x.shape[0])

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        x = batch[self.input_key] if isinstance(batch, Mapping) else batch
        return self.generate(x, self.prepare_guides(batch), self.inference_generator)

    # ------------------------------------------------------------------ failure handling
    def _check_finite_step(self, optimizer: Any, terms: Mapping[str, Tensor], network: str) -> None:
        """Stop before a non-finite update: every rank takes the same decision.

        One sum all-reduce of the count of non-finite values (every rank, every call) and one host-device
        synchronisation to read it: the documented cost of ``check_finite``. The weights are still those
        of the last finite step, so they are saved as a checkpoint first.
        """
        if not self.check_finite:
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        values = {k: v.detach() for k, v in terms.items()}
        if grads:
            # one fused kernel for the per-tensor norms (as clip_grad_norm_ does), then their norm
            values[f"{network} gradient"] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        nonfinite = torch.stack([~torch.isfinite(v).all() for v in values.values()])
        total = self.trainer.strategy.reduce(nonfinite.sum(), reduce_op="sum")
        if not bool(total):  # the host-device synchronisation
            return
        bad = [k for k, flag in zip(values, nonfinite.tolist(), strict=True) if flag]
        step = self._batches_seen()
        path = self._save_last_finite_state(step)
        what = ", ".join(bad) if bad else "a value on another rank"
        raise FloatingPointError(
            f"non-finite {what} at batch {step} (epoch {self.current_epoch}) while stepping the {network}; "
            f"training stopped before the update. The last finite state is saved in {path}. "
            "Check the data for NaN/inf, lower the learning rates, or enable gradient clipping "
            "(model.gradient_clip_g / model.gradient_clip_d)."
        )

    def _save_last_finite_state(self, step: int) -> str:
        trainer = self.trainer
        callback = trainer.checkpoint_callback
        folder = getattr(callback, "dirpath", None) or trainer.default_root_dir
        path = os.path.join(folder, f"last-finite-batch{step}.ckpt")
        trainer.save_checkpoint(path)  # every rank reaches this point: the decision above was collective
        return path

    def _track_critic_scores(self, out: Mapping[str, Tensor]) -> None:
        """Keep, on the device, the critic's largest mean score magnitude since the last report (no sync)."""
        if self._collapse_warned:
            return
        real, fake = out["critic_real"].detach().float(), out["critic_fake"].detach().float()
        score = torch.maximum(real.abs(), fake.abs())
        current = torch.stack([score, real, fake, torch.full_like(score, self._batches_seen())])
        if self._critic_peak is None:
            self._critic_peak = current
        else:
            self._critic_peak = torch.where(score > self._critic_peak[0], current, self._critic_peak)

    def _report_collapse(self) -> None:
        """Warn once when the critic's scores blow up (a collapsed or diverging critic).

        The peak is tracked on the device every batch and read here, at the batches where the diagnostics
        are logged and at the end of training, so watching for a collapse adds no synchronisation.
        """
        peak, self._critic_peak = self._critic_peak, None
        if self._collapse_warned or peak is None:
            return
        score, real, fake, batch = peak.tolist()
        if score > self.critic_score_limit:
            self._collapse_warned = True
            rank_zero_warn(
                f"critic scores diverge at batch {int(batch)}: mean real {real:.3g}, mean fake {fake:.3g} "
                f"(limit model.critic_score_limit={self.critic_score_limit:g}). "
                "Use a Lipschitz control (wgan-gp, spectral_norm) or a lower critic learning rate."
            )

    def on_train_end(self) -> None:
        self._report_collapse()

    # ------------------------------------------------------------------ checkpoint extras
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Restored at the start of training (after the sanity check, whose loader also draws from
        # the global generator), so a resumed fit continues exactly as an uninterrupted one.
        self._pending_rng_states = checkpoint.get("rng_states")

    def on_train_start(self) -> None:
        self._batches_seen_host = None  # re-read from the (possibly restored) buffer at the first step
        states = getattr(self, "_pending_rng_states", None)
        if states is not None:
            set_rng_states(states)
            self._pending_rng_states = None

    # ------------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> Any:
        optimizers = [self.optimizer_g(self.generator.parameters())]
        schedulers = []
        if self.scheduler_g is not None:
            schedulers.append(self.scheduler_g(optimizers[0]))
        if self.critic is not None:
            optimizers.append(self.optimizer_d(self.critic.parameters()))
            if self.scheduler_d is not None:
                schedulers.append(self.scheduler_d(optimizers[1]))
        return optimizers, schedulers


class _Conditioned(nn.Module):
    """``critic(y, guides)`` as ``module(y)``: what the gradient penalty differentiates for a conditional critic."""

    def __init__(self, critic: nn.Module, guides: tuple[Tensor, ...]) -> None:
        super().__init__()
        self.critic = critic
        self.guides = guides

    def forward(self, y: Tensor) -> Tensor:
        return self.critic(y, self.guides)
