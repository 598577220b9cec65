"""Transfer test protocol: shift draws, region and Wald-level rasters, scoring, the whole run and its command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.transform import Affine

import aerogan.transfer as transfer
from aerogan.transfer import (
    draw_shift,
    evaluate,
    format_row,
    main,
    score_product,
    write_region,
    write_wald_level,
)
from datamodules.band_catalog import BandGroup, MultiResolutionScene, catalog_from_rasters
from datamodules.wald import degrade_group
from tests.data.multires import GROUPS, ORIGIN, write_group_rasters
from tests.test_prediction_product import guided

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "data" / "sentinel2_multires"
REAL_FILES = [REAL / f"S2A_MSIL1C_20170527_T33UUB_{r}.tif" for r in ("10m", "20m", "60m")]
ALL = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def bands_of(path: Path) -> tuple[dict[str, np.ndarray], Any]:
    with rasterio.open(path) as ds:
        return {d: ds.read(i + 1) for i, d in enumerate(ds.descriptions)}, ds.profile


def write_tif(path: Path, bands: dict[str, np.ndarray], like: Path) -> Path:
    """A float64 GeoTIFF on the grid of ``like`` (the bands' own size), NaN nodata, described bands."""
    with rasterio.open(like) as ref:
        transform, crs = ref.transform, ref.crs
    data = np.stack(list(bands.values())).astype(np.float64)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=len(bands), dtype="float64",
                       nodata=float("nan"), crs=crs, transform=transform) as dst:
        dst.write(data)
        for i, name in enumerate(bands, start=1):
            dst.set_band_description(i, name)
    return path


def np_wald(x: np.ndarray, ratio: int) -> np.ndarray:
    """NumPy D: separable Gaussian (sigma 1/ratio, radius int(4 sigma + 0.5), reflect without edge repeat), block mean."""
    sigma = 1.0 / ratio
    r = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    p = np.pad(x, r, mode="reflect")
    rows = sum(k[i] * p[i : i + x.shape[0], :] for i in range(2 * r + 1))
    blur = sum(k[i] * rows[:, i : i + x.shape[1]] for i in range(2 * r + 1))
    h, w = x.shape[0] // ratio, x.shape[1] // ratio
    return blur.reshape(h, ratio, w, ratio).mean((1, 3))


def open_scene(paths: list[Path]) -> MultiResolutionScene:
    catalog = catalog_from_rasters(paths)
    return MultiResolutionScene([BandGroup([r for r in catalog.values() if r.file.path == p], str(p)) for p in paths])


