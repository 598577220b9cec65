"""Training controls of SR GANs: adversarial weight schedule and pretraining, R1, relativistic losses, SAM/TV terms."""

from __future__ import annotations

import copy
import math
from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from aerogan import AdversarialRegularization
from aerogan.losses import (
    LSGAN,
    AdversarialWeightSchedule,
    GANLoss,
    Hinge,
    NonSaturating,
    RaGAN,
    RaLSGAN,
    RelativisticAverage,
    SpectralAngleLoss,
    TotalVariationLoss,
    make_gan_loss,
    r1_penalty,
)
from callbacks import GradientNormMonitor
from tests.test_adversarial import BATCH, Pairs, RecordingLogger, make_module

QUIET = {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def _fit(module: AdversarialRegularization, tmp_path, batches: int, epochs: int = 1, logger=False, ckpt=None,
         callbacks=(), data: Dataset | None = None) -> L.Trainer:
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=batches, logger=logger, log_every_n_steps=1,
                        callbacks=list(callbacks), default_root_dir=tmp_path, **QUIET)
    trainer.fit(module, DataLoader(data if data is not None else Pairs(n=4 * batches), batch_size=4), ckpt_path=ckpt)
    return trainer


class Snapshots(Callback):
    """The generator's and critic's weights after every training batch."""

    def __init__(self) -> None:
        self.generator: list[dict[str, Tensor]] = []
        self.critic: list[dict[str, Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.generator.append(copy.deepcopy(pl_module.generator.state_dict()))
        self.critic.append(copy.deepcopy(pl_module.critic.state_dict()))


def _by_step(logger: RecordingLogger) -> dict[int, dict[str, float]]:
    """The logger's ``train/`` values merged per logger step."""
    merged: dict[int, dict[str, float]] = {}
    for step, values in logger.records:
        merged.setdefault(step, {}).update(values)
    return {step: values for step, values in merged.items() if values}


def _same(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- the schedule

_COS_QUARTER = 0.5 * 0.5 * (1 - math.cos(math.pi / 4))  # lambda 0.5 at a quarter of a cosine ramp: 0.0732...


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {0: 0.5, 1: 0.5, 1000: 0.5}),
        ({"lambda_ramp_start": 3}, {0: 0.0, 2: 0.0, 3: 0.5, 9: 0.5}),
        ({"lambda_schedule": "linear", "lambda_ramp_start": 2, "lambda_ramp_steps": 4},
         {0: 0.0, 2: 0.0, 3: 0.125, 4: 0.25, 5: 0.375, 6: 0.5, 50: 0.5}),
        ({"lambda_schedule": "cosine", "lambda_ramp_steps": 4},
         {0: 0.0, 1: _COS_QUARTER, 2: 0.25, 3: 0.5 - _COS_QUARTER, 4: 0.5, 7: 0.5}),
        ({"pretrain_steps": 3}, {0: 0.0, 2: 0.0, 3: 0.5, 4: 0.5}),
        ({"pretrain_steps": 2, "lambda_schedule": "linear", "lambda_ramp_start": 2, "lambda_ramp_steps": 2},
         {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.25, 4: 0.5}),
    ],
)
def test_schedule_values(kwargs: dict, expected: dict[int, float]) -> None:
    schedule = AdversarialWeightSchedule(0.5, **kwargs)
    for step, value in expected.items():
        assert schedule.value(step) == pytest.approx(value, abs=1e-12), step
    pretrain = kwargs.get("pretrain_steps", 0)
    assert [schedule.pretraining(t) for t in range(5)] == [t < pretrain for t in range(5)]
    assert schedule.varies == bool(kwargs)


def test_cosine_quarter_value_by_hand() -> None:
    assert pytest.approx(0.0732233, abs=1e-7) == _COS_QUARTER


