"""GradientNormMonitor: per-optimizer norms, tags, x-axis, cadence, loss-term gradients, non-finite grads."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from test_callbacks_models import RecordingLogger, TinyGAN, make_trainer

from callbacks import GradientNormMonitor

# expected when a test runs without TensorBoard; asserted where it matters
pytestmark = pytest.mark.filterwarnings("ignore:.*no TensorBoardLogger in:UserWarning")


class RecordingGAN(TinyGAN):
    """Keeps the gradients each optimizer sees in ``on_before_optimizer_step`` (the hook runs after callbacks')."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: list[tuple[int, str, dict[str, torch.Tensor]]] = []

    def on_before_optimizer_step(self, optimizer) -> None:
        opt_g, _ = self.optimizers()
        which = "generator" if optimizer is opt_g.optimizer else "critic"
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        grads = {
            n: p.grad.clone() for n, p in self.named_parameters() if id(p) in params and p.grad is not None
        }
        self.seen.append((self.trainer.fit_loop.epoch_loop._batches_that_stepped, which, grads))


def test_gan_tags_steps_and_values(tmp_path) -> None:
    model = RecordingGAN()
    logger = RecordingLogger()
    monitor = GradientNormMonitor(every_n_steps=1, loss_terms_every_n_steps=1)
    trainer = make_trainer(tmp_path, max_epochs=2, limit_train_batches=3, logger=logger, callbacks=[monitor])
    trainer.fit(model)

    # the x-axis is the batch index, not trainer.global_step (two optimizer steps per batch)
    assert trainer.global_step == 12
    assert logger.steps("grad_norm/generator/total") == list(range(6))
    assert logger.steps("grad_norm/critic/total") == list(range(6))
    # the loss-term analysis runs before each batch, and once more at the end of fit on the final weights (step 6)
    assert logger.steps("grad_norm/terms/supervised/total") == list(range(7))

    # values against the gradients the module saw, per optimizer, never mixing the other network's gradients
    assert len(model.seen) == 12
    for step, which, grads in model.seen:
        values = logger.values(f"grad_norm/{which}/total")
        assert all(n.startswith(which + ".") for n in grads)
        expected_total = math.sqrt(sum(float(g.norm()) ** 2 for g in grads.values()))
        assert values[step] == pytest.approx(expected_total, rel=1e-5)
        for name, g in grads.items():
            assert logger.values(f"grad_norm/{which}/{name}")[step] == pytest.approx(
                float(g.norm()), rel=1e-5
            )
        assert logger.values(f"grad_norm/{which}/nonfinite_count")[step] == 0

    # the generator steps first on the same batch/weights/RNG: ‖R + D‖ is exactly the generator gradient norm
    for step in range(6):
        assert logger.values("grad_norm/terms/sum/total")[step] == pytest.approx(
            logger.values("grad_norm/generator/total")[step], rel=1e-5
        )
        assert logger.values("grad_norm/terms/sum/generator.0.weight")[step] == pytest.approx(
            logger.values("grad_norm/generator/generator.0.weight")[step], rel=1e-5
        )
    assert not any(t.startswith("grad_norm/terms/") and "critic" in t for t in logger.tags())


def _independent_grads(model: TinyGAN, batch, seed: int) -> dict[str, list[torch.Tensor]]:
    params = [p for _, p in model.loss_terms_parameters()]
    torch.manual_seed(seed)
    terms = model.loss_terms(batch)
    out = {k: list(torch.autograd.grad(v, params, retain_graph=True)) for k, v in terms.items()}
    torch.manual_seed(seed)
    total = sum(model.loss_terms(batch).values())
    out["sum"] = list(torch.autograd.grad(total, params))
    return out


def test_term_gradients_against_autograd_and_untouched_state() -> None:
    model = TinyGAN()
    model.train()
    batch = (model.x[:4], model.y[:4])
    names = [n for n, _ in model.loss_terms_parameters()]

    # a state the analysis must leave alone: toggled-off flags, existing .grad, BN statistics, RNG
    for p in model.critic.parameters():
        p.requires_grad_(False)
    model.generator[0].bias.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.generator.parameters():
        p.grad = torch.full_like(p, 7.0)
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()

    metrics = GradientNormMonitor().compute_term_gradients(model, batch)

    assert torch.equal(torch.get_rng_state(), rng)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.generator.parameters())
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())

    for p in model.parameters():
        p.requires_grad_(True)
    ref = _independent_grads(model, batch, seed=123)
    for k, name in enumerate(names):
        s, a, t = ref["supervised"][k], ref["adversarial"][k], ref["sum"][k]
        assert metrics[f"grad_norm/terms/supervised/{name}"] == pytest.approx(
            float(s.norm()), rel=1e-5, abs=1e-7
        )
        assert metrics[f"grad_norm/terms/adversarial/{name}"] == pytest.approx(
            float(a.norm()), rel=1e-5, abs=1e-7
        )
        # reaction + diffusion = the gradient of the summed loss
        assert metrics[f"grad_norm/terms/sum/{name}"] == pytest.approx(float(t.norm()), rel=1e-5, abs=1e-7)
        assert float((s + a - t).norm()) <= 1e-6 * max(1.0, float(t.norm()))
        if min(float(s.norm()), float(a.norm())) < 1e-5:
            continue  # e.g. the conv bias in front of BatchNorm: its gradient is rounding noise
        assert metrics[f"grad_norm/terms/ratio/{name}"] == pytest.approx(float(a.norm() / s.norm()), rel=1e-5)
        cos = float((s * a).sum() / (s.norm() * a.norm()))
        assert metrics[f"grad_norm/terms/cosine/{name}"] == pytest.approx(cos, rel=1e-4, abs=1e-6)
    s_all = torch.cat([g.flatten() for g in ref["supervised"]])
    a_all = torch.cat([g.flatten() for g in ref["adversarial"]])
    t_all = torch.cat([g.flatten() for g in ref["sum"]])
    assert metrics["grad_norm/terms/supervised/total"] == pytest.approx(float(s_all.norm()), rel=1e-5)
    assert metrics["grad_norm/terms/sum/total"] == pytest.approx(float(t_all.norm()), rel=1e-5)
    assert metrics["grad_norm/terms/ratio/total"] == pytest.approx(
        float(a_all.norm() / s_all.norm()), rel=1e-5
    )
    cos_total = float(s_all @ a_all / (s_all.norm() * a_all.norm()))
    assert metrics["grad_norm/terms/cosine/total"] == pytest.approx(cos_total, rel=1e-4, abs=1e-6)