@pytest.fixture
def levels(tmp_path: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Tiny fixture (144/72/24 px at 10/20/60 m), its right quarter and the quarter's Wald level by 2."""
    src = write_group_rasters(tmp_path / "src")
    region = write_region(src, tmp_path / "region")
    return src, region, write_wald_level(region, tmp_path / "wald")


# ---------------------------------------------------------------------------------------------- shift
def test_draw_shift_reproducible_in_range_and_different_per_band() -> None:
    a = draw_shift(ALL, seed=3)
    assert a == draw_shift(ALL, seed=3) and list(a) == ALL
    assert a != draw_shift(ALL, seed=4)
    assert all(0.6 <= g <= 1.5 and -300 <= o <= 300 for g, o in a.values())
    assert len({g for g, _ in a.values()}) == len(ALL) and len({o for _, o in a.values()}) == len(ALL)
    assert draw_shift(["b5", "B12"], seed=3) == {"B05": a["B05"], "B12": a["B12"]}  # a band's draw ignores the others
    narrow = draw_shift(ALL, seed=0, gain=(1.0, 1.0), offset=0.0)
    assert set(narrow.values()) == {(1.0, 0.0)}
    for bad in ({"seed": -1}, {"gain": (1.5, 0.6)}, {"offset": -1.0}):
        with pytest.raises(ValueError, match="draw_shift"):
            draw_shift(ALL, **bad)


# ---------------------------------------------------------------------------------------------- region
def test_write_region_window_grid_and_shift(tmp_path: Path) -> None:
    src = write_group_rasters(tmp_path / "src")
    shift = draw_shift(ALL, seed=1)
    out = write_region(src, tmp_path / "region", shift=shift)
    assert [p.name for p in out] == [p.name for p in src]
    scene = open_scene(out)  # aligned: the 60 m grid's corners
    assert (scene.height, scene.width, scene.factors) == (24, 6, [6, 3, 1])
    for s, o, res in zip(src, out, (10, 20, 60), strict=True):
        before, _ = bands_of(s)
        after, profile = bands_of(o)
        q = 60 // res
        assert list(after) == GROUPS[res] and profile["dtype"] == "float32" and np.isnan(profile["nodata"])
        assert profile["transform"] == Affine(res, 0, ORIGIN[0] + 18 * 60, 0, -res, ORIGIN[1]) and profile["crs"] == "EPSG:32633"
        for b, x in after.items():
            gain, offset = shift[b]
            assert x.shape == (24 * q, 6 * q)
            np.testing.assert_allclose(x, before[b][:, 18 * q :].astype(np.float64) * gain + offset, rtol=1e-6)
    plain = write_region(src, tmp_path / "plain", col_fraction=(0.0, 0.25))
    np.testing.assert_array_equal(bands_of(plain[1])[0]["B05"], bands_of(src[1])[0]["B05"][:, :18])
    with pytest.raises(ValueError, match="col_fraction"):
        write_region(src, tmp_path / "bad", col_fraction=(0.5, 0.5))
    with pytest.raises(ValueError, match="B10"):
        write_region(src, tmp_path / "bad", shift={"B10": (1.0, 0.0)})


def test_nodata_stays_nodata_and_spreads_over_the_blur_footprint(tmp_path: Path) -> None:
    src = write_group_rasters(tmp_path / "src", zero_cols=2)  # first 2 x 60 m columns are 0: Sentinel-2 fill
    region = write_region(src, tmp_path / "region", col_fraction=(0.0, 0.5), shift=draw_shift(ALL))
    ten = bands_of(region[0])[0]["B02"]
    assert np.isnan(ten[:, :12]).all() and np.isfinite(ten[:, 12:]).all()  # shifted 0 is not a value
    wald = bands_of(write_wald_level(region, tmp_path / "wald")[0])[0]["B02"]
    # 20 m pixel j covers 10 m columns 2j, 2j+1; the blur reaches 2 px further: columns 0..6 are spoiled
    assert np.isnan(wald[:, :7]).all() and np.isfinite(wald[:, 7:]).all()


# ---------------------------------------------------------------------------------------------- Wald level
def test_write_wald_level_grid_constant_and_degrade_group(tmp_path: Path) -> None:
    src = write_group_rasters(tmp_path / "src")
    (tmp_path / "const").mkdir()
    const = write_tif(tmp_path / "const" / "S2_10m.tif", {"B02": np.full((144, 144), 1234.5), "B03": np.full((144, 144), 7.0)},
                      like=src[0])
    out = write_wald_level([const], tmp_path / "wald_const")
    data, profile = bands_of(out[0])
    assert profile["transform"].a == 20.0 and profile["transform"].c == ORIGIN[0] and data["B02"].shape == (72, 72)
    np.testing.assert_allclose(data["B02"], 1234.5, rtol=1e-6)
    np.testing.assert_allclose(data["B03"], 7.0, rtol=1e-6)

    region = write_region(src, tmp_path / "region")
    wald = write_wald_level(region, tmp_path / "wald")
    assert open_scene(wald).factors == [6, 3, 1]
    for r, w, res in zip(region, wald, (10, 20, 60), strict=True):
        before, _ = bands_of(r)
        after, profile = bands_of(w)
        assert list(after) == GROUPS[res] and profile["transform"].a == 2 * res and profile["dtype"] == "float32"
        x = torch.from_numpy(np.stack(list(before.values())).astype(np.float64))
        h, wd = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2  # 60 m: 6 columns; whole 2 x 2 blocks only
        expected = degrade_group(x[None, :, :h, :wd], 2)[0].numpy()
        np.testing.assert_allclose(np.stack(list(after.values())), expected, rtol=1e-6)
    assert bands_of(wald[2])[0]["B01"].shape == (12, 3)
    with pytest.raises(ValueError, match="ratio"):
        write_wald_level(region, tmp_path / "bad", ratio=0)


# ---------------------------------------------------------------------------------------------- scoring
def test_score_truth_is_perfect_and_consistent_with_its_wald_level(tmp_path: Path, levels: tuple) -> None:
    _, region, wald = levels
    truth = bands_of(region[1])[0]
    guide = bands_of(wald[0])[0]
    product = {**guide, **{b: v.copy() for b, v in truth.items()}}
    product["B06"][:2, :2] = np.nan
    path = write_tif(tmp_path / "truth_product.tif", product, like=wald[0])
    s = score_product(path, region, wald)
    assert s["bands"] == GROUPS[20] and s["ratio"] == 2  # the copied 20 m guide bands are not scored
    assert s["rmse"] == 0.0 and s["gain_vs_bicubic"] == 1.0 and s["rmse_bicubic"] > 0
    assert s["per_band"]["B05"]["pixels"] == 72 * 18 and s["per_band"]["B06"]["pixels"] == 72 * 18 - 4
    assert 0 <= s["consistency"] < 1e-2  # the Wald level is made with the same operator: float32 rounding only
    assert all(isinstance(v, float) for v in (s["rmse"], s["rmse_bicubic"], s["consistency"], s["gain_vs_bicubic"]))
    assert score_product(path, region, wald, bands=["b5"])["bands"] == ["B05"]
    with pytest.raises(ValueError, match=r"truth of B02.*10 m"):
        score_product(path, region, wald, bands=["B02"])
    with pytest.raises(ValueError, match="ratio=3"):
        score_product(path, region, wald, ratio=3)


def test_score_bicubic_gains_nothing(tmp_path: Path, levels: tuple) -> None:
    _, region, wald = levels
    coarse = bands_of(wald[1])[0]
    up = {b: F.interpolate(torch.from_numpy(v.astype(np.float64))[None, None], scale_factor=2, mode="bicubic",
                           align_corners=False)[0, 0].numpy() for b, v in coarse.items()}
    s = score_product(write_tif(tmp_path / "bicubic.tif", up, like=wald[0]), region, wald)
    assert s["rmse"] > 0 and abs(s["gain_vs_bicubic"]) < 1e-12
    assert all(abs(v["gain_vs_bicubic"]) < 1e-12 for v in s["per_band"].values())


def test_score_consistency_of_an_inconsistent_truth_matches_numpy(tmp_path: Path, levels: tuple) -> None:
    """Inputs made by a plain block mean: the truth is not consistent with the nominal (blurred) operator."""
    _, region, wald = levels
    truth = {b: v.astype(np.float64) for b, v in bands_of(region[1])[0].items()}
    (tmp_path / "boxed").mkdir()
    boxed40 = write_tif(tmp_path / "boxed" / "S2_20m.tif", {b: v.reshape(36, 2, 9, 2).mean((1, 3)) for b, v in truth.items()},
                        like=wald[1])  # on the 40 m grid of the Wald level
    inputs = [wald[0], boxed40]
    product = write_tif(tmp_path / "truth_product.tif", truth, like=wald[0])
    s = score_product(product, region, inputs)
    for b, v in truth.items():
        expected = np.sqrt(np.mean((np_wald(v, 2) - v.reshape(36, 2, 9, 2).mean((1, 3))) ** 2))
        assert s["per_band"][b]["consistency"] > 1.0
        assert s["per_band"][b]["consistency"] == pytest.approx(expected, rel=1e-9)
    assert s["consistency"] == pytest.approx(np.mean([v["consistency"] for v in s["per_band"].values()]), rel=1e-12)


# ---------------------------------------------------------------------------------------------- protocol
# tiny untrained DSen2 models with hand-set statistics and multi-resolution metadata, shared with the product tests


def test_evaluate_runs_the_protocol_and_passes_projection_only_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_group_rasters(tmp_path / "src")
    calls: list[dict] = []
    real = transfer.super_resolve_product

    def spy(model: Any, sources: Any, out_path: Any, **kwargs: Any) -> Any:
        calls.append(dict(kwargs))
        kwargs.pop("projection", None)  # works before and after the product takes it
        return real(model, sources, out_path, **kwargs)

    monkeypatch.setattr(transfer, "super_resolve_product", spy)
    models = [guided(GROUPS[20], [GROUPS[10]], 2, [1]), guided(GROUPS[60], [GROUPS[10], GROUPS[20]], 6, [1, 2])]
    r = evaluate(models, src, tmp_path / "work", seed=5)
    assert "projection" not in calls[0] and calls[0]["dtype"] == "float32"
    assert r["bands"] == GROUPS[20] and r["product_bands"] == ALL and r["projection"] is None
    assert r["shift"] == {b: list(v) for b, v in draw_shift(ALL, seed=5).items()}
    assert r["rmse"] > 0 and r["rmse_bicubic"] > 0 and r["consistency"] >= 0 and len(r["product_report"]) == 2
    assert r == {**r, **score_product(r["product"], r["region"], r["wald"])}
    gain, offset = r["shift"]["B05"]
    np.testing.assert_allclose(bands_of(Path(r["region"][1]))[0]["B05"], bands_of(src[1])[0]["B05"][:, 54:] * gain + offset, rtol=1e-6)
    json.dumps(r)  # plain values

    r2 = evaluate(models[:1], src, tmp_path / "work2", shift=False, projection=True)
    assert calls[1]["projection"] is True and r2["shift"] is None and r2["projection"] is True
    np.testing.assert_array_equal(bands_of(Path(r2["region"][1]))[0]["B05"], bands_of(src[1])[0]["B05"][:, 54:])
    assert r2["rmse_bicubic"] < r["rmse_bicubic"]  # the shift's gains spread the values


def test_main_prints_a_row_and_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    seen: dict = {}
    result = {"rmse": 10.0, "rmse_bicubic": 20.0, "gain_vs_bicubic": 0.5, "consistency": 0.25, "ratio": 2, "seed": 7,
              "shift": {"B05": [1.0, 0.0]}, "projection": False, "ckpts": ["runs/t2/T2.ckpt", "S6.ckpt"]}

    def fake(ckpts: Any, sources: Any, work_dir: Any, **kwargs: Any) -> dict:
        seen.update(ckpts=ckpts, sources=sources, work=work_dir, **kwargs)
        return result

    monkeypatch.setattr(transfer, "evaluate", fake)
    work = tmp_path / "w"
    main(["--ckpt", "T2.ckpt", "--ckpt", "S6.ckpt", "--work", str(work), "--projection", "false", "--seed", "7", "a.tif", "b.tif"])
    assert seen == {"ckpts": ["T2.ckpt", "S6.ckpt"], "sources": ["a.tif", "b.tif"], "work": str(work), "seed": 7, "shift": True,
                    "projection": False, "ratio": 2, "device": None}
    row = capsys.readouterr().out.strip()
    assert row == format_row(result) and row.startswith("| T2.ckpt + S6.ckpt, shift seed 7, projection false")
    assert row.endswith("| 10.00 | 20.00 | 50.0 % | 0.250 |") and row.count("|") == transfer.TABLE_HEADER.splitlines()[0].count("|")
    assert json.loads((work / "transfer.json").read_text()) == result
    main(["--ckpt", "T2.ckpt", "--work", str(work), "--no-shift", "a.tif"])
    assert seen["shift"] is False and seen["projection"] is None
    with pytest.raises(SystemExit):
        main(["--ckpt", "T2.ckpt", "--work", str(work), "--projection", "maybe", "a.tif"])


# ---------------------------------------------------------------------------------------------- real crop
@pytest.mark.skipif(not all(p.is_file() for p in REAL_FILES), reason="shared Sentinel-2 crop not available")
def test_real_crop_right_quarter_and_its_wald_level(tmp_path: Path) -> None:
    region = write_region(REAL_FILES, tmp_path / "region", shift=draw_shift(ALL))
    scene = open_scene(region)
    assert (scene.height, scene.width) == (100, 25)
    assert [bands_of(p)[0][b].shape for p, b in zip(region, ("B02", "B05", "B01"), strict=True)] == [(600, 150), (300, 75), (100, 25)]
    with rasterio.open(REAL_FILES[0]) as ds, rasterio.open(region[0]) as out:
        assert out.transform == ds.transform @ Affine.translation(450, 0) and out.crs == ds.crs
        assert list(out.descriptions) == list(ds.descriptions)
    wald = write_wald_level(region, tmp_path / "wald")
    shapes = [bands_of(p)[1] for p in wald]
    assert [(s["height"], s["width"], s["transform"].a) for s in shapes] == [(300, 75, 20.0), (150, 37, 40.0), (50, 12, 120.0)]
    assert open_scene(wald).factors == [6, 3, 1]
