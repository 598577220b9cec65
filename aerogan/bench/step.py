"""1. Training-step overhead: the aerogan LightningModule + Trainer against a plain PyTorch loop.

Both sides run the regularized objective of :class:`aerogan.adversarial.AdversarialRegularization` on
the same networks, batches, losses (``aerogan.losses``), optimizers and penalty, in the same order: one
generator forward, ``n_critic`` critic updates on (target, detached prediction) with the WGAN-GP
penalty, one generator update (critic frozen). :func:`check_equivalence` proves it: from the same
initial weights and seed, both end with the same weights.

Timing: one process, rounds of alternating blocks (plain, aerogan with the Trainer at its cheapest,
aerogan with the default TensorBoard logging), the order rotated every round, the first steps of each
block dropped. A Lightning step is the interval between two consecutive ``on_train_batch_start``
calls (so the logger writes and data fetching that Lightning does after ``on_train_batch_end`` count);
the ``on_train_batch_start`` -> ``on_train_batch_end`` window is reported as well.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from aerogan.bench.common import (
    DataSource,
    ModelSpec,
    Settings,
    autocast,
    build_model,
    make_batches,
    mean,
    median,
    optimizer_factories,
    synchronizer,
)
from aerogan.bench.fit import fit_block, lightning_step_times
from aerogan.losses import gradient_penalty, make_gan_loss, make_pixel_loss

__all__ = ["PlainLoop", "check_equivalence", "run_step_benchmark"]

VARIANTS = ("plain", "aerogan", "aerogan_tensorboard")


class PlainLoop:
    """The regularized objective in plain PyTorch, written as one would by hand (nothing slowed down).

    Same math as ``AdversarialRegularization.training_step`` with ``SuperResolution``'s normalisation:
    ``x, y`` normalised with the data's statistics, ``n_critic`` times ``critic_loss + gp_weight * GP``
    on (y, detached f(x)), then ``l1(f(x), y) + lambda_adv * (-mean g(f(x)))`` with the critic frozen.
    """

    def __init__(self, generator: nn.Module, critic: nn.Module, spec: ModelSpec, stats: dict[str, Tensor],
                 device: str = "cpu", precision: str = "32-true") -> None:
        self.generator, self.critic = generator.to(device).train(), critic.to(device).train()
        make_g, make_d = optimizer_factories(spec)
        self.opt_g, self.opt_d = make_g(self.generator.parameters()), make_d(self.critic.parameters())
        self.pixel_loss = make_pixel_loss("l1")
        self.adversarial = make_gan_loss("wgan-gp")
        self.n_critic, self.lambda_adv, self.gp_weight = spec.n_critic, spec.lambda_adv, spec.gp_weight
        view = (1, -1, 1, 1)
        self.in_mean, self.in_std = (stats[k].to(device).view(view) for k in ("input_mean", "input_std"))
        self.out_mean, self.out_std = (stats[k].to(device).view(view) for k in ("target_mean", "target_std"))
        self.device, self.precision = device, precision

    def step(self, batch: dict[str, Tensor]) -> Tensor:
        # Autocast (bf16-mixed) wraps the forward passes and losses only (the PyTorch AMP recipe), with the
        # weight-cast cache off as in Lightning (see aerogan.bench.common.autocast).
        g, d = self.generator, self.critic
        with autocast(self.device, self.precision):
            x = (batch["input"] - self.in_mean) / self.in_std
            y = (batch["target"] - self.out_mean) / self.out_std
            prediction = g(x)
        fake = prediction.detach()
        for _ in range(self.n_critic):
            with autocast(self.device, self.precision):
                loss_d = self.adversarial.critic_loss(d(y), d(fake)) + self.gp_weight * gradient_penalty(d, y, fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        d.requires_grad_(False)  # the generator update needs no critic weight gradients
        with autocast(self.device, self.precision):
            loss_g = self.pixel_loss(prediction, y) + self.lambda_adv * self.adversarial.generator_loss(d(prediction))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        d.requires_grad_(True)
        return loss_g.detach()


def _plain_block(loop: PlainLoop, batches: Sequence[dict[str, Tensor]], n: int, sync: Callable[[], None]) -> list[float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        loop.step(batches[i % len(batches)])
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _convert(module: nn.Module, memory_format: str) -> nn.Module:
    return module.to(memory_format=torch.channels_last) if memory_format == "channels_last" else module


def run_step_benchmark(settings: Settings, source: DataSource, stats: dict[str, Tensor], log: Callable[[str], None] = print) -> dict[str, Any]:
    spec, sync = settings.spec, synchronizer(settings.device)
    warm, block = settings.step_block_warmup, settings.step_block
    out: dict[str, Any] = {"variants": list(VARIANTS), "block_steps": block, "block_warmup_steps": warm,
                           "rounds": settings.step_rounds, "formats": {}}
    for fmt in settings.memory_formats:
        batches = make_batches(source, warm + block + 1, settings, memory_format=fmt)
        model = _convert(build_model(spec, stats, settings.seed), fmt)
        plain = PlainLoop(_convert(copy.deepcopy(model.generator), fmt), _convert(copy.deepcopy(model.critic), fmt),
                          spec, stats, settings.device, settings.precision)
        steps: dict[str, list[float]] = {v: [] for v in VARIANTS}
        windows: dict[str, list[float]] = {"aerogan": [], "aerogan_tensorboard": []}
        per_round: list[dict[str, float]] = []
        for r in range(settings.step_rounds + 1):  # round 0 warms everything up and is dropped
            order = VARIANTS[r % 3:] + VARIANTS[: r % 3]
            medians: dict[str, float] = {}
            for variant in order:
                if variant == "plain":
                    times = _plain_block(plain, batches, warm + block, sync)[warm:]
                    win = None
                else:
                    first, last = fit_block(model, batches, settings, n_batches=warm + block + 1,
                                            tensorboard=variant == "aerogan_tensorboard")
                    times, win = lightning_step_times(first, last, warm)
                medians[variant] = median(times)
                if r > 0:
                    steps[variant] += times
                    if win is not None:
                        windows[variant] += win
            if r > 0:
                per_round.append(medians)
                log(f"  step [{fmt}] round {r}/{settings.step_rounds}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in medians.items()))
        med = {v: median(t) for v, t in steps.items()}
        avg = {v: mean(t) for v, t in steps.items()}
        res = {
            "median_step_s": med,
            # the logger writes every log_every_n_steps (10) steps: the median hides that, the mean shows it
            "mean_step_s": avg,
            "ratio_tensorboard_mean": avg["aerogan_tensorboard"] / avg["plain"],
            "ratio_mean": avg["aerogan"] / avg["plain"],
            "median_hook_window_s": {v: median(t) for v, t in windows.items()},
            "ratio": med["aerogan"] / med["plain"],
            "ratio_tensorboard": med["aerogan_tensorboard"] / med["plain"],
            "ratio_hook_window": median(windows["aerogan"]) / med["plain"],
            "per_round_ratio": [m["aerogan"] / m["plain"] for m in per_round],
            "per_round_median_s": per_round,
            "step_times_s": steps,
            "hook_window_times_s": windows,
        }
        out["formats"][fmt] = res
    best = min(out["formats"], key=lambda f: out["formats"][f]["median_step_s"]["aerogan"])
    out["headline_format"] = best
    h = out["formats"][best]
    out.update(ratio=h["ratio"], ratio_tensorboard=h["ratio_tensorboard"], ratio_hook_window=h["ratio_hook_window"],
               median_step_s=h["median_step_s"])
    if len(out["formats"]) > 1 and "contiguous" in out["formats"] and "channels_last" in out["formats"]:
        c, cl = out["formats"]["contiguous"]["median_step_s"], out["formats"]["channels_last"]["median_step_s"]
        out["channels_last_speedup"] = {v: c[v] / cl[v] for v in VARIANTS}
    return out


# ---------------------------------------------------------------------------------------------- equivalence
class _SeedAtFirstBatch(Callback):
    """Seeds the global generator right before the first training step (the WGAN-GP mixing weights draw from it)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == 0 and trainer.current_epoch == 0:
            torch.manual_seed(self.seed)


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    return max(float((pa[k].detach().float().cpu() - pb[k].detach().float().cpu()).abs().max()) for k in pa)


