"""The adversarially regularized module: objectives, their gradients, and one exact training step."""

from __future__ import annotations

import copy
from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aerogan import AdversarialRegularization


class Pairs(Dataset):
    def __init__(self, n: int = 8, d_in: int = 5, d_out: int = 3, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, d_in, generator=g)
        self.y = torch.randn(n, d_out, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input": self.x[i], "target": self.y[i]}


def make_module(objective: str = "regularized", adversarial_loss: str = "wgan", n_critic: int = 1, lr: float = 0.1, **kw):
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    critic = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1), nn.Flatten(0))
    return AdversarialRegularization(
        gen, critic, objective=objective, adversarial_loss=adversarial_loss, n_critic=n_critic, lambda_adv=0.5,
        optimizer_g=partial(torch.optim.SGD, lr=lr), optimizer_d=partial(torch.optim.SGD, lr=lr), supervised_loss="mse", **kw,
    )


def generator_grads(module: AdversarialRegularization, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    loss = sum(module.loss_terms(batch).values())
    return torch.autograd.grad(loss, list(module.generator.parameters()))


BATCH = {"input": torch.randn(4, 5, generator=torch.Generator().manual_seed(1)), "target": torch.randn(4, 3, generator=torch.Generator().manual_seed(2))}


def test_objectives_expose_the_right_terms() -> None:
    assert set(make_module("supervised").loss_terms(BATCH)) == {"supervised"}
    assert set(make_module("adversarial").loss_terms(BATCH)) == {"adversarial"}
    assert set(make_module("regularized").loss_terms(BATCH)) == {"supervised", "adversarial"}


def test_supervised_generator_gradient_ignores_the_critic() -> None:
    m = make_module("supervised")
    before = generator_grads(m, BATCH)
    with torch.no_grad():
        for p in m.critic.parameters():
            p.add_(torch.randn_like(p))
    after = generator_grads(m, BATCH)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b)
    # and it is exactly the gradient of the supervised loss
    direct = torch.autograd.grad(nn.functional.mse_loss(m.generator(BATCH["input"]), BATCH["target"]), list(m.generator.parameters()))
    for a, b in zip(before, direct, strict=True):
        torch.testing.assert_close(a, b)


def test_adversarial_generator_gradient_is_minus_critic_score() -> None:
    m = make_module("adversarial")
    grads = generator_grads(m, BATCH)
    direct = torch.autograd.grad(-m.critic(m.generator(BATCH["input"])).mean(), list(m.generator.parameters()))
    for a, b in zip(grads, direct, strict=True):
        torch.testing.assert_close(a, b)


def test_regularized_is_supervised_minus_lambda_critic() -> None:
    m = make_module("regularized")
    terms = m.loss_terms(BATCH)
    pred = m.generator(BATCH["input"])
    expected = nn.functional.mse_loss(pred, BATCH["target"]) - 0.5 * m.critic(pred).mean()
    torch.testing.assert_close(sum(terms.values()), expected)
    # reaction + diffusion = gradient of the whole generator loss
    g_sum = generator_grads(m, BATCH)
    params = list(m.generator.parameters())
    g_sup = torch.autograd.grad(terms["supervised"], params, retain_graph=True)
    g_adv = torch.autograd.grad(terms["adversarial"], params)
    for s, a, t in zip(g_sup, g_adv, g_sum, strict=True):
        torch.testing.assert_close(s + a, t)


def test_loss_terms_parameters_are_the_generator() -> None:
    m = make_module()
    names = dict(m.loss_terms_parameters())
    assert set(names) == {f"generator.{n}" for n, _ in m.generator.named_parameters()}
    assert all(p is dict(m.named_parameters())[n] for n, p in names.items())