def test_default_schedule_gives_lambda_adv_itself() -> None:
    """The default path multiplies by the very float given (no rounding through the ramp formula)."""
    assert AdversarialWeightSchedule(0.1).value(0) == 0.1
    assert AdversarialWeightSchedule(0.1, "linear", 0, 3).value(3) == 0.1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lambda_schedule": "exponential"}, "model.lambda_schedule='exponential' is not one of constant, linear, cosine"),
        ({"lambda_schedule": "linear"}, "model.lambda_ramp_steps=0: a linear ramp ends before it starts"),
        ({"lambda_schedule": "cosine", "lambda_ramp_steps": -3}, "model.lambda_ramp_steps=-3 must be a number of batches >= 0"),
        ({"lambda_ramp_start": -1}, "model.lambda_ramp_start=-1 must be a number of batches >= 0"),
        ({"pretrain_steps": -1}, "model.pretrain_steps=-1 must be a number of batches >= 0"),
        ({"lambda_ramp_steps": 10}, "model.lambda_ramp_steps=10 needs a ramp: set model.lambda_schedule to linear or cosine"),
        ({"lambda_schedule": "linear", "lambda_ramp_steps": 5, "pretrain_steps": 10},
         "model.lambda_ramp_start=0 lies inside the pretraining (model.pretrain_steps=10)"),
        ({"lambda_adv": -1.0}, "model.lambda_adv=-1.0 must be a weight >= 0"),
        ({"r1_weight": -1.0}, "model.r1_weight=-1.0 must be a weight >= 0"),
        ({"sam_weight": -0.1}, "model.sam_weight=-0.1 must be a weight >= 0"),
        ({"tv_weight": float("nan")}, "model.tv_weight=nan must be a weight >= 0"),
        ({"objective": "adversarial", "pretrain_steps": 3, "sam_weight": 1.0},
         "model.pretrain_steps, model.sam_weight need a supervised term, which model.objective='adversarial' lacks"),
    ],
)
def test_bad_controls_name_the_parameter(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        AdversarialRegularization(nn.Linear(2, 2), nn.Linear(2, 1), **kwargs)
    assert message in str(info.value)


# --------------------------------------------------------------------------- pretraining and the ramp in a fit


def test_pretraining_trains_the_generator_alone_then_the_critic_joins(tmp_path) -> None:
    """Batches 0-1: critic untouched, no adversarial term, generator exactly as a supervised-only run; batch 2: both."""
    m = make_module("regularized", pretrain_steps=2)
    critic0 = copy.deepcopy(m.critic.state_dict())
    snaps, logger = Snapshots(), RecordingLogger()
    _fit(m, tmp_path / "a", batches=3, logger=logger, callbacks=[snaps])
    assert _same(snaps.critic[0], critic0) and _same(snaps.critic[1], critic0)
    assert not _same(snaps.critic[2], critic0)
    logs = _by_step(logger)
    for step in (0, 1):
        assert "train/adversarial" not in logs[step] and "train/critic_loss" not in logs[step]
        assert logs[step]["train/lambda_adv"] == 0.0
        assert logs[step]["train/generator_loss"] == logs[step]["train/supervised"]
    assert logs[2]["train/lambda_adv"] == 0.5 and "train/adversarial" in logs[2] and "train/critic_loss" in logs[2]
    # the pretrained generator is the one a supervised-only objective trains on the same batches
    ref = make_module("supervised")
    ref_snaps = Snapshots()
    _fit(ref, tmp_path / "b", batches=2, callbacks=[ref_snaps], data=Pairs(n=12))
    assert _same(snaps.generator[0], ref_snaps.generator[0]) and _same(snaps.generator[1], ref_snaps.generator[1])


def test_critic_warmup_follows_pretraining(tmp_path) -> None:
    m = make_module("regularized", pretrain_steps=1, critic_warmup_steps=1)
    gen0, critic0 = copy.deepcopy(m.generator.state_dict()), copy.deepcopy(m.critic.state_dict())
    snaps = Snapshots()
    _fit(m, tmp_path, batches=3, callbacks=[snaps])
    assert not _same(snaps.generator[0], gen0) and _same(snaps.critic[0], critic0)  # pretraining: generator only
    assert _same(snaps.generator[1], snaps.generator[0]) and not _same(snaps.critic[1], critic0)  # warm-up: critic only
    assert not _same(snaps.generator[2], snaps.generator[1]) and not _same(snaps.critic[2], snaps.critic[1])


def test_ramp_is_logged_and_weighs_the_adversarial_term(tmp_path) -> None:
    m = make_module("regularized", lambda_schedule="linear", lambda_ramp_start=1, lambda_ramp_steps=2)
    logger = RecordingLogger()
    _fit(m, tmp_path, batches=4, logger=logger)
    logs = _by_step(logger)
    assert [logs[t]["train/lambda_adv"] for t in range(4)] == [0.0, 0.0, 0.25, 0.5]
    assert "train/adversarial" not in logs[0] and logs[1]["train/adversarial"] == 0.0  # before the start; at it
    assert logs[2]["train/adversarial"] != 0.0
    # the default (constant from batch 0) logs no lambda: nothing varies
    default = _fit(make_module("regularized"), tmp_path / "default", batches=1)
    assert "train/lambda_adv" not in default.logged_metrics and "train/adversarial" in default.logged_metrics


@pytest.mark.parametrize(("step", "lam"), [(0, None), (1, 0.0), (2, 0.25), (9, 0.5)])
def test_loss_terms_hold_lambda_t_times_the_generator_gan_loss(step: int, lam: float | None) -> None:
    m = make_module("regularized", lambda_schedule="linear", lambda_ramp_start=1, lambda_ramp_steps=2)
    m.batches_seen.fill_(step)  # as restored from a checkpoint
    terms = m.loss_terms(BATCH)
    if lam is None:
        assert set(terms) == {"supervised"}
        return
    pred = m.generator(BATCH["input"])
    torch.testing.assert_close(terms["adversarial"], lam * -m.critic(pred).mean())
    assert m.adversarial_weight() == lam


def test_resume_mid_ramp_continues_the_same_curve(tmp_path) -> None:
    def module() -> AdversarialRegularization:
        return make_module("regularized", lambda_schedule="cosine", lambda_ramp_start=1, lambda_ramp_steps=4)

    whole = RecordingLogger()
    _fit(module(), tmp_path / "whole", batches=2, epochs=2, logger=whole)
    first = L.Trainer(max_epochs=1, limit_train_batches=2, logger=False, default_root_dir=tmp_path / "first", **QUIET)
    first.fit(module(), DataLoader(Pairs(n=8), batch_size=4))
    ckpt = tmp_path / "mid_ramp.ckpt"
    first.save_checkpoint(ckpt)
    resumed = RecordingLogger()
    _fit(module(), tmp_path / "resumed", batches=2, epochs=2, logger=resumed, ckpt=ckpt)
    expected, got = _by_step(whole), _by_step(resumed)
    assert sorted(got) == [2, 3]
    for step in (2, 3):
        assert got[step]["train/lambda_adv"] == expected[step]["train/lambda_adv"] == pytest.approx(
            0.5 * 0.5 * (1 - math.cos(math.pi * (step - 1) / 4)))
        assert got[step]["train/adversarial"] == pytest.approx(expected[step]["train/adversarial"], rel=1e-6)


# --------------------------------------------------------------------------- R1


class ConditionalCritic(nn.Module):
    """g(y | guide) on vectors: the guide is concatenated to y."""

    condition = True

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0))

    def forward(self, y: Tensor, guides: tuple[Tensor, ...]) -> Tensor:
        return self.net(torch.cat([y, guides[0]], dim=1))