def test_loss_terms_analysis_leaves_training_untouched(tmp_path) -> None:
    def run(every: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = TinyGAN()
        monitor = GradientNormMonitor(every_n_steps=1, loss_terms_every_n_steps=every)
        make_trainer(tmp_path, max_epochs=1, limit_train_batches=4, callbacks=[monitor]).fit(model)
        return model.state_dict()

    plain, observed = run(0), run(1)
    assert plain.keys() == observed.keys()
    assert all(torch.equal(plain[k], observed[k]) for k in plain)


class TermsBoring(BoringModel):
    """BoringModel with two arbitrary terms and no ``loss_terms_parameters`` (all trainable parameters)."""

    def loss_terms(self, batch):
        loss = self.step(batch)
        return {"a": loss, "b": 0.5 * loss}


def test_cadence_names_and_generic_terms(tmp_path) -> None:
    logger = RecordingLogger()
    monitor = GradientNormMonitor(every_n_steps=3, loss_terms_every_n_steps=4, per_layer=False)
    trainer = make_trainer(tmp_path, limit_train_batches=10, logger=logger, callbacks=[monitor])
    trainer.fit(TermsBoring())

    # BoringModel's single optimizer trains its child `layer`
    assert logger.steps("grad_norm/layer/total") == [0, 3, 6, 9]  # the last batch (9) was due anyway
    assert logger.steps("grad_norm/terms/a/total") == [0, 4, 8, 10]  # + the final weights after 10 batches
    assert not any(t.startswith("grad_norm/layer/layer.") for t in logger.tags())  # per_layer=False
    for step in (0, 4, 8, 10):
        assert logger.values("grad_norm/terms/ratio/total")[step] == pytest.approx(0.5)
        assert logger.values("grad_norm/terms/cosine/total")[step] == pytest.approx(1.0)
        assert logger.values("grad_norm/terms/sum/total")[step] == pytest.approx(
            1.5 * logger.values("grad_norm/terms/a/total")[step]
        )


class NaNGradBoring(BoringModel):
    def on_after_backward(self) -> None:
        if self.trainer.fit_loop.epoch_loop._batches_that_stepped == 2:
            self.layer.weight.grad[0, 0] = float("nan")


def test_nonfinite_gradients_are_counted(tmp_path) -> None:
    logger = RecordingLogger()
    monitor = GradientNormMonitor(every_n_steps=1, norm_type=float("inf"))
    trainer = make_trainer(tmp_path, limit_train_batches=4, logger=logger, callbacks=[monitor])
    trainer.fit(NaNGradBoring())
    counts = logger.values("grad_norm/layer/nonfinite_count")
    assert counts[0] == counts[1] == 0
    assert counts[2] == 1
    assert math.isnan(logger.values("grad_norm/layer/total")[2])
    assert monitor.last_metrics["grad_norm/layer/nonfinite_count"] > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"every_n_steps": 0},
        {"every_n_steps": 1.5},
        {"loss_terms_every_n_steps": -1},
        {"norm_type": 0},
        {"norm_type": "x"},
    ],
)
def test_invalid_arguments(kwargs) -> None:
    with pytest.raises(MisconfigurationException):
        GradientNormMonitor(**kwargs)


