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
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from aerogan.losses import AdversarialLoss, gradient_penalty, make_pixel_loss
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
        supervised_loss: ``l1``, ``mse``, ``charbonnier`` or ``half_sse`` (``½ Σ (f − y)²``, the two-layer theory's loss).
        adversarial_loss: ``wgan-gp`` (reference), ``wgan``, ``hinge``, ``nonsaturating`` or ``lsgan``.
        lambda_adv: weight of the adversarial term in the generator loss.
        gp_weight: gradient-penalty weight (WGAN-GP uses 10).
        n_critic: critic updates per generator update.
        critic_warmup_steps: batches at the start during which only the critic is trained.
        optimizer_g / optimizer_d: optimizer factories (``OptimizerCallable``) for f and g.
        scheduler_g / scheduler_d: optional LR scheduler factories, stepped once per epoch.
        gradient_clip_g / gradient_clip_d: clip gradient norm (algorithm "norm") when given.
        ema_decay: keep an exponential moving average of the generator (buffers included) with this
            decay, updated after every generator step, stored in checkpoints and used for validation,
            test, prediction and export. ``None`` disables it.
        check_finite: stop with a clear error (after saving the last finite state as a checkpoint)
            when a loss term or a gradient becomes NaN or infinite; one boolean all-reduce per step.
        critic_score_limit: warn when the critic's mean scores exceed this magnitude (collapse).
        input_key / target_key: batch dictionary keys.
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module | None = None,
        objective: Objective = "regularized",
        supervised_loss: Literal["l1", "mse", "charbonnier", "half_sse"] = "l1",
        adversarial_loss: Literal["wgan-gp", "wgan", "hinge", "nonsaturating", "lsgan"] = "wgan-gp",
        lambda_adv: float = 1e-3,
        gp_weight: float = 10.0,
        n_critic: int = 5,
        critic_warmup_steps: int = 0,
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
        if lambda_adv < 0 or gp_weight < 0:
            raise ValueError(f"model.lambda_adv ({lambda_adv}) and model.gp_weight ({gp_weight}) must be >= 0")
        if _given_hyperparameters.get() is not None:
            # Built by LightningCLI: it saves the whole config (class paths of the nets and optimizers
            # included), so load_from_checkpoint can rebuild the module without the original config.
            self.save_hyperparameters()
        else:
            self.save_hyperparameters(ignore=["generator", "critic", "optimizer_g", "optimizer_d", "scheduler_g", "scheduler_d"])
        self.automatic_optimization = False
        self.generator = generator
        self.critic = critic
        self.objective = objective
        self.pixel_loss = make_pixel_loss(supervised_loss)
        self.adversarial = AdversarialLoss(adversarial_loss)
        self.lambda_adv = lambda_adv
        self.gp_weight = gp_weight
        self.n_critic = n_critic
        self.critic_warmup_steps = critic_warmup_steps
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
        self.generator_ema: AveragedModel | None = None
        if ema_decay is not None:
            self.generator_ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            self.generator_ema.requires_grad_(False)  # never trained, so DDP and optimizers ignore it
        self._collapse_warned = False

    @property
    def inference_generator(self) -> nn.Module:
        """The generator used for validation, test, prediction and export: the EMA copy when enabled."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    # ------------------------------------------------------------------ hooks for subclasses
    def prepare_batch(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(network input, target) in the space the networks work in; subclasses normalise here."""
        return batch[self.input_key], batch[self.target_key]

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(x)

    # ------------------------------------------------------------------ the objective
    @property
    def trains_critic(self) -> bool:
        return self.critic is not None and self.n_critic > 0

    def generator_terms(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        """The terms of the generator loss under the current objective; they sum to the loss."""
        terms: dict[str, Tensor] = {}
        if self.objective in ("supervised", "regularized"):
            terms["supervised"] = self.pixel_loss(prediction, target)
        if self.objective in ("adversarial", "regularized"):
            weight = 1.0 if self.objective == "adversarial" else self.lambda_adv
            terms["adversarial"] = weight * self.adversarial.generator_loss(self.critic(prediction))
        penalty = getattr(self.generator, "regularization_loss", None)
        if callable(penalty) and (reg := penalty()) is not None:  # e.g. an L1/L2 weight penalty of the generator
            terms["weight_penalty"] = reg
        return terms

    def loss_terms(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Generator loss terms on ``batch`` (``supervised``: reaction, ``adversarial``: diffusion).

        Each is a scalar differentiable w.r.t. :meth:`loss_terms_parameters`; their sum is the
        generator loss. Used by :class:`callbacks.GradientNormMonitor` to take per-term gradients.
        """
        x, y = self.prepare_batch(batch)
        return self.generator_terms(self.generator(x), y)

    def loss_terms_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """The parameters the loss terms are meant for: the generator's, named as in ``named_parameters``."""
        return (("generator." + n, p) for n, p in self.generator.named_parameters())

    def critic_step(self, real: Tensor, fake: Tensor, eps: Tensor | None = None) -> dict[str, Tensor]:
        """Critic loss on one (real, fake) pair of batches; ``fake`` must be detached.

        ``eps`` optionally fixes the gradient-penalty mixing weights (one per sample).
        """
        real_scores = self.critic(real)
        fake_scores = self.critic(fake)
        loss = self.adversarial.critic_loss(real_scores, fake_scores)
        out = {
            "critic_real": real_scores.mean().detach(),
            "critic_fake": fake_scores.mean().detach(),
            "wasserstein": (real_scores.mean() - fake_scores.mean()).detach(),
        }
        if self.adversarial.uses_gradient_penalty and self.gp_weight > 0:
            gp = gradient_penalty(self.critic, real, fake, eps=eps)
            loss = loss + self.gp_weight * gp
            out["gradient_penalty"] = gp.detach()
        out["critic_loss"] = loss
        return out

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        optimizers = self.optimizers()
        opt_g, opt_d = (optimizers if isinstance(optimizers, list) else [optimizers, None])[:2]
        x, y = self.prepare_batch(batch)
        prediction = self.generator(x)
        logs: dict[str, Tensor] = {}

        if self.trains_critic:
            fake = prediction.detach()
            with self.toggled_optimizer(opt_d):
                for _ in range(self.n_critic):
                    out = self.critic_step(y, fake)
                    opt_d.zero_grad(set_to_none=True)
                    self.manual_backward(out["critic_loss"])
                    self._check_finite_step(opt_d, {k: v for k, v in out.items() if k != "wasserstein"}, "critic")
                    if self.gradient_clip_d:
                        self.clip_gradients(opt_d, gradient_clip_val=self.gradient_clip_d, gradient_clip_algorithm="norm")
                    opt_d.step()
            logs.update({k: v.detach() for k, v in out.items()})
            self._report_collapse(out)

        if int(self.batches_seen) >= self.critic_warmup_steps:
            with self.toggled_optimizer(opt_g):
                terms = self.generator_terms(prediction, y)
                loss_g = sum(terms.values())
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(loss_g)
                self._check_finite_step(opt_g, terms, "generator")
                if self.gradient_clip_g:
                    self.clip_gradients(opt_g, gradient_clip_val=self.gradient_clip_g, gradient_clip_algorithm="norm")
                opt_g.step()
            if self.generator_ema is not None:
                self.generator_ema.update_parameters(self.generator)
            logs.update({k: v.detach() for k, v in terms.items()})
            logs["generator_loss"] = loss_g.detach()
        if "supervised" not in logs:
            with torch.no_grad():
                logs["supervised"] = self.pixel_loss(prediction, y)
        self.batches_seen += 1
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=False, on_step=True, on_epoch=False, batch_size=x.shape[0])
        self.log("train/loss", logs["generator_loss"] if "generator_loss" in logs else logs["supervised"], prog_bar=True, on_step=True, on_epoch=False, batch_size=x.shape[0])

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                metric = self.trainer.callback_metrics.get("val/loss")
                if metric is not None:
                    scheduler.step(metric)
            else:
                scheduler.step()

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        x, y = self.prepare_batch(batch)
        loss = self.pixel_loss(self.inference_generator(x), y)
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=x.shape[0])

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        x, y = self.prepare_batch(batch)
        loss = self.pixel_loss(self.inference_generator(x), y)
        self.log("test/loss", loss, on_epoch=True, sync_dist=True, batch_size=x.shape[0])

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        x = batch[self.input_key] if isinstance(batch, Mapping) else batch
        return self.inference_generator(x)

    # ------------------------------------------------------------------ failure handling
    def _check_finite_step(self, optimizer: Any, terms: Mapping[str, Tensor], network: str) -> None:
        """Stop before a non-finite update: every rank takes the same decision (one boolean all-reduce).

        The weights are still those of the last finite step, so they are saved as a checkpoint first.
        """
        if not self.check_finite:
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        values = {k: v.detach() for k, v in terms.items()}
        if grads:
            values[f"{network} gradient"] = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        bad = [k for k, v in values.items() if not bool(torch.isfinite(v).all())]
        if not self.trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            return
        step = int(self.batches_seen)
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

    def _report_collapse(self, out: Mapping[str, Tensor]) -> None:
        """Warn once when the critic's scores blow up (a collapsed or diverging critic)."""
        if self._collapse_warned:
            return
        score = max(abs(float(out["critic_real"])), abs(float(out["critic_fake"])))
        if score > self.critic_score_limit:
            self._collapse_warned = True
            rank_zero_warn(
                f"critic scores diverge at batch {int(self.batches_seen)}: mean real {float(out['critic_real']):.3g}, "
                f"mean fake {float(out['critic_fake']):.3g} (limit model.critic_score_limit={self.critic_score_limit:g}). "
                "Use a Lipschitz control (wgan-gp, spectral_norm) or a lower critic learning rate."
            )

    # ------------------------------------------------------------------ checkpoint extras
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Restored at the start of training (after the sanity check, whose loader also draws from
        # the global generator), so a resumed fit continues exactly as an uninterrupted one.
        self._pending_rng_states = checkpoint.get("rng_states")

    def on_train_start(self) -> None:
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