@pytest.mark.parametrize("conditional", [False, True])
def test_r1_matches_autograd_by_hand(conditional: bool) -> None:
    torch.manual_seed(0)
    critic = ConditionalCritic() if conditional else nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0))
    m = AdversarialRegularization(nn.Linear(5, 3), critic, adversarial_loss="nonsaturating", r1_weight=3.0)
    g = torch.Generator().manual_seed(1)
    y, fake, guide = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(4, 2, generator=g)
    guides = (guide,) if conditional else ()

    def judge(v: Tensor) -> Tensor:
        return critic(v, guides) if conditional else critic(v)

    out = m.critic_step(y, fake, guides=guides)
    y_ = y.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(judge(y_).sum(), y_, create_graph=True)
    r1 = (grad**2).sum(dim=1).mean()
    torch.testing.assert_close(out["r1_penalty"], r1.detach())
    real, fake_scores = judge(y), judge(fake)
    hand = nn.functional.softplus(-real).mean() + nn.functional.softplus(fake_scores).mean() + 1.5 * r1
    torch.testing.assert_close(out["critic_loss"], hand)
    params = list(critic.parameters())
    for a, b in zip(torch.autograd.grad(out["critic_loss"], params), torch.autograd.grad(hand, params), strict=True):
        torch.testing.assert_close(a, b)