@pytest.mark.parametrize("objective", ["supervised", "adversarial", "regularized"])
def test_one_training_step_matches_a_hand_written_step(objective: str, tmp_path) -> None:
    """n_critic critic SGD steps on (y, f(x).detach()), then one generator step against the updated critic."""
    m = make_module(objective, n_critic=2)
    ref = copy.deepcopy(m)
    loader = DataLoader(Pairs(n=4), batch_size=4)
    batch = next(iter(loader))

    # hand-written reference
    x, y = batch["input"], batch["target"]
    fake = ref.generator(x).detach()
    for _ in range(2):
        loss_d = ref.critic(fake).mean() - ref.critic(y).mean()
        grads = torch.autograd.grad(loss_d, list(ref.critic.parameters()))
        with torch.no_grad():
            for p, g in zip(ref.critic.parameters(), grads, strict=True):
                p -= 0.1 * g
    pred = ref.generator(x)
    loss_g = {
        "supervised": nn.functional.mse_loss(pred, y),
        "adversarial": -ref.critic(pred).mean(),
        "regularized": nn.functional.mse_loss(pred, y) - 0.5 * ref.critic(pred).mean(),
    }[objective]
    grads = torch.autograd.grad(loss_g, list(ref.generator.parameters()))
    with torch.no_grad():
        for p, g in zip(ref.generator.parameters(), grads, strict=True):
            p -= 0.1 * g

    trainer = L.Trainer(max_steps=2 * 1, limit_train_batches=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(m, loader)
    for (name, a), b in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_warmup_trains_only_the_critic(tmp_path) -> None:
    m = make_module("regularized", critic_warmup_steps=5)
    gen0 = copy.deepcopy(m.generator.state_dict())
    critic0 = copy.deepcopy(m.critic.state_dict())
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(m, DataLoader(Pairs(n=8), batch_size=4))
    assert all(torch.equal(v, m.generator.state_dict()[k]) for k, v in gen0.items())
    assert not all(torch.equal(v, m.critic.state_dict()[k]) for k, v in critic0.items())


def test_wgan_gp_logs_penalty_and_wasserstein(tmp_path) -> None:
    m = make_module("regularized", adversarial_loss="wgan-gp")
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, logger=False, enable_checkpointing=False, log_every_n_steps=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(m, DataLoader(Pairs(n=8), batch_size=4))
    logged = trainer.logged_metrics
    for key in ["train/supervised", "train/adversarial", "train/critic_loss", "train/critic_real", "train/critic_fake",
                "train/wasserstein", "train/gradient_penalty", "train/generator_loss"]:
        assert key in logged and torch.isfinite(logged[key]), key
    torch.testing.assert_close(logged["train/wasserstein"], logged["train/critic_real"] - logged["train/critic_fake"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "semi"}, "model.objective='semi' is not one of supervised, adversarial, regularized"),
        ({"critic": None, "objective": "regularized"}, "needs a critic"),
        ({"n_critic": -1}, "model.n_critic"),
        ({"lambda_adv": -1.0}, "model.lambda_adv"),
        ({"supervised_loss": "huber"}, "huber"),
        ({"adversarial_loss": "wgan-xx"}, "wgan-xx"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict, message: str) -> None:
    args = {"generator": nn.Linear(2, 2), "critic": nn.Linear(2, 1), **kwargs}
    with pytest.raises(ValueError, match=None) as info:
        AdversarialRegularization(**args)
    assert message in str(info.value)


def test_supervised_without_critic_trains(tmp_path) -> None:
    torch.manual_seed(0)
    m = AdversarialRegularization(nn.Linear(5, 3), None, objective="supervised", supervised_loss="mse",
                                  optimizer_g=partial(torch.optim.SGD, lr=0.1))
    w0 = m.generator.weight.detach().clone()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(m, DataLoader(Pairs(n=8), batch_size=4))
    assert not torch.equal(w0, m.generator.weight)


class RecordingLogger(Logger):
    """Keeps every ``log_metrics`` call as (step, {name: float})."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.records.append((int(step), {k: float(v) for k, v in metrics.items() if k.startswith("train/")}))


def _logged_run(tmp_path, every: int, batches: int = 7) -> tuple[list[tuple[int, dict[str, float]]], int]:
    m = make_module("regularized", adversarial_loss="wgan-gp", n_critic=2)
    calls = []
    original = m.log_dict
    m.log_dict = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
    logger = RecordingLogger()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=batches, logger=logger, log_every_n_steps=every,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    torch.manual_seed(0)
    trainer.fit(m, DataLoader(Pairs(n=4 * batches), batch_size=4))
    return [(step, values) for step, values in logger.records if values], len(calls)


def test_diagnostics_are_logged_at_the_logger_cadence_with_the_same_values_and_steps(tmp_path) -> None:
    """Logged every log_every_n_steps batches only, and identical to a per-batch run at those batches."""
    every_batch, calls_1 = _logged_run(tmp_path / "a", every=1)
    every_third, calls_3 = _logged_run(tmp_path / "b", every=3)
    assert [step for step, _ in every_batch] == list(range(7))
    assert [step for step, _ in every_third] == [2, 5]  # the logger's own steps: batches 3 and 6
    assert calls_1 == 7 and calls_3 == 2  # the diagnostics are not even computed in between
    reference = dict(every_batch)
    keys = {"train/critic_real", "train/critic_fake", "train/wasserstein", "train/gradient_penalty", "train/critic_loss",
            "train/supervised", "train/adversarial", "train/generator_loss", "train/loss"}
    for step, values in every_third:
        assert set(values) == keys
        assert values == reference[step]


def test_warmup_logs_the_supervised_loss_as_the_main_loss(tmp_path) -> None:
    m = make_module("regularized", critic_warmup_steps=5)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, logger=False, enable_checkpointing=False, log_every_n_steps=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(m, DataLoader(Pairs(n=8), batch_size=4))
    logged = trainer.logged_metrics
    assert "train/generator_loss" not in logged and "train/adversarial" not in logged
    torch.testing.assert_close(logged["train/loss"], logged["train/supervised"])


def test_batches_seen_survives_a_restore_without_reading_the_buffer_every_step(tmp_path) -> None:
    """The warm-up counts batches across a resume: the host copy is re-read from the restored buffer."""
    m = make_module("regularized", critic_warmup_steps=3)
    kw = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
              default_root_dir=tmp_path)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, **kw)
    trainer.fit(m, DataLoader(Pairs(n=8), batch_size=4))
    ckpt = tmp_path / "two.ckpt"
    trainer.save_checkpoint(ckpt)
    gen_before = copy.deepcopy(m.generator.state_dict())
    resumed = make_module("regularized", critic_warmup_steps=3)
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, **kw)
    trainer.fit(resumed, DataLoader(Pairs(n=8), batch_size=4), ckpt_path=ckpt)
    assert int(resumed.batches_seen) == 4
    # batch 2 (the third) was still warm-up, batch 3 trained the generator
    assert any(not torch.equal(v, resumed.generator.state_dict()[k]) for k, v in gen_before.items())
