"""Shared pieces of the benchmark suite: settings, model and data profiles, timers, machine description.

Everything here builds the *same* objects the framework uses (``aerogan.SuperResolution`` with the
``aerogan.nets`` generator and critic, ``datamodules.SyntheticDataModule`` patches), so the benchmarks
measure the code users run, with the data already in memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from aerogan.allocator import freed_memory_reused, share_malloc_arena

__all__ = [
    "PROFILES",
    "REPO",
    "BatchList",
    "Baton",
    "BlockTurns",
    "DataSource",
    "ModelSpec",
    "Settings",
    "Timer",
    "autocast",
    "build_model",
    "finish_child",
    "group_sums",
    "machine_info",
    "make_batches",
    "maxrss_mb",
    "mean",
    "median",
    "median_interval",
    "optimizer_factories",
    "quiet",
    "reset_peak_rss",
    "rotation_schedule",
    "run_in_turns",
    "share_malloc_arena",
    "spread",
    "start_child",
    "status_mb",
    "synchronizer",
    "timers",
    "to_memory_format",
    "trainer_kwargs",
]


# ---------------------------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class ModelSpec:
    """Generator, critic, objective and data sizes of one benchmark profile (mirrors a config file)."""

    name: str
    bands: int = 4
    scale: int = 2
    gen_features: int = 32
    gen_blocks: int = 4
    critic_features: int = 16
    critic_layers: int = 3
    n_critic: int = 2
    lambda_adv: float = 1e-3
    gp_weight: float = 10.0
    lr_g: float = 5e-4
    betas_g: tuple[float, float] = (0.9, 0.99)
    lr_d: float = 1e-4
    betas_d: tuple[float, float] = (0.0, 0.9)
    patch_size: int = 32
    batch_size: int = 16
    scene_size: int = 192
    train_scenes: int = 8
    val_scenes: int = 2
    source: str = "configs/quickstart.yaml"


PROFILES: dict[str, ModelSpec] = {
    # configs/quickstart.yaml: SRResNet 4x32, PatchCritic 16 feats 3 layers, n_critic 2, 16 x 32x32 HR, 4 bands, x2
    "quickstart": ModelSpec(name="quickstart"),
    # configs/gpu.yaml: SRResNet 16x64, PatchCritic 64 feats 4 layers, n_critic 5, 32 x 128x128 HR, 4 bands, x4
    "gpu": ModelSpec(
        name="gpu", scale=4, gen_features=64, gen_blocks=16, critic_features=64, critic_layers=4, n_critic=5,
        lr_g=2e-4, patch_size=128, batch_size=32, scene_size=512, train_scenes=8, val_scenes=2, source="configs/gpu.yaml",
    ),
    # --quick: the quickstart's structure at toy sizes (tests of the suite itself, not a measurement)
    "tiny": ModelSpec(
        name="tiny", gen_features=8, gen_blocks=1, critic_features=8, critic_layers=2, patch_size=16, batch_size=4,
        scene_size=48, train_scenes=2, val_scenes=1, source="--quick (toy sizes)",
    ),
}


# ---------------------------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """Everything that defines a benchmark run (written to the JSON's ``settings``)."""

    device: str = "cpu"
    quick: bool = False
    threads: int = 1
    precision: str = "32-true"
    memory_formats: tuple[str, ...] = ("contiguous",)
    profile: str = "quickstart"
    seed: int = 0
    only: tuple[str, ...] = ("step", "monitoring", "predict", "scaling")
    # 1. training-step overhead: plain loop, aerogan, aerogan + TensorBoard, each in its own thread, taking turns
    #    every `step_block` steps (ABC BCA CAB ...); `step_warmup_rounds` rounds first, dropped; the headline is
    #    the median over the `step_rounds` measured rounds of the paired ratio (aerogan block / plain block of the
    #    same round). TensorBoard's ratio pairs groups of `step_group` rounds (0: the rounds of one logging period,
    #    log_every_n_steps of the base trainer config, so each group holds one logger write).
    #    Turns of one step: a busy 2-core host slows steps by up to 40 % in bursts of a few steps, so arms
    #    alternating every step see the same bursts (2 runs of 48 blocks of 10 steps read 1.042 and 0.998)
    step_rounds: int = 480
    step_block: int = 1
    step_group: int = 0
    step_warmup_rounds: int = 10
    # 2. monitoring overhead: two fits (with / without the monitors) taking turns every `monitor_block` steps
    #    (AB BA ...), each of 1 + `monitor_epochs` epochs of `steps_per_epoch` batches; the blocks of epoch 0 are
    #    dropped; the headline is the median over groups of `monitor_group` blocks of the paired ratio (see
    #    bench.monitoring); 40 epochs = 160 groups of 8 steps
    monitor_epochs: int = 40
    steps_per_epoch: int = 32
    monitor_block: int = 1
    monitor_group: int = 8
    step_cadence_divisor: int = 1
    epoch_cadence_divisor: int = 1
    # 3. scene prediction
    predict_sizes: tuple[int, int] = (512, 1024)
    predict_rounds: int = 5
    tile: int = 256
    overlap: int = 32
    predict_batch: int = 4
    malloc_mmap_threshold: int = 131072
    # 4. scaling
    batch_sizes: tuple[int, ...] = (4, 8, 16)
    patch_sizes: tuple[int, ...] = (16, 32, 48)
    val_samples: tuple[int, ...] = (8, 16, 32)
    val_batch: int = 8
    scaling_rounds: int = 2
    scaling_block: int = 6
    # equivalence check of the plain loop against the aerogan step
    equivalence_steps: int = 3
    spec: ModelSpec = field(default_factory=lambda: PROFILES["quickstart"])

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spec"] = asdict(self.spec)
        return out

    @classmethod
    def for_args(cls, device: str, quick: bool, profile: str | None, gpu: bool = False, **overrides: Any) -> Settings:
        """Defaults for a device and mode.

        ``cuda`` devices (or ``gpu=True``, the GPU script run on any device) get the gpu profile, bf16
        autocast and both memory formats; ``quick`` shrinks everything to toy sizes.
        """
        cuda = gpu or device.startswith("cuda")
        profile = profile or ("gpu" if cuda else "quickstart")
        s = cls(device=device, quick=quick, profile=profile, spec=PROFILES[profile])
        if cuda:
            s = replace(s, precision="bf16-mixed", memory_formats=("contiguous", "channels_last"), step_rounds=80,
                        batch_sizes=(8, 16, 32), patch_sizes=(64, 128, 192), val_samples=(16, 32, 64), val_batch=16)
        if quick:
            s = replace(
                s, spec=PROFILES["tiny"], step_rounds=6, step_group=3, step_warmup_rounds=2, monitor_epochs=2,
                steps_per_epoch=4, monitor_group=2, step_cadence_divisor=12, epoch_cadence_divisor=5,
                predict_sizes=(24, 48), predict_rounds=1, tile=16, overlap=4, predict_batch=2, batch_sizes=(2, 4),
                patch_sizes=(16, 24), val_samples=(4, 8), val_batch=4, scaling_rounds=1, scaling_block=2,
                equivalence_steps=2,
            )
        return replace(s, **{k: v for k, v in overrides.items() if v is not None})


# ---------------------------------------------------------------------------------------------- machine
def machine_info(settings: Settings) -> dict[str, Any]:
    import lightning

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": settings.device,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "reuse_freed_memory": freed_memory_reused(),
    }
    if settings.device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(settings.device)
        props = torch.cuda.get_device_properties(dev)
        info.update(
            gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(), gpu_capability=f"{props.major}.{props.minor}",
        )
    return info