def test_bad_loss_terms_are_reported() -> None:
    class Bad(BoringModel):
        def loss_terms(self, batch):
            return {"sum": self.step(batch)}

    model = Bad()
    with pytest.raises(ValueError, match="sum"):
        GradientNormMonitor().compute_term_gradients(model, torch.randn(2, 32))


class PenalizedGAN(TinyGAN):
    def loss_terms(self, batch):
        terms = super().loss_terms(batch)
        terms["weight_penalty"] = 1e-2 * sum(p.square().sum() for p in self.generator.parameters())
        return terms


def test_ratio_pair_with_extra_terms() -> None:
    torch.manual_seed(0)
    model = PenalizedGAN(dropout=0.0)
    batch = (model.x[:4], model.y[:4])
    monitor = GradientNormMonitor(per_layer=False)
    three = monitor.compute_term_gradients(model, batch)
    model_two = TinyGAN(dropout=0.0)
    model_two.load_state_dict(model.state_dict())
    two = monitor.compute_term_gradients(model_two, batch)
    # (supervised, adversarial) is still compared when a third term is present
    for key in ("grad_norm/terms/ratio/total", "grad_norm/terms/cosine/total"):
        assert three[key] == pytest.approx(two[key], rel=1e-5)
    assert three["grad_norm/terms/sum/total"] != pytest.approx(two["grad_norm/terms/sum/total"])
    assert "grad_norm/terms/weight_penalty/total" in three

    class ThreeTerms(BoringModel):
        def loss_terms(self, batch):
            loss = self.step(batch)
            return {"a": loss, "b": 2 * loss, "c": 3 * loss}

    generic = monitor.compute_term_gradients(ThreeTerms(), torch.randn(2, 32))
    assert generic["grad_norm/terms/c/total"] == pytest.approx(3 * generic["grad_norm/terms/a/total"])
    assert not any("ratio" in k or "cosine" in k for k in generic)


@pytest.mark.parametrize("p", [2.0, 1.0, float("inf"), 3.0])
def test_fused_norms_equal_one_norm_per_tensor(p: float) -> None:
    """The fused per-parameter norms (float32 gradients) and the per-tensor path (other dtypes) agree."""
    from callbacks.gradient_norm import _norm, _norms

    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=gen), torch.randn(7, generator=gen), 100 * torch.randn(2, 2, 2, generator=gen)]
    cpu = torch.device("cpu")
    expected = torch.stack([torch.linalg.vector_norm(g.double(), ord=p).float() for g in grads])
    torch.testing.assert_close(_norms(grads, p, cpu), expected)
    mixed = [grads[0].double(), grads[1].bfloat16(), grads[2]]  # not all float32: one norm per tensor
    torch.testing.assert_close(_norms(mixed, p, cpu), torch.stack([_norm(g, p) for g in mixed]))