def test_r1_is_float32_under_autocast_and_zero_for_a_constant_critic() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        r1 = r1_penalty(critic, torch.randn(2, 3).bfloat16())
    assert r1.dtype == torch.float32 and r1 > 0
    flat = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    nn.init.zeros_(flat[0].weight)
    assert r1_penalty(flat, torch.randn(2, 3)).item() == 0.0


def test_r1_is_logged_in_a_fit(tmp_path) -> None:
    trainer = _fit(make_module("regularized", adversarial_loss="hinge", r1_weight=1.0), tmp_path, batches=2)
    assert trainer.logged_metrics["train/r1_penalty"] > 0


# --------------------------------------------------------------------------- relativistic losses

REAL = torch.tensor([1.0, 3.0])
FAKE = torch.tensor([-1.0, 0.5])
# mean real 2, mean fake -0.25: r~ = [1.25, 3.25], f~ = [-3, -1.5]
_RA_HAND = {
    "ragan": (
        (_softplus(-1.25) + _softplus(-3.25)) / 2 + (_softplus(-3.0) + _softplus(-1.5)) / 2,
        (_softplus(3.0) + _softplus(1.5)) / 2 + (_softplus(1.25) + _softplus(3.25)) / 2,
    ),
    "ralsgan": (
        0.5 * (0.25**2 + 2.25**2) / 2 + 0.5 * ((-2.0) ** 2 + (-0.5) ** 2) / 2,
        0.5 * ((-4.0) ** 2 + (-2.5) ** 2) / 2 + 0.5 * (2.25**2 + 4.25**2) / 2,
    ),
}


@pytest.mark.parametrize("name", list(_RA_HAND))
def test_relativistic_losses_match_the_hand_formulas(name: str) -> None:
    loss = make_gan_loss(name)
    assert loss.needs_real_scores and not loss.uses_gradient_penalty
    critic_expected, gen_expected = _RA_HAND[name]
    assert loss.critic_loss(REAL, FAKE).item() == pytest.approx(critic_expected, rel=1e-6)
    assert loss.generator_loss(FAKE, REAL).item() == pytest.approx(gen_expected, rel=1e-6)
    with pytest.raises(ValueError, match="needs the critic's scores on real samples"):
        loss.generator_loss(FAKE)


def test_relativistic_hand_values_literal() -> None:
    assert _RA_HAND["ralsgan"] == (2.34375, 11.34375)
    assert isinstance(make_gan_loss("ragan"), RaGAN) and isinstance(make_gan_loss("ralsgan"), RaLSGAN)


def test_relativistic_average_wraps_any_absolute_loss() -> None:
    """RaHinge: relu(1 - r~) + relu(1 + f~) for the critic, the roles swapped for the generator."""
    loss = RelativisticAverage(Hinge())
    assert loss.critic_loss(REAL, FAKE).item() == 0.0  # both margins met
    assert loss.generator_loss(FAKE, REAL).item() == pytest.approx((4.0 + 2.5) / 2 + (2.25 + 4.25) / 2)
    assert type(RelativisticAverage().base) is NonSaturating
    assert RelativisticAverage(make_gan_loss("wgan-gp")).uses_gradient_penalty
    with pytest.raises(ValueError, match="not a relativistic one"):
        RelativisticAverage(RaGAN())
    with pytest.raises(ValueError, match="must differ"):
        LSGAN(real_label=1.0, fake_label=1.0)