# ---------------------------------------------------------------------------------------------- helpers
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else float("nan")


def spread(values: Sequence[float]) -> dict[str, float | int]:
    """``{"min", "median", "max", "blocks"}`` of per-block ratios (NaN for none): how far one block is from the next."""
    vals = [float(v) for v in values]
    if not vals:
        return {"min": float("nan"), "median": float("nan"), "max": float("nan"), "blocks": 0}
    return {"min": min(vals), "median": median(vals), "max": max(vals), "blocks": len(vals)}


def group_sums(values: Sequence[float], group: int) -> list[float]:
    """Sums of ``group`` consecutive values (a last, incomplete group is left out)."""
    return [float(sum(values[k:k + group])) for k in range(0, len(values) - group + 1, group)]


def median_interval(values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 0,
                    run: int = 1) -> list[float]:
    """Bootstrap interval of the median of ``values`` (``[lo, hi]``; NaNs for fewer than two runs of values).

    What two runs of the same benchmark may differ by: the headlines are medians of paired ratios, so the
    interval says how far the median moves had other rounds of the same run been drawn. ``run`` > 1 resamples
    runs of that many consecutive values (a block bootstrap), for values whose neighbours are alike.
    """
    vals = [float(v) for v in values]
    runs = [vals[k:k + run] for k in range(0, len(vals) - run + 1, max(1, run))]
    if len(runs) < 2:
        return [float("nan"), float("nan")]
    rng = random.Random(seed)
    meds = sorted(statistics.median([v for r in rng.choices(runs, k=len(runs)) for v in r]) for _ in range(resamples))
    tail = (1 - level) / 2
    return [meds[int(tail * (resamples - 1))], meds[int(round((1 - tail) * (resamples - 1)))]]


