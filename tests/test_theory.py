"""Theory mode: the two-layer networks' scaling and initialisation, the Gram matrices, reaction + diffusion, the monitor."""

from __future__ import annotations

import csv
import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch

from aerogan import AdversarialRegularization
from aerogan.nets import TwoLayerCritic, TwoLayerNet
from callbacks import TwoLayerTheoryMonitor
from callbacks.theory import COLUMNS, gram_finite, gram_infinite
from datamodules import DigitsDataModule

REPO = Path(__file__).resolve().parents[1]


def _unit(n: int, d: int, seed: int = 0) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


# ---------------------------------------------------------------------------------------------- networks
def test_two_layer_net_layers_and_init() -> None:
    net = TwoLayerNet(in_channels=64, out_channels=10, width=512, seed=3)
    assert isinstance(net.hidden, torch.nn.Linear) and isinstance(net.output, torch.nn.Linear)
    assert net.hidden.bias is None and net.output.bias is None
    assert net.hidden.weight.shape == (512, 64) and net.output.weight.shape == (10, 512)
    u, v = net.hidden.weight.detach(), net.output.weight.detach()
    assert abs(float(u.mean())) < 0.02 and abs(float(u.var()) - 1.0) < 0.03  # u_j ~ N(0, I)
    assert set(v.unique().tolist()) == {-1.0, 1.0}  # v_ij uniform on {±1}
    assert abs(float(v.mean())) < 0.05
    # f = V σ(Ux) / √(d_out m), exactly
    x = _unit(5, 64)
    assert torch.allclose(net(x), torch.relu(x @ u.T) @ v.T / math.sqrt(10 * 512), atol=1e-6)
    # seeded init is reproducible; freeze_output keeps V fixed
    assert torch.equal(TwoLayerNet(64, 10, width=512, seed=3).hidden.weight, net.hidden.weight)
    assert not TwoLayerNet(64, 10, width=8, freeze_output=True).output.weight.requires_grad


def test_two_layer_net_rejects_scale() -> None:
    with pytest.raises(ValueError, match="scale=1"):
        TwoLayerNet(64, 10, scale=2)


def test_output_variance_at_init_monte_carlo() -> None:
    """Var f_i(x) = E[σ(uᵀx)²]/d_out = ‖x‖²/(2 d_out) = 1/(2 d_out) for ‖x‖ = 1 (over initialisations)."""
    dm = DigitsDataModule(num_train=8, num_val=1)
    x = dm.full_train()[0]
    assert torch.allclose(x.norm(dim=1), torch.ones(8), atol=1e-5)  # the datamodule's ‖x‖ = 1
    d_out, m = 10, 256
    outs = torch.stack(
        [TwoLayerNet(64, d_out, width=m, seed=s)(x).detach() for s in range(300)]
    )  # (300, 8, 10)
    var = outs.var(dim=0).mean()  # per (sample, output) variance over seeds, averaged
    assert abs(float(outs.mean())) < 0.01
    assert float(var) == pytest.approx(1 / (2 * d_out), rel=0.1)


def test_two_layer_critic_init_and_lazy() -> None:
    critic = TwoLayerCritic(in_channels=10, width=4096, seed=0)
    w, a = critic.hidden.weight.detach(), critic.output.weight.detach()
    assert w.shape == (4096, 10) and a.shape == (1, 4096)
    assert abs(float(w.var()) - 1.0) < 0.05 and set(a.unique().tolist()) == {-1.0, 1.0}
    y = torch.eye(10)[:3]
    assert critic(y).shape == (3,)
    assert torch.allclose(critic(y), (torch.relu(y @ w.T) @ a.T).squeeze(1) / 64.0, atol=1e-5)
    lazy = TwoLayerCritic(width=4096, seed=0)
    assert lazy(y).shape == (3,)  # materialised on first use, with the same N(0, 1) rule (not Kaiming)
    assert abs(float(lazy.hidden.weight.detach().var()) - 1.0) < 0.05 and lazy.hidden.weight.shape == (
        4096,
        10,
    )


# ---------------------------------------------------------------------------------------------- Gram matrices
def test_gram_finite_matches_loop() -> None:
    x, u = _unit(4, 3, seed=1), torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    h = gram_finite(x, u)
    loop = torch.zeros(4, 4, dtype=torch.float64)
    for p in range(4):
        for q in range(4):
            count = sum(1 for j in range(6) if float(u[j] @ x[p]) >= 0 and float(u[j] @ x[q]) >= 0)
            loop[p, q] = float(x[p] @ x[q]) * count / 6
    assert torch.allclose(h, loop, atol=1e-6)