def test_relativistic_generator_term_uses_detached_real_scores() -> None:
    m = make_module("regularized", adversarial_loss="ragan")
    terms = m.loss_terms(BATCH)
    pred = m.generator(BATCH["input"])
    real = m.critic(BATCH["target"]).detach()
    hand = 0.5 * RaGAN().generator_loss(m.critic(pred), real)
    torch.testing.assert_close(terms["adversarial"], hand)
    params = list(m.generator.parameters())
    for a, b in zip(torch.autograd.grad(terms["adversarial"], params), torch.autograd.grad(hand, params), strict=True):
        torch.testing.assert_close(a, b)


class OldStyleLoss(GANLoss):
    """A user loss written before real scores existed: ``generator_loss(fake_scores)`` only."""

    def critic_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: Tensor) -> Tensor:  # type: ignore[override]
        return -2.0 * fake_scores.mean()


def test_ragan_trains_and_old_style_losses_keep_working(tmp_path) -> None:
    trainer = _fit(make_module("regularized", adversarial_loss="ragan"), tmp_path / "ra", batches=2)
    assert torch.isfinite(trainer.logged_metrics["train/adversarial"])
    m = make_module("regularized", adversarial_loss=OldStyleLoss())
    pred = m.generator(BATCH["input"])
    torch.testing.assert_close(m.loss_terms(BATCH)["adversarial"], 0.5 * -2.0 * m.critic(pred).mean())
    _fit(m, tmp_path / "old", batches=1)


# --------------------------------------------------------------------------- spectral angle and total variation


def test_spectral_angle_by_hand() -> None:
    # pixels: (1,0) vs (0,1): pi/2; (1,0) vs (1,1): pi/4; (3,4) vs (0,0): not counted
    pred = torch.tensor([[[[1.0, 1.0, 3.0]], [[0.0, 0.0, 4.0]]]])
    target = torch.tensor([[[[0.0, 1.0, 0.0]], [[1.0, 1.0, 0.0]]]])
    assert SpectralAngleLoss()(pred, target).item() == pytest.approx(3 * math.pi / 8, rel=1e-6)
    vectors = SpectralAngleLoss()(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, -1.0]]))
    assert vectors.item() == pytest.approx((math.pi / 4 + math.pi) / 2, abs=1e-3)
    # parallel spectra: angle 0 with a finite (zero) gradient
    same = torch.tensor([[[[1.0]], [[2.0]]]], requires_grad=True)
    loss = SpectralAngleLoss()(same, same.detach() * 3)
    (grad,) = torch.autograd.grad(loss, same)
    assert loss.item() == pytest.approx(0.0, abs=1e-3) and torch.isfinite(grad).all()
    assert SpectralAngleLoss()(torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)).item() == 0.0  # nothing counted