def rotation_schedule(arms: int, rounds: int) -> list[int]:
    """The order of turns of ``arms`` arms over ``rounds`` rounds, rotated by one every round.

    Two arms: AB BA AB ... (ABBA: a steady drift of the machine cancels within every two rounds). Three arms:
    ABC BCA CAB ...: each arm takes each place in the round equally often and every block follows another
    arm's block. The latter matters: an arm's first step after another arm ran is slower (its weights and
    optimizer state are out of the caches: a few ms for these models), and in ABC CBA the middle arm would
    always pay it while the outer two pay it every other round. Here every arm pays it equally often.
    """
    return [(i + r) % arms for r in range(rounds) for i in range(arms)]


class Baton:
    """Whose turn it is among the arms' threads, following a schedule (a list of arm indices).

    ``acquire(me)`` waits until the schedule's current entry is ``me``; ``release(me)`` moves to the next entry.
    Entries of an arm that ``finish``-ed are skipped; once the schedule is exhausted nobody waits any longer.
    """

    def __init__(self, schedule: Sequence[int], arms: int) -> None:
        self.cond = threading.Condition()
        self.schedule = list(schedule)
        self.pos = 0
        self.done = [False] * arms
        self.taken: list[int] = []  # the turns as they were taken (for tests and the JSON)

    def _skip(self) -> None:
        while self.pos < len(self.schedule) and self.done[self.schedule[self.pos]]:
            self.pos += 1

    def _mine(self, me: int) -> bool:
        return self.pos >= len(self.schedule) or self.schedule[self.pos] == me

    def acquire(self, me: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self._mine(me))
            self.taken.append(me)

    def release(self, me: int) -> None:
        with self.cond:
            if self.pos < len(self.schedule) and self.schedule[self.pos] == me:
                self.pos += 1
                self._skip()
            self.cond.notify_all()

    def finish(self, me: int) -> None:
        with self.cond:
            self.done[me] = True
            if self.pos < len(self.schedule) and self.schedule[self.pos] == me:
                self.pos += 1
            self._skip()
            self.cond.notify_all()


