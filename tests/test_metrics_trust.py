"""The one degradation operator and the "trustworthy pixels" metrics: consistency, synthesis, correctness."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from torch import Tensor

from aerogan import SuperResolution
from aerogan.degradation import GaussianBlockMean
from aerogan.metrics import (
    HALLUCINATION,
    IMPROVEMENT,
    OMISSION,
    UNDECIDED,
    Consistency,
    Correctness,
    Synthesis,
    correctness_map,
    phase_correlation,
)
from aerogan.nets import SRResNet
from aerogan.panels import CLASS_COLOURS, render_correctness
from datamodules import SyntheticDataModule
from datamodules.multires import MultiResolutionDataModule
from datamodules.wald import WaldDegradation, degrade_group
from tests.data.multires import GROUPS, write_group_rasters
from tests.tb import load_events

TINY = Path(__file__).parent / "conf" / "tiny.yaml"
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def periodic_field(batch: int, bands: int, size: int, cutoff: int = 3, seed: int = 0) -> Tensor:
    """Positive, smooth, periodic images (B, C, size, size) in float64: only frequencies up to ``cutoff``."""
    g = torch.Generator().manual_seed(seed)
    spec = torch.zeros(batch, bands, size, size // 2 + 1, dtype=torch.complex128)
    for rows in (slice(0, cutoff + 1), slice(size - cutoff, size)):
        shape = (batch, bands, cutoff + 1 if rows.start == 0 else cutoff, cutoff + 1)
        spec[..., rows, : cutoff + 1] = torch.complex(torch.randn(shape, generator=g, dtype=torch.float64),
                                                      torch.randn(shape, generator=g, dtype=torch.float64))
    spec[..., 0, 0] = 0
    x = torch.fft.irfft2(spec, s=(size, size))
    return 1.0 + 0.2 * x / x.std()


# ---------------------------------------------------------------------------------------------- the operator
def test_operator_matches_hand_computation() -> None:
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    x[0, 0, 7, 8] = 1.0  # an impulse, four pixels or more from every border
    op = GaussianBlockMean(scale=2, sigma=1.0)
    taps = np.exp(-np.arange(-4, 5) ** 2 / 2.0)  # radius int(4 * 1 + 0.5) = 4
    taps /= taps.sum()
    assert op.radius == 4
    np.testing.assert_allclose(op.kernel().numpy(), np.outer(taps, taps), atol=1e-15)
    blurred = np.zeros((16, 16))
    blurred[3:12, 4:13] = np.outer(taps, taps)
    np.testing.assert_allclose(op(x)[0, 0].numpy(), blurred.reshape(8, 2, 8, 2).mean((1, 3)), atol=1e-12)
    y = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(GaussianBlockMean(2, 0.0)(y), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))  # sigma 0: block mean
    assert torch.equal(GaussianBlockMean(1, 2.0)(y), y)  # scale 1: identity
    with pytest.raises(ValueError, match="scale must be an integer >= 1"):
        GaussianBlockMean(0, 1.0)
    with pytest.raises(ValueError, match="sigma must be a number >= 0"):
        GaussianBlockMean(2, -0.5)
    with pytest.raises(ValueError, match="multiples of scale=2"):
        op(torch.zeros(1, 1, 15, 16))


def test_operator_is_linear_and_vjp_gives_its_adjoint() -> None:
    g = torch.Generator().manual_seed(1)
    op = GaussianBlockMean(3, 1.5)
    x1, x2 = (torch.rand(2, 2, 24, 24, generator=g, dtype=torch.float64) for _ in range(2))
    y = torch.rand(2, 2, 8, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(op(2 * x1 - 3 * x2), 2 * op(x1) - 3 * op(x2), rtol=1e-12, atol=1e-12)
    _, vjp = torch.func.vjp(op, torch.zeros_like(x1))
    (adjoint,) = vjp(y)
    assert math.isclose(float((op(x1) * y).sum()), float((x1 * adjoint).sum()), rel_tol=1e-12)  # <D x, y> = <x, Dᵀ y>


def test_scene_datamodules_degrade_with_the_operator_of_their_spec() -> None:
    dm = SyntheticDataModule(num_bands=3, scene_size=32, patch_size=16, scale=2)  # blur_sigma 0.5 LR px
    assert dm.degradation_spec == {"scale": 2, "sigma": 1.0}
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    lr = dm.make_pair(image)["input"]
    assert torch.equal(lr, GaussianBlockMean(**dm.degradation_spec)(image))
    # the former datamodule output (kornia blur truncated at 3 sigma: 7 taps) differs only by the kernel's tails
    former = F.avg_pool2d(gaussian_blur2d(image, (7, 7), (1.0, 1.0), border_type="reflect"), 2)
    torch.testing.assert_close(lr, former, rtol=0, atol=1e-3)
    synthesis = SyntheticDataModule(num_bands=5, scene_size=32, patch_size=16, scale=1, input_bands=[0, 1, 2], target_bands=[3, 4])
    assert synthesis.degradation_spec == {"scale": 1, "sigma": 0.0}


def test_wald_degradation_is_the_operator_and_its_margin_crop_is_unchanged() -> None:
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(WaldDegradation(2)(x), GaussianBlockMean(2, 0.5)(x))
    for ratio, m in ((2, 4), (3, 2), (6, 2)):
        sigma = 1.0 / ratio
        r = int(4 * sigma + 0.5)
        # the recipe as it was before the operator existed: kornia blur, crop the margin, block mean
        before = gaussian_blur2d(x, (2 * r + 1, 2 * r + 1), torch.full((2, 2), sigma, dtype=x.dtype), border_type="reflect")
        before = F.avg_pool2d(before[..., m : 40 - m, m : 40 - m], ratio)
        assert torch.equal(degrade_group(x, ratio, margin=m), before), ratio


def test_multiresolution_spec_is_the_target_groups_wald_blur(tmp_path: Path) -> None:
    paths = write_group_rasters(tmp_path)
    common = {"batch_size": 2, "samples_per_epoch": 8, "stats_cache_dir": str(tmp_path / "cache")}
    t2 = MultiResolutionDataModule(paths, GROUPS[20], [GROUPS[10]], patch_size=8, val_fraction=0.25, test_fraction=0.25, **common)
    assert t2.degradation_spec == {"scale": 2, "sigma": 0.5}  # DSen2: 1 / scale target pixels
    s6 = MultiResolutionDataModule(paths, GROUPS[60], [GROUPS[10], GROUPS[20]], patch_size=6, val_fraction=0.34,
                                   test_fraction=0.0, blur_sigma=0.25, **common)
    assert s6.degradation_spec == {"scale": 6, "sigma": 0.25}


# ---------------------------------------------------------------------------------------------- consistency
def test_exactly_consistent_output_scores_zero() -> None:
    hr = periodic_field(2, 3, 32)
    op = GaussianBlockMean(2, 1.0)
    metric = Consistency(3, 2, sigma=1.0, spatial=True)
    metric.update(hr, op(hr))  # the truth degrades exactly to its own input
    out = metric.compute()
    assert out["rmse"].max() < 1e-12 and out["l1"].max() < 1e-12 and out["sam"] < 1e-5 and out["shift"] < 1e-9
    metric.reset()
    metric.update(hr + 0.1, op(hr))  # the blur keeps constants: an offset of 0.1 everywhere
    out = metric.compute()
    torch.testing.assert_close(out["rmse"], torch.full((3,), 0.1, dtype=torch.float64))
    torch.testing.assert_close(out["l1"], torch.full((3,), 0.1, dtype=torch.float64))
    block = Consistency(3, 2)  # the product writer's call: block mean, no spatial check
    block.update(hr, F.avg_pool2d(hr, 2))
    assert set(block.compute()) == {"rmse", "l1", "sam"} and float(block.compute()["rmse"].max()) < 1e-12


@pytest.mark.parametrize(("hr_shift", "lr_shift"), [(1, 0.5), (2, 1.0), (-3, -1.5)])
def test_shifted_output_gives_its_shift_in_lr_pixels(hr_shift: int, lr_shift: float) -> None:
    hr = periodic_field(2, 3, 32, seed=4)
    lr = F.avg_pool2d(hr, 2)
    moved = torch.roll(hr, hr_shift, dims=-1)
    torch.testing.assert_close(phase_correlation(F.avg_pool2d(moved, 2), lr), torch.tensor([[0.0, lr_shift]] * 2, dtype=torch.float64),
                               rtol=0, atol=1e-6)
    metric = Consistency(3, 2, spatial=True)
    metric.update(moved, lr)
    assert math.isclose(float(metric.compute()["shift"]), abs(lr_shift), abs_tol=1e-6)


def test_phase_correlation_sign_and_both_axes() -> None:
    x = periodic_field(1, 2, 16, seed=5)
    torch.testing.assert_close(phase_correlation(torch.roll(x, (3, -2), (-2, -1)), x), torch.tensor([[3.0, -2.0]], dtype=torch.float64))
    assert torch.equal(phase_correlation(torch.ones(1, 1, 8, 8), torch.ones(1, 1, 8, 8)), torch.zeros(1, 2, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------- synthesis
def test_synthesis_is_zero_for_the_upsampled_input_and_the_added_detail_otherwise() -> None:
    lr = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(6))
    up = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    metric = Synthesis(2)
    metric.update(up, up)
    assert torch.equal(metric.compute(), torch.zeros(2, dtype=torch.float64))
    detail = torch.zeros_like(up)
    detail[:, 0, ::2, ::2] = 0.4  # band 0: a quarter of the pixels get 0.4 -> 0.1
    detail[:, 1] = -0.2  # band 1: -0.2 everywhere -> 0.2
    metric.reset()
    metric.update(up + detail, up)
    torch.testing.assert_close(metric.compute(), torch.tensor([0.1, 0.2], dtype=torch.float64))


# ---------------------------------------------------------------------------------------------- correctness
def test_correctness_classes_by_hand() -> None:
    up = torch.ones(1, 1, 1, 5, dtype=torch.float64)
    hr = torch.tensor([2.0, 2.0, 2.0, 1.0, 2.0], dtype=torch.float64).view(1, 1, 1, 5)
    sr = torch.tensor([2.0, 1.0, 10.0, 1.0, 1.5], dtype=torch.float64).view(1, 1, 1, 5)
    # d_ref = |1 - 2| / 3 = 1/3 (0 at pixel 3). Pixel 0 is the truth (d_im 0), pixel 1 the input (d_om 0); pixel 2:
    # d_im = (8/12) / (1/3) = 2, d_om = (9/11) / (1/3) = 2.45: scores 2.39, 2.77 and exp(-0.05 * 4.91) = 0.78;
    # pixel 4: d_im = 0.43, d_om = 0.6 (scores 0.43, 0.60, 0.99); pixel 3: all distances 0
    classes = correctness_map(sr, up, hr, threshold=0.1)
    assert classes.tolist() == [[[IMPROVEMENT, OMISSION, HALLUCINATION, UNDECIDED, IMPROVEMENT]]]
    # default threshold: the 75th percentile of d_ref (the 3rd of 5 values, 1/3): only pixel 2 departs further
    assert correctness_map(sr, up, hr).tolist() == [[[UNDECIDED, UNDECIDED, HALLUCINATION, UNDECIDED, UNDECIDED]]]
    metric = Correctness(threshold=0.1)
    metric.update(sr, up, hr)
    metric.update(sr[..., :2], up[..., :2], hr[..., :2])
    out = metric.compute()  # 6 classified pixels: 3 improvement, 2 omission, 1 hallucination
    torch.testing.assert_close(torch.stack([out["improvement"], out["omission"], out["hallucination"]]),
                               torch.tensor([3 / 6, 2 / 6, 1 / 6], dtype=torch.float64))


def test_upsampled_input_has_no_improvement_and_no_hallucination() -> None:
    hr = periodic_field(2, 3, 16, seed=7)
    up = F.interpolate(F.avg_pool2d(hr, 2), scale_factor=2, mode="bicubic", align_corners=False)
    classes = correctness_map(up, up, hr)
    decided = classes != UNDECIDED
    assert decided.float().mean() >= 0.25 and bool((classes[decided] == OMISSION).all())
    metric = Correctness()
    metric.update(up, up, hr)
    out = metric.compute()
    assert (float(out["improvement"]), float(out["omission"]), float(out["hallucination"])) == (0.0, 1.0, 0.0)
    metric.reset()
    metric.update(hr, up, hr)  # the truth itself: every classified pixel is an improvement
    assert float(metric.compute()["improvement"]) == 1.0


def test_correctness_panel_colours() -> None:
    classes = torch.tensor([[[IMPROVEMENT, OMISSION], [HALLUCINATION, UNDECIDED]]])
    image = render_correctness(classes, background=torch.full((1, 2, 2), 0.9), pad=1)
    assert image.shape == (3, 4, 4)
    for (r, c), k in {(1, 1): IMPROVEMENT, (1, 2): OMISSION, (2, 1): HALLUCINATION}.items():
        torch.testing.assert_close(image[:, r, c], torch.tensor(CLASS_COLOURS[k]))
    torch.testing.assert_close(image[:, 2, 2], torch.full((3,), 0.3))  # undecided: the background, dimmed
    assert torch.equal(image[:, 0], torch.ones(3, 4))  # the white frame


# ---------------------------------------------------------------------------------------------- DDP
def _trust_data() -> dict[str, Tensor]:
    hr = periodic_field(5, 3, 16, seed=8)
    g = torch.Generator().manual_seed(9)
    lr = GaussianBlockMean(2, 1.0)(hr) + 0.01 * torch.randn(5, 3, 8, 8, generator=g, dtype=torch.float64)
    sr = hr + 0.1 * torch.randn(hr.shape, generator=g, dtype=torch.float64)
    return {"hr": hr, "lr": lr, "sr": sr, "up": F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)}


def _trust_scores(data: dict[str, Tensor], rows: slice, batch: int = 2) -> dict[str, Tensor]:
    """Consistency, synthesis and correctness over ``rows`` of the data, in batches (synced under DDP)."""
    consistency, synthesis, correctness = Consistency(3, 2, sigma=1.0, spatial=True), Synthesis(3), Correctness()
    idx = list(range(5))[rows]
    for i in range(0, len(idx), batch):
        part = {k: v[idx[i : i + batch]] for k, v in data.items()}
        consistency.update(part["sr"], part["lr"])
        synthesis.update(part["sr"], part["up"])
        correctness.update(part["sr"], part["up"], part["hr"])
    out = {f"consistency/{k}": v for k, v in consistency.compute().items()}
    out["synthesis"] = synthesis.compute()
    out.update({f"correctness/{k}": v for k, v in correctness.compute().items()})
    return out


def _ddp_rank(rank: int, folder: str, data: dict[str, Tensor]) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    try:
        scores = _trust_scores(data, slice(0, 3) if rank == 0 else slice(3, 5))  # 3 and 2 images
        torch.save(scores, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_trust_metrics_on_two_ranks_equal_one_process(tmp_path: Path) -> None:
    data = _trust_data()
    expected = _trust_scores(data, slice(0, 5))
    assert float(expected["consistency/shift"]) > 0 and 0 < float(expected["correctness/improvement"]) < 1
    mp.start_processes(_ddp_rank, args=(str(tmp_path), data), nprocs=2, start_method=START_METHOD)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-12, atol=1e-15, msg=f"rank {rank}: {key}")


# ---------------------------------------------------------------------------------------------- the model
def test_tiny_fit_logs_the_three_families_and_the_correctness_map(run_cli, tmp_path: Path) -> None:
    cli = run_cli("fit", "--config", TINY, "--monitors.topology.enabled", "false")
    assert cli.model.metadata["degradation"] == {"scale": 2, "sigma": 1.0}
    run = sorted((tmp_path / "runs" / "tiny").glob("version_*"))[-1]
    events = load_events(run)
    scalars = set(events.Tags()["scalars"])
    first, last = cli.model.metadata["target_band_names"][0], cli.model.metadata["target_band_names"][-1]
    for family, keys in {
        "consistency": ["rmse", "rmse_bicubic", f"rmse/{first}", "l1", "l1_bicubic", f"l1/{last}", "sam", "sam_bicubic", "shift", "shift_bicubic"],
        "synthesis": ["l1", f"l1/{first}"],
        "correctness": ["improvement", "omission", "hallucination"],
    }.items():
        for key in keys:
            assert f"val/{family}/{key}" in scalars, f"val/{family}/{key}"
    assert not {"val/consistency_rmse", "val/consistency_sam", "val/synthesis/l1_bicubic"} & scalars
    fractions = [events.Scalars(f"val/correctness/{k}")[-1].value for k in ("improvement", "omission", "hallucination")]
    assert math.isclose(sum(fractions), 1.0, rel_tol=1e-5)
    assert {"samples/lr_sr_hr_error", "samples/correctness"} <= set(events.Tags()["images"])
    ckpt = run / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["aerogan"]["degradation"] == {"scale": 2, "sigma": 1.0}
    test = run_cli("test", "--config", TINY, "--ckpt_path", ckpt)
    for key in ("test/consistency/rmse", "test/consistency/rmse_bicubic", "test/synthesis/l1", "test/correctness/omission"):
        assert key in test.trainer.callback_metrics, key


def test_band_synthesis_skips_the_trust_metrics_with_one_warning(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = SyntheticDataModule(num_bands=5, scene_size=32, num_val_scenes=1, num_test_scenes=1, patch_size=16, batch_size=2,
                             scale=1, input_bands=[0, 1, 2], target_bands=[3, 4])
    model = SuperResolution(SRResNet(3, 2, 1, num_features=8, num_blocks=1), None, objective="supervised", num_panels=0)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, limit_val_batches=1, limit_test_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.validate(model, dm, verbose=False)
        trainer.test(model, dm, verbose=False)
    assert len([w for w in caught if "consistency, synthesis and correctness are not computed" in str(w.message)]) == 1
    assert "test/psnr" in trainer.callback_metrics
    assert not any(f"/{family}/" in k for family in ("consistency", "synthesis", "correctness") for k in trainer.callback_metrics)