def test_gram_infinite_closed_form_matches_sampling() -> None:
    x = _unit(4, 5, seed=3)
    u = torch.randn(200_000, 5, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(gram_infinite(x), gram_finite(x, u), atol=5e-3)
    assert torch.allclose(torch.diag(gram_infinite(x)), torch.full((4,), 0.5, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------- reaction + diffusion
def _module(n: int, objective: str = "regularized") -> AdversarialRegularization:
    gen = TwoLayerNet(6, 3, width=16, seed=0)
    critic = TwoLayerCritic(3, width=16, seed=1)
    return AdversarialRegularization(
        gen, critic, objective=objective, supervised_loss="half_sse", lambda_adv=float(n)
    )


def test_reaction_plus_diffusion_is_minus_grad_l_aug() -> None:
    """loss_terms' gradients: R = −∇L_sup, D = −∇(−Σ g(f)), R + D = −∇L_aug, and the paper's closed forms."""
    n, m, d_out = 5, 16, 3
    module = _module(n)
    x, y = _unit(n, 6, seed=5), torch.eye(d_out)[torch.tensor([0, 1, 2, 0, 1])]
    params = [p for _, p in module.loss_terms_parameters()]
    terms = module.loss_terms({"input": x, "target": y})
    assert set(terms) == {"supervised", "adversarial"}
    reaction = [-g for g in torch.autograd.grad(terms["supervised"], params, retain_graph=True)]
    diffusion = [-g for g in torch.autograd.grad(terms["adversarial"], params)]

    gen, critic = module.generator, module.critic
    z = gen(x)
    l_aug = 0.5 * ((z - y) ** 2).sum() - critic(z).sum()
    full = torch.autograd.grad(l_aug, params)
    for r, d, g in zip(reaction, diffusion, full, strict=True):
        assert torch.allclose(r + d, -g, atol=1e-5)

    # closed forms (ML4PS eqs. 48–56), hidden layer: R_uj[k], D_uj[k]
    u, v = gen.hidden.weight.detach(), gen.output.weight.detach()
    w, a = critic.hidden.weight.detach(), critic.output.weight.detach().squeeze(0)
    z = z.detach()
    act = (x @ u.T >= 0).float()  # (n, m)
    r_u = torch.einsum("pi,ij,pj,pk->jk", y - z, v, act, x) / math.sqrt(d_out * m)
    crit_act = (z @ w.T >= 0).float()  # 1{W V σ(U x_p) ≥ 0}, (n, m)
    # aᵀ diag(1{...}) W v_j, per sample p and neuron j
    coef = torch.einsum("r,pr,ri,ij->pj", a, crit_act, w, v)
    d_u = torch.einsum("pj,pj,pk->jk", coef, act, x) / (m * math.sqrt(d_out))
    assert torch.allclose(reaction[0], r_u, atol=1e-5)
    assert torch.allclose(diffusion[0], d_u, atol=1e-5)
    # top layer: activation σ(u_jᵀx_p) instead of x, the column W[:, i] instead of W v_j
    h = torch.relu(x @ u.T)
    r_v = torch.einsum("pi,pj->ij", y - z, h) / math.sqrt(d_out * m)
    d_v = torch.einsum("r,pr,ri,pj->ij", a, crit_act, w, h) / (m * math.sqrt(d_out))
    assert torch.allclose(reaction[1], r_v, atol=1e-5)
    assert torch.allclose(diffusion[1], d_v, atol=1e-5)


def test_half_sse_is_the_theory_loss() -> None:
    module = _module(4, objective="supervised")
    x, y = _unit(4, 6), torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    terms = module.loss_terms({"input": x, "target": y})
    assert set(terms) == {"supervised"}
    assert torch.allclose(terms["supervised"], 0.5 * ((module.generator(x) - y) ** 2).sum())


# ---------------------------------------------------------------------------------------------- monitor
def test_theory_monitor_records(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    L.seed_everything(0, verbose=False)
    n, lr = 24, 0.05
    dm = DigitsDataModule(num_train=n, num_val=8)
    gen, critic = TwoLayerNet(64, 10, width=32, seed=0), TwoLayerCritic(width=32, seed=1)
    module = AdversarialRegularization(
        gen, critic, objective="regularized", supervised_loss="half_sse", lambda_adv=float(n), n_critic=1,
        optimizer_g=partial(torch.optim.SGD, lr=lr),
    )  # fmt: skip
    monitor = TwoLayerTheoryMonitor(every_n_epochs=2)
    trainer = L.Trainer(
        max_epochs=4, logger=CSVLogger(tmp_path), callbacks=[monitor], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, accelerator="cpu", log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(module, dm)
    assert [r["epoch"] for r in monitor.history] == [0, 2, 4]
    first, last = monitor.history[0], monitor.history[-1]
    x, y = dm.full_train()
    assert first["lambda0"] == pytest.approx(float(torch.linalg.eigvalsh(gram_infinite(x))[0]), rel=1e-6)
    assert first["u_drift_max"] == 0.0 and first["flip_fraction"] == 0.0
    assert last["t"] == pytest.approx(4 * lr)  # full batch: t = lr · steps
    assert last["residual"] == pytest.approx(float((gen(x) - y).norm()), rel=1e-5)
    assert last["u_drift_max"] > 0 and last["u_path_length"] >= last["u_drift_frob"] - 1e-6
    assert last["critic_W_frob"] > 0 and math.isfinite(last["critic_grad_z_mean"])
    assert last["residual_bound"] == pytest.approx(
        math.exp(-first["lambda0"] * last["t"] / 2) * first["residual"], rel=1e-6
    )
    table = Path(trainer.logger.log_dir) / "theory.csv"
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 3


def test_theory_configs_are_twins() -> None:
    """The supervised and regularized theory configs differ only in the objective and the run name."""
    import yaml

    sup = yaml.safe_load((REPO / "configs/theory/two_layer_supervised.yaml").read_text())
    reg = yaml.safe_load((REPO / "configs/theory/two_layer_regularized.yaml").read_text())
    assert sup["model"]["init_args"].pop("objective") == "supervised"
    assert reg["model"]["init_args"].pop("objective") == "regularized"
    assert sup["trainer"]["logger"]["init_args"].pop("name") != reg["trainer"]["logger"]["init_args"].pop(
        "name"
    )
    assert sup == reg
    assert reg["model"]["init_args"]["lambda_adv"] == reg["data"]["init_args"]["num_train"]  # λ_adv = n