def run_in_turns(arms: Sequence[Callable[[Baton, int], None]], schedule: Sequence[int], names: Sequence[str] | None = None) -> Baton:
    """Run each ``arm(baton, me)`` in its own thread, the threads taking turns by ``schedule``; returns the baton.

    An arm takes its turns with ``baton.acquire(me)`` / ``baton.release(me)``; it is ``finish``-ed when it returns
    (or raises: the first error is re-raised here once every thread ended). The threads use the calling
    thread's torch intra-op thread count (OpenMP thread counts are per thread) and glibc's main malloc arena
    (:func:`share_malloc_arena`).
    """
    share_malloc_arena()
    baton = Baton(schedule, len(arms))
    threads = torch.get_num_threads()
    errors: list[BaseException] = []

    def body(me: int) -> None:
        try:
            torch.set_num_threads(threads)
            arms[me](baton, me)
        except BaseException as err:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(err)
        finally:
            baton.finish(me)

    names = list(names) if names is not None else [str(i) for i in range(len(arms))]
    workers = [threading.Thread(target=body, args=(i,), name=f"bench-{names[i]}") for i in range(len(arms))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return baton


# ---------------------------------------------------------------------------------------------- child processes
#: The checkout the benchmark children import (so ``python -m aerogan.bench.<module>`` finds this code).
REPO = Path(__file__).resolve().parents[2]


def start_child(module: str, cfg: dict[str, Any], settings: Settings, fixed_mmap_threshold: bool = True) -> subprocess.Popen[str]:
    """``python -m module <cfg as JSON>`` in a fresh process (its RSS peak its own), this checkout importable; with
    ``fixed_mmap_threshold`` glibc's mmap threshold is ``settings.malloc_mmap_threshold`` (unless 0)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONWARNINGS"] = "ignore"
    if fixed_mmap_threshold and settings.malloc_mmap_threshold:
        # a fixed glibc mmap threshold: large blocks go back to the system when freed, so the peak RSS is
        # the peak of what the process holds (with glibc's dynamic threshold it varies by +-25 MB run to run)
        env["MALLOC_MMAP_THRESHOLD_"] = str(settings.malloc_mmap_threshold)
    return subprocess.Popen([sys.executable, "-m", module, json.dumps(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))


def finish_child(proc: subprocess.Popen[str], what: str = "prediction memory child") -> dict[str, Any]:
    """The child's last stdout line (its JSON result); a ``RuntimeError`` with its stderr when it failed."""
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{what} failed:\n{stderr[-4000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on the CPU)."""
    if device.startswith("cuda"):
        dev = torch.device(device)
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The forward-pass context Lightning's ``precision`` uses (bf16 autocast for ``bf16-mixed``)."""
    if precision == "bf16-mixed":
        # cache_enabled=False as Lightning's MixedPrecision: a cached bf16 weight cast would outlive the
        # optimizer steps of a manual-optimization step, and shared casts sum their gradients in bf16
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, cache_enabled=False)
    if precision in ("32-true", "32", "32-bit"):
        return contextlib.nullcontext()
    raise ValueError(f"unsupported precision {precision!r} (32-true or bf16-mixed)")


def to_memory_format(t: Tensor, memory_format: str) -> Tensor:
    if memory_format == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    return t.contiguous()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning's per-Trainer info lines and the warnings expected in benchmark fits."""
    names = ["lightning.pytorch", "lightning.fabric", "lightning"]
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


class BatchList:
    """Batches held in memory, served in order: what both the plain loop and the Trainer iterate."""

    def __init__(self, batches: Sequence[dict[str, Tensor]]) -> None:
        self.batches = list(batches)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.batches[i]


class Timer(Callback):
    """Records ``time.perf_counter()`` at the training and validation hooks (after a device sync).

    Put one instance first in the callback list (``first=True``: it records the *start* hooks before the
    other callbacks run) and one last (``first=False``: it records the *end* hooks after them).
    """

    def __init__(self, sync: Callable[[], None], first: bool) -> None:
        self.sync = sync
        self.first = first
        self.batch_starts: list[float] = []
        self.batch_ends: list[float] = []
        self.epoch_starts: list[float] = []
        self.epoch_ends: list[float] = []
        self.train_start: float | None = None
        self.train_end: float | None = None
        self.val_start: float | None = None
        self.val_end: float | None = None

    def _now(self) -> float:
        self.sync()
        return time.perf_counter()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.first:
            self.train_start = self._now()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.first:
            self.train_end = self._now()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.first:
            self.epoch_starts.append(self._now())

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.first:
            self.epoch_ends.append(self._now())

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.first:
            self.batch_starts.append(self._now())

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.first:
            self.batch_ends.append(self._now())

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if self.first:
            self.val_start = self._now()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.first:
            self.val_end = self._now()


class BlockTurns(Callback):
    """First callback of a Lightning arm run by :func:`run_in_turns`: takes turns every ``block`` batches, timing them.

    The arm takes the baton at ``setup``. At every ``block``-th ``on_train_batch_start`` (counted over the
    whole fit, across epochs) after the first it stamps the end of the block, hands the baton over and, back
    in turn, stamps the start of the next one; so a block covers everything the fit does from one hand-over
    to the next (hooks, epoch ends, logger writes, fetching the next batch). ``seen`` counts the batches
    started so far (``(seen - 1) // block`` is the block the fit is in).
    """

    def __init__(self, baton: Baton, me: int, block: int, sync: Callable[[], None]) -> None:
        self.baton, self.me, self.block, self.sync = baton, me, block, sync
        self.seen = 0
        self.starts: list[float] = []
        self.ends: list[float] = []

    def current_block(self) -> int:
        return max(0, self.seen - 1) // self.block

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.baton.acquire(self.me)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.seen % self.block == 0:
            if self.seen:
                self.sync()
                self.ends.append(time.perf_counter())
                self.baton.release(self.me)
                self.baton.acquire(self.me)
            self.sync()
            self.starts.append(time.perf_counter())
        self.seen += 1


def timers(device: str) -> tuple[Timer, Timer]:
    sync = synchronizer(device)
    return Timer(sync, first=True), Timer(sync, first=False)


def trainer_kwargs(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The framework side at its cheapest: no logger, checkpointing, progress bar, summary or sanity check."""
    dev = torch.device(settings.device)
    kw: dict[str, Any] = {
        "accelerator": "gpu" if dev.type == "cuda" else "cpu",
        "devices": [dev.index or 0] if dev.type == "cuda" else 1,
        "precision": settings.precision,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "max_epochs": 1,
    }
    kw.update(extra)
    return kw


# ---------------------------------------------------------------------------------------------- model and data
def optimizer_factories(spec: ModelSpec) -> tuple[Callable[..., torch.optim.Optimizer], Callable[..., torch.optim.Optimizer]]:
    opt_g = partial(torch.optim.Adam, lr=spec.lr_g, betas=spec.betas_g)
    opt_d = partial(torch.optim.Adam, lr=spec.lr_d, betas=spec.betas_d)
    return opt_g, opt_d


def build_model(spec: ModelSpec, stats: dict[str, Tensor], seed: int, critic: bool = True) -> Any:
    """A :class:`aerogan.SuperResolution` as the profile's config builds it, with the data's statistics."""
    from aerogan import SuperResolution
    from aerogan.nets import PatchCritic, SRResNet

    torch.manual_seed(seed)
    generator = SRResNet(spec.bands, spec.bands, spec.scale, num_features=spec.gen_features, num_blocks=spec.gen_blocks)
    # in_channels given (configs leave it to the lazy first forward, which builds the same Conv2d)
    net_d = PatchCritic(spec.bands, num_features=spec.critic_features, num_layers=spec.critic_layers) if critic else None
    opt_g, opt_d = optimizer_factories(spec)
    model = SuperResolution(
        generator=generator, critic=net_d, objective="regularized" if critic else "supervised", supervised_loss="l1",
        adversarial_loss="wgan-gp", lambda_adv=spec.lambda_adv, gp_weight=spec.gp_weight, n_critic=spec.n_critic,
        optimizer_g=opt_g, optimizer_d=opt_d,
    )
    model.input_norm.set(stats["input_mean"], stats["input_std"])
    model.target_norm.set(stats["target_mean"], stats["target_std"])
    model.metadata = {
        "scale": spec.scale, "input_band_names": [f"B{i + 1}" for i in range(spec.bands)],
        "target_band_names": [f"B{i + 1}" for i in range(spec.bands)], "target_in_input": list(range(spec.bands)),
        "data_range": 1.0, "rgb_bands": [2, 1, 0] if spec.bands >= 3 else [0, 0, 0],
    }
    return model


class DataSource:
    """Synthetic scenes of ``datamodules.SyntheticDataModule`` cut into in-memory batches of any size."""

    def __init__(self, spec: ModelSpec, seed: int) -> None:
        from datamodules import SyntheticDataModule

        self.spec = spec
        self.seed = seed
        self.dm = SyntheticDataModule(
            num_bands=spec.bands, scene_size=spec.scene_size, num_train_scenes=spec.train_scenes,
            num_val_scenes=spec.val_scenes, num_test_scenes=1, scale=spec.scale, patch_size=spec.patch_size,
            batch_size=spec.batch_size, samples_per_epoch=spec.batch_size, seed=seed, augment=False,
        )
        self.scenes = {"train": self.dm.scenes("train"), "val": self.dm.scenes("val")}

    def statistics(self) -> dict[str, Tensor]:
        """Per-band mean and std of the training scenes (the model's normalisation statistics)."""
        scenes = self.scenes["train"]
        mean = scenes.mean(dim=(0, 2, 3))
        std = scenes.std(dim=(0, 2, 3)).clamp_min(1e-6)
        return {"input_mean": mean, "input_std": std, "target_mean": mean.clone(), "target_std": std.clone()}

    def batches(self, n: int, batch_size: int | None = None, patch_size: int | None = None, split: str = "train",
                device: str = "cpu", memory_format: str = "contiguous") -> list[dict[str, Tensor]]:
        """``n`` batches ``{"input": LR, "target": HR}`` of random crops, on ``device``."""
        from datamodules.synthetic import SyntheticScenes

        b = batch_size or self.spec.batch_size
        p = patch_size or self.spec.patch_size
        ds = SyntheticScenes(self.scenes[split], p, n * b, seed=self.seed + (1 if split == "train" else 7))
        out = []
        for k in range(n):
            hr = torch.stack([ds[k * b + i]["image"] for i in range(b)])
            pair = self.dm.make_pair(hr)
            out.append({key: to_memory_format(v.to(device), memory_format) for key, v in pair.items()})
        return out


def make_batches(source: DataSource, n: int, settings: Settings, memory_format: str = "contiguous", **kw: Any) -> list[dict[str, Tensor]]:
    return source.batches(n, device=settings.device, memory_format=memory_format, **kw)