def test_total_variation_by_hand() -> None:
    band = [[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]  # vertical |2|,|1|,|1| -> 4/3; horizontal 1,2,0,0 -> 3/4
    img = torch.tensor([[band, [[5.0] * 3] * 2]])  # (1, 2, 2, 3), second band flat
    assert TotalVariationLoss()(img).item() == pytest.approx((4 / 3 + 3 / 4) / 2)
    with pytest.raises(ValueError, match=r"needs images \(B, C, H, W\)"):
        TotalVariationLoss()(torch.ones(4, 3))


class Images(Dataset):
    def __init__(self, n: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 2, 4, 4, generator=g), torch.rand(n, 2, 4, 4, generator=g) + 0.5

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input": self.x[i], "target": self.y[i]}


def image_module(**kw) -> AdversarialRegularization:
    torch.manual_seed(0)
    gen = nn.Conv2d(2, 2, 3, padding=1)
    critic = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Conv2d(3, 1, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(0))
    args = {"adversarial_loss": "wgan", "n_critic": 1, "lambda_adv": 0.5, "supervised_loss": "l1",
            "optimizer_g": partial(torch.optim.SGD, lr=0.01), "optimizer_d": partial(torch.optim.SGD, lr=0.01), **kw}
    return AdversarialRegularization(gen, critic, **args)


def _tv(img: Tensor) -> Tensor:
    dy = (img[..., 1:, :] - img[..., :-1, :]).abs().mean(dim=(-2, -1))
    dx = (img[..., :, 1:] - img[..., :, :-1]).abs().mean(dim=(-2, -1))
    return (dy + dx).mean()


def test_sam_and_tv_are_their_own_loss_terms() -> None:
    m = image_module(sam_weight=0.5, tv_weight=0.1)
    batch = {"input": Images().x, "target": Images().y}
    terms = m.loss_terms(batch)
    assert list(terms) == ["supervised", "spectral_angle", "total_variation", "adversarial"]
    pred = m.generator(batch["input"])
    torch.testing.assert_close(terms["total_variation"], 0.1 * _tv(pred))
    p, t = pred.detach(), batch["target"]
    cos = (p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1))
    torch.testing.assert_close(terms["spectral_angle"].detach(), 0.5 * torch.acos(cos).mean())
    assert set(image_module().loss_terms(batch)) == {"supervised", "adversarial"}


def test_gradient_norm_monitor_sees_the_new_terms(tmp_path) -> None:
    m = image_module(sam_weight=0.5, tv_weight=0.1, adversarial_loss="ragan", r1_weight=1.0)
    monitor = GradientNormMonitor(every_n_steps=1, loss_terms_every_n_steps=1)
    _fit(m, tmp_path, batches=1, epochs=2, callbacks=[monitor], data=Images())
    metrics = monitor.last_metrics
    # the final analysis: the last batch (the whole data set) at the final weights and lambda
    terms = m.loss_terms({"input": Images().x, "target": Images().y})
    params = list(m.generator.parameters())
    for name in ("supervised", "spectral_angle", "total_variation", "adversarial"):
        grads = torch.autograd.grad(terms[name], params, retain_graph=True)
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
        assert metrics[f"grad_norm/terms/{name}/total"] == pytest.approx(norm, rel=1e-5), name
        assert norm > 0


def test_controls_through_the_config_parser() -> None:
    from jsonargparse import ArgumentParser

    nets = {"generator": {"class_path": "torch.nn.Linear", "init_args": {"in_features": 5, "out_features": 3}},
            "critic": {"class_path": "torch.nn.Linear", "init_args": {"in_features": 3, "out_features": 1}}}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(AdversarialRegularization, "model")
    controls = {"pretrain_steps": 5, "lambda_schedule": "cosine", "lambda_ramp_start": 5, "lambda_ramp_steps": 10,
                "r1_weight": 10.0, "sam_weight": 0.1, "tv_weight": 0.01}
    base = {"class_path": "aerogan.losses.RelativisticAverage", "init_args": {"base": {"class_path": "aerogan.losses.Hinge"}}}
    model = parser.instantiate(parser.parse_object({"model": {**nets, **controls, "adversarial_loss": base}})).model
    assert isinstance(model.adversarial, RelativisticAverage) and isinstance(model.adversarial.base, Hinge)
    assert model.adversarial_weight(5) == 0.0 and model.adversarial_weight(15) == model.lambda_adv
    assert (model.r1_weight, model.sam_weight, model.tv_weight) == (10.0, 0.1, 0.01)
    assert isinstance(parser.instantiate(parser.parse_object({"model": {**nets, "adversarial_loss": "ralsgan"}})).model.adversarial, RaLSGAN)
    with pytest.raises(Exception, match="lambda_schedule"):
        parser.parse_object({"model": {**nets, "lambda_schedule": "exponential"}})