def check_equivalence(settings: Settings, source: DataSource | None = None, steps: int | None = None) -> dict[str, Any]:
    """Run ``steps`` aerogan steps (Trainer) and ``steps`` plain steps from the same weights, batches and seed.

    Returns the largest absolute parameter difference of generator and critic between the two, and how far
    the weights moved (so a match is not the trivial one of untrained weights).
    """
    spec = settings.spec
    steps = steps or settings.equivalence_steps
    source = source or DataSource(spec, settings.seed)
    stats = source.statistics()
    batches = make_batches(source, steps, settings)
    model = build_model(spec, stats, settings.seed)
    g0, d0 = copy.deepcopy(model.generator), copy.deepcopy(model.critic)
    fit_block(model, batches, settings, n_batches=steps, callbacks=[_SeedAtFirstBatch(settings.seed)])
    plain = PlainLoop(copy.deepcopy(g0), copy.deepcopy(d0), spec, stats, settings.device, settings.precision)
    torch.manual_seed(settings.seed)
    for b in batches:
        plain.step(b)
    res = {
        "steps": steps,
        "generator_max_abs_diff": _max_diff(model.generator, plain.generator),
        "critic_max_abs_diff": _max_diff(model.critic, plain.critic),
        "generator_moved": _max_diff(model.generator, g0),
        "critic_moved": _max_diff(model.critic, d0),
    }
    # bitwise equal on the CPU; cuDNN may pick non-deterministic kernels, hence the looser GPU tolerance
    tol = 1e-4 if settings.device.startswith("cuda") else 1e-5
    res["tolerance"] = tol
    res["match"] = bool(res["generator_max_abs_diff"] <= tol and res["critic_max_abs_diff"] <= tol
                        and res["generator_moved"] > 5 * tol and res["critic_moved"] > 5 * tol)
    return res
