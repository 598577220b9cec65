"""1. Training-step overhead: the aerogan LightningModule + Trainer against a plain PyTorch loop.

Both sides run the regularized objective of :class:`aerogan.adversarial.AdversarialRegularization` on
the same networks, batches, losses (``aerogan.losses``), optimizers and penalty, in the same order: one
generator forward, ``n_critic`` critic updates on (target, detached prediction) with the WGAN-GP
penalty, one generator update (critic frozen). :func:`check_equivalence` proves it: from the same
initial weights and seed, both end with the same weights.

Timing: one process, the three arms (plain loop, aerogan with the Trainer at its cheapest, aerogan with
the default TensorBoard logging) each one uninterrupted run in its own thread, taking turns every
``step_block`` (1) steps in ABC BCA CAB order (:func:`run_step_benchmark`); the first 10 rounds warm up and
are dropped. The headline is the median over rounds of the paired ratio aerogan / plain (one step each),
with its spread (min / median / max) and a bootstrap 95 % interval. A Lightning block runs
from one hand-over at ``on_train_batch_start`` to the next, so the logger writes and data fetching that
Lightning does after ``on_train_batch_end`` count; the ``on_train_batch_start`` -> ``on_train_batch_end``
window is reported as well.

Why turns of one step: a busy shared host slows single steps by up to 40 % (neighbours' load, unseen from
inside the VM: thread CPU time slows as much as wall time), in bursts of a few steps. With turns of 10 steps
each arm met its own bursts, and two consecutive runs read 1.042 and 0.998; with turns of one step the
bootstrap spread of the median is about 0.005 on the same busy machine.

The overhead is real and small: on a 2-core CPU (quickstart model, 1 thread, ~150 ms steps) the aerogan step
costs ~3.5 ms more than the plain loop, timed per call: the ``check_finite`` guard ~0.9 ms (a norm over every
gradient and one host read per optimizer step, three per batch), Lightning's manual-optimization wrappers
~1.1 ms (``manual_backward`` ~0.6, ``LightningOptimizer.step`` ~0.5), the loop and hook dispatch outside
``training_step`` ~0.6 ms, and the module's own per-batch bookkeeping (critic-score tracking, optimizer
toggling, diagnostics) ~1 ms.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from aerogan.bench.common import (
    Baton,
    BlockTurns,
    DataSource,
    ModelSpec,
    Settings,
    autocast,
    build_model,
    group_sums,
    make_batches,
    mean,
    median,
    median_interval,
    optimizer_factories,
    quiet,
    rotation_schedule,
    run_in_turns,
    spread,
    synchronizer,
)
from aerogan.bench.fit import default_log_every_n_steps, fit_block
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


def _convert(module: nn.Module, memory_format: str) -> nn.Module:
    return module.to(memory_format=torch.channels_last) if memory_format == "channels_last" else module


def run_step_benchmark(settings: Settings, source: DataSource, stats: dict[str, Tensor], log: Callable[[str], None] = print) -> dict[str, Any]:
    """The plain loop, aerogan and aerogan + TensorBoard in three threads taking turns block by block.

    Each arm is one uninterrupted run (one plain loop, one ``Trainer.fit`` per aerogan variant) that pauses
    every ``step_block`` steps for the others; the turns follow ABC BCA CAB ... (:func:`rotation_schedule`). A round
    is one block of each arm; the first ``step_warmup_rounds`` rounds are dropped. A block's time runs from
    taking the turn to handing it over, so everything Lightning does between steps (hooks, logger writes,
    fetching the next batch) counts. The headline is the **median over rounds of the paired ratio** (aerogan's
    step time / the plain loop's step time in the same round), robust to a neighbour's burst hitting a few
    rounds; min / median / max of the per-round ratios is the spread, ``ci95`` the bootstrap interval of the
    median, ``plain_step_cv`` how much the plain loop's single steps varied (the machine's noise). TensorBoard's
    ratio pairs groups of rounds spanning one logging period (``step_group``, 0: ``log_every_n_steps`` of the base
    trainer config over ``step_block``), so that each holds one logger write; the headline arm's grouped
    ratio (``ratio_grouped``) and the ratio of mean step times (``ratio_mean``: rare costs such as a garbage
    collection count there at their full weight) are reported beside it.
    """
    out: dict[str, Any] = {"variants": list(VARIANTS), "block_steps": settings.step_block,
                           "warmup_rounds": settings.step_warmup_rounds, "rounds": settings.step_rounds, "formats": {}}
    for fmt in settings.memory_formats:
        out["formats"][fmt] = _run_format(settings, source, stats, fmt, log)
    best = min(out["formats"], key=lambda f: out["formats"][f]["median_step_s"]["aerogan"])
    out["headline_format"] = best
    h = out["formats"][best]
    out.update(ratio=h["ratio"], spread=h["spread"], ci95=h["ci95"], ratio_tensorboard=h["ratio_tensorboard"],
               ratio_hook_window=h["ratio_hook_window"], median_step_s=h["median_step_s"],
               rounds_per_group=h["rounds_per_group"], groups=len(h["per_group_ratio"]))
    if len(out["formats"]) > 1 and "contiguous" in out["formats"] and "channels_last" in out["formats"]:
        c, cl = out["formats"]["contiguous"]["median_step_s"], out["formats"]["channels_last"]["median_step_s"]
        out["channels_last_speedup"] = {v: c[v] / cl[v] for v in VARIANTS}
    return out


def _run_format(settings: Settings, source: DataSource, stats: dict[str, Tensor], fmt: str,
                log: Callable[[str], None]) -> dict[str, Any]:
    """One interleaved run of the three arms in one memory format (see :func:`run_step_benchmark`)."""
    spec, sync = settings.spec, synchronizer(settings.device)
    block, warm, rounds = settings.step_block, settings.step_warmup_rounds, settings.step_rounds
    blocks = warm + rounds
    data = make_batches(source, min(blocks * block + 1, 2 * block + 1), settings, memory_format=fmt)
    # the same few batches over and over (references, no copies): what each arm iterates
    batches = [data[i % len(data)] for i in range(blocks * block + 1)]
    models = {v: _convert(build_model(spec, stats, settings.seed), fmt) for v in VARIANTS if v != "plain"}
    ref = models["aerogan"]
    plain = PlainLoop(_convert(copy.deepcopy(ref.generator), fmt), _convert(copy.deepcopy(ref.critic), fmt),
                      spec, stats, settings.device, settings.precision)
    plain_steps: list[list[float]] = []
    plain_blocks: list[float] = []
    turns: dict[str, BlockTurns] = {}
    timed: dict[str, tuple[Any, Any]] = {}

    def plain_arm(baton: Baton, me: int) -> None:
        k = 0
        for _ in range(blocks):
            baton.acquire(me)
            times = []
            t0 = time.perf_counter()
            for _ in range(block):
                t = time.perf_counter()
                plain.step(batches[k])
                sync()
                times.append(time.perf_counter() - t)
                k += 1
            plain_blocks.append(time.perf_counter() - t0)
            plain_steps.append(times)
            baton.release(me)

    def lightning_arm(variant: str) -> Callable[[Baton, int], None]:
        def arm(baton: Baton, me: int) -> None:
            turns[variant] = BlockTurns(baton, me, block, sync)
            timed[variant] = fit_block(models[variant], batches, settings, n_batches=blocks * block + 1,
                                       lead=[turns[variant]], tensorboard=variant == "aerogan_tensorboard",
                                       silence=False)
        return arm

    # ABC BCA CAB ... for the rounds, then one clean-up turn each (the fits' extra batch and teardown)
    schedule = rotation_schedule(len(VARIANTS), blocks) + list(range(len(VARIANTS)))
    with quiet():
        baton = run_in_turns([plain_arm if v == "plain" else lightning_arm(v) for v in VARIANTS], schedule, VARIANTS)
    block_s: dict[str, list[float]] = {"plain": plain_blocks[warm:]}
    steps: dict[str, list[float]] = {"plain": [t for b in plain_steps[warm:] for t in b]}
    windows: dict[str, list[float]] = {}
    for v in VARIANTS[1:]:
        tb = turns[v]
        # the fit's extra batch started a block of its own (the clean-up turn): no end, left out by zip
        block_s[v] = [e - s for s, e in zip(tb.starts, tb.ends, strict=False)][warm:]
        first, last = timed[v]
        starts, ends = first.batch_starts, last.batch_ends
        # per step: batch start to the next batch start, the block's last step ending where the block ends
        per_step = []
        for j in range(warm, blocks):
            s = starts[j * block:(j + 1) * block] + [tb.ends[j]]
            per_step += [b - a for a, b in zip(s[:-1], s[1:], strict=True)]
        steps[v] = per_step
        windows[v] = [e - s for s, e in zip(starts, ends, strict=True)][warm * block: blocks * block]
    per_round = [{v: block_s[v][k] / block for v in VARIANTS} for k in range(rounds)]
    # the headline: aerogan's time over the plain loop's in the same round (a step each, turns of one step)
    ratios = [r["aerogan"] / r["plain"] for r in per_round]
    # TensorBoard writes every log_every_n_steps batches: its ratio pairs groups of rounds spanning one logging period
    # (so each group holds one write); the same grouping of the headline arm is reported beside it
    group = max(1, min(settings.step_group or default_log_every_n_steps() // block, rounds))
    sums = {v: group_sums(block_s[v], group) for v in VARIANTS}
    grouped = [a / p for a, p in zip(sums["aerogan"], sums["plain"], strict=True)]
    ratios_tb = [a / p for a, p in zip(sums["aerogan_tensorboard"], sums["plain"], strict=True)]
    every = max(1, len(grouped) // 6)
    for k, r in enumerate(grouped):
        if k % every == 0 or k == len(grouped) - 1:
            log(f"  step [{fmt}] rounds {k * group + 1}-{(k + 1) * group}: " + ", ".join(
                f"{v} {sums[v][k] / (group * block) * 1e3:.1f} ms" for v in VARIANTS) + f" (x{r:.3f})")
    med = {v: median(t) for v, t in steps.items()}
    avg = {v: mean(t) for v, t in steps.items()}
    res = {
        # the headline: median over rounds of the paired per-round ratio, its spread and bootstrap interval
        # (resampling runs of a group's consecutive rounds: neighbouring rounds share the machine's bursts)
        "ratio": median(ratios),
        "spread": spread(ratios),
        "ci95": median_interval(ratios, run=group),
        "per_round_ratio": ratios,
        # per group of rounds: TensorBoard (each group holds one logger write) and the headline arm for comparison
        "ratio_tensorboard": median(ratios_tb),
        "spread_tensorboard": spread(ratios_tb),
        "ci95_tensorboard": median_interval(ratios_tb),
        "ratio_grouped": median(grouped),
        "per_group_ratio": grouped,
        "per_group_ratio_tensorboard": ratios_tb,
        "rounds_per_group": group,
        # how busy the machine was: the spread of the plain loop's single steps (0.09-0.12 on a quiet 2-core CPU
        # here, 0.15-0.18 on a busy one)
        "plain_step_cv": statistics.pstdev(steps["plain"]) / mean(steps["plain"]) if steps["plain"] else float("nan"),
        # pooled over every measured step (no pairing): for comparison with the paired figure
        "median_step_s": med,
        "mean_step_s": avg,
        "ratio_pooled_median": med["aerogan"] / med["plain"],
        "ratio_mean": avg["aerogan"] / avg["plain"],
        "ratio_tensorboard_mean": avg["aerogan_tensorboard"] / avg["plain"],
        "median_hook_window_s": {v: median(t) for v, t in windows.items()},
        "ratio_hook_window": median(windows["aerogan"]) / med["plain"],
        "per_round_mean_step_s": per_round,
        "step_times_s": steps,
        "hook_window_times_s": windows,
        "turns": [VARIANTS[i] for i in baton.taken],
    }
    log(f"  step [{fmt}]: aerogan / plain x{res['ratio']:.3f} (95 % interval {res['ci95'][0]:.3f}-{res['ci95'][1]:.3f}; "
        f"min {res['spread']['min']:.3f}, max {res['spread']['max']:.3f} over {rounds} rounds; per {group} rounds "
        f"x{res['ratio_grouped']:.3f}; mean step x{res['ratio_mean']:.3f}); + TensorBoard x{res['ratio_tensorboard']:.3f} "
        f"(per {group} rounds); plain steps varied by {100 * res['plain_step_cv']:.0f} %")
    return res


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
