"""Domain-shift guard: band summaries of scenes and arrays, their comparison, and the single warning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from aerogan.prediction.domain_shift import (
    DomainShiftWarning,
    check_scene,
    compare_summaries,
    warn_domain_shift,
)
from datamodules import band_summary
from datamodules.band_catalog import BandGroup, MultiResolutionScene, open_catalog
from datamodules.band_summary import BandSummary, summarize_arrays, summarize_scene
from tests.data.multires import GROUPS, RES, scene_dn, write_band_rasters, write_group_rasters

PCT = [0.1, 1.0, 50.0, 99.0, 99.9]
ALL_GROUPS = {10: GROUPS[10], 20: GROUPS[20], 60: GROUPS[60]}


def open_scene(paths: list[Path]) -> MultiResolutionScene:
    catalog = open_catalog(paths)
    return MultiResolutionScene([BandGroup([catalog[b] for b in GROUPS[r]], f"{r} m") for r in (10, 20, 60)])


def numpy_summary(values: np.ndarray) -> list[float]:
    v = values.astype(np.float64).ravel()
    return [v.mean(), v.std(), *np.percentile(v, PCT)]


def as_list(s: BandSummary) -> list[float]:
    return [s.mean, s.std, s.p001, s.p01, s.p50, s.p99, s.p999]


# ---------------------------------------------------------------------------------------------- scenes
def test_scene_summary_equals_numpy_on_valid_pixels(tmp_path: Path) -> None:
    scene = open_scene(write_group_rasters(tmp_path, size60=12, seed=1, zero_cols=2))
    got = summarize_scene(scene)
    assert set(got) == {b for names in GROUPS.values() for b in names}
    dn = scene_dn(12, 1, zero_cols=2)
    for band, s in got.items():
        valid = dn[band][:, 2 * 6 // (RES[band] // 10) :]  # the zero-filled edge columns are nodata
        assert valid.min() > 0 and s.count == valid.size
        np.testing.assert_allclose(as_list(s), numpy_summary(valid), rtol=1e-9, atol=1e-6)
        assert s.p001 > 0  # no fill value reached the percentiles


def test_row_subsampling_stays_close_to_the_full_summary(tmp_path: Path) -> None:
    scene = open_scene(write_group_rasters(tmp_path, size60=48, seed=2))
    full = summarize_scene(scene, groups=[1])
    sub = summarize_scene(scene, groups=[1], max_rows=12)
    for band in GROUPS[20]:
        f, s = full[band], sub[band]
        assert f.count == 48 * 48 * 9 and s.count == 12 * 48 * 9  # 12 of the 48 coarse rows, 3 x 3 pixels each
        assert abs(s.mean - f.mean) < 0.15 * f.std
        assert abs(s.std - f.std) < 0.2 * f.std
        assert abs(s.p50 - f.p50) < 0.25 * f.std
        assert f.p001 - 0.5 * f.std < s.p01 and s.p99 < f.p999 + 0.5 * f.std


def test_percentile_samples_are_capped_deterministically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scene = open_scene(write_group_rasters(tmp_path, size60=12, seed=8))
    full = summarize_scene(scene, groups=[0])
    monkeypatch.setattr(band_summary, "MAX_SAMPLES", 1000)  # 72 x 72 = 5184 pixels per 10 m band: 1 in 6 kept
    capped = summarize_scene(scene, groups=[0])
    assert capped == summarize_scene(scene, groups=[0])  # deterministic
    for band in GROUPS[10]:
        f, c = full[band], capped[band]
        # moments use every pixel read, the percentiles ~864 values (tolerances: a few sampling standard errors)
        assert c.count == f.count == 72 * 72 and c.mean == pytest.approx(f.mean) and c.std == pytest.approx(f.std)
        assert (c.p001, c.p01, c.p50, c.p99, c.p999) != (f.p001, f.p01, f.p50, f.p99, f.p999)
        assert abs(c.p50 - f.p50) < 0.15 * f.std and abs(c.p99 - f.p99) < 0.3 * f.std and abs(c.p01 - f.p01) < 0.3 * f.std


def test_boxes_restrict_the_pixels(tmp_path: Path) -> None:
    dn = scene_dn(12, 3)
    dn["B05"][6:18, 9:27] = 1234  # coarse rows 2..6, cols 3..9 of the 20 m bands
    dn["B06"][6:18, 9:27] = 2345
    scene = open_scene(write_band_rasters(tmp_path, dn, ALL_GROUPS))
    got = summarize_scene(scene, groups=[1], boxes=[(2, 3, 6, 9)])
    assert set(got) == set(GROUPS[20])
    assert as_list(got["B05"]) == pytest.approx([1234.0, 0.0, 1234.0, 1234.0, 1234.0, 1234.0, 1234.0])
    assert got["B06"].mean == pytest.approx(2345.0) and got["B06"].p999 == pytest.approx(2345.0)
    assert got["B05"].count == 4 * 6 * 9
    # two boxes pool their pixels; the 10 m bands match NumPy on the same windows
    boxes = [(0, 0, 2, 12), (5, 4, 9, 10)]
    two = summarize_scene(scene, groups=[0], boxes=boxes)
    b02 = np.concatenate([dn["B02"][r0 * 6 : r1 * 6, c0 * 6 : c1 * 6].ravel() for r0, c0, r1, c1 in boxes])
    assert two["B02"].count == b02.size
    np.testing.assert_allclose(as_list(two["B02"]), numpy_summary(b02), rtol=1e-9)
    with pytest.raises(ValueError, match="not a .* box inside"):
        summarize_scene(scene, boxes=[(0, 0, 13, 4)])


def test_a_box_of_nodata_only_raises_naming_bands_and_box(tmp_path: Path) -> None:
    scene = open_scene(write_group_rasters(tmp_path, size60=8, seed=4, zero_cols=3))
    with pytest.raises(ValueError, match=r"no valid pixel of bands \['B01', 'B09'\] in boxes \[\(0, 0, 8, 3\)\]"):
        summarize_scene(scene, groups=[2], boxes=[(0, 0, 8, 3)])


# ---------------------------------------------------------------------------------------------- arrays, compare
def test_summarize_arrays_ignores_nan() -> None:
    a = np.random.default_rng(5).normal(100.0, 10.0, (40, 50))
    b = a.copy()
    b[3:7, 10:20] = np.nan
    got = summarize_arrays({"x": a, "y": b})
    np.testing.assert_allclose(as_list(got["x"]), numpy_summary(a), rtol=1e-9)
    np.testing.assert_allclose(as_list(got["y"]), numpy_summary(b[np.isfinite(b)]), rtol=1e-9)
    assert (got["x"].count, got["y"].count) == (2000, 2000 - 40)
    with pytest.raises(ValueError, match="band z: no finite value"):
        summarize_arrays({"z": np.full((3, 3), np.nan)})


def training() -> tuple[dict[str, np.ndarray], dict[str, BandSummary]]:
    dn = scene_dn(12, 6)
    arrays = {b: dn[b].astype(np.float64) for b in GROUPS[20]}
    return arrays, summarize_arrays(arrays)


def test_identical_summaries_give_no_message() -> None:
    _, train = training()
    assert compare_summaries(train, dict(train)) == []


def test_gain_and_offset_are_reported_per_band_with_values() -> None:
    arrays, train = training()
    bright = summarize_arrays({**arrays, "B05": arrays["B05"] * 1.5})
    msgs = compare_summaries(train, bright)
    assert len(msgs) == 1 and msgs[0].startswith("B05: ") and "p99" in msgs[0]
    assert f"p99 {bright['B05'].p99:.1f} above the training p99.9 {train['B05'].p999:.1f}" in msgs[0]

    dark = summarize_arrays({**arrays, "B06": arrays["B06"] * 0.6})
    msgs = compare_summaries(train, dark)
    assert len(msgs) == 1 and msgs[0].startswith("B06: ") and ("p1 " in msgs[0] or "mean" in msgs[0])
    assert f"{dark['B06'].p01:.1f} below the training p0.1 {train['B06'].p001:.1f}" in msgs[0]

    t = train["B07"]
    shifted = summarize_arrays({**arrays, "B07": arrays["B07"] + 3.5 * t.std})  # beyond the 3-sigma rule
    msgs = compare_summaries(train, shifted)
    assert len(msgs) == 1 and msgs[0].startswith("B07: ") and "mean" in msgs[0]
    assert f"mean {shifted['B07'].mean:.1f}" in msgs[0] and f"training mean {t.mean:.1f}" in msgs[0]
    assert all("mean" not in m for m in compare_summaries(train, shifted, mean_sigmas=5.0))
    # bands in only one of the two are ignored
    assert compare_summaries({"B07": t}, {"B05": bright["B05"]}) == []
    assert compare_summaries({}, bright) == []


def test_warning_is_raised_once_listing_every_band() -> None:
    msgs = ["B05: p99 2871.0 above the training p99.9 2410.5", "B8A: p1 12.0 below the training p0.1 150.0"]
    with pytest.warns(DomainShiftWarning) as records:
        warn_domain_shift(msgs, "S2_T33UUB.SAFE", "t2.ckpt")
    assert len([r for r in records if issubclass(r.category, DomainShiftWarning)]) == 1
    text = str(records[0].message)
    assert all(m in text for m in msgs) and "S2_T33UUB.SAFE" in text and "t2.ckpt" in text
    assert "radiometric offsets" in text and "aerogan sharpen --init CKPT" in text and "consistency projection" in text
    with warnings.catch_warnings(record=True) as none:
        warnings.simplefilter("always")
        warn_domain_shift([], "x", "y")
    assert none == []


def test_round_trip_through_dict_and_json() -> None:
    _, train = training()
    s = train["B11"]
    d = json.loads(json.dumps(s.to_dict()))
    assert BandSummary.from_dict(d) == s
    assert type(s.to_dict()["mean"]) is float and type(s.to_dict()["count"]) is int
    with pytest.raises(ValueError, match="lacks"):
        BandSummary.from_dict({"mean": 1.0})


# ---------------------------------------------------------------------------------------------- end to end
def test_check_scene_warns_once_for_the_shifted_band(tmp_path: Path) -> None:
    train_scene = open_scene(write_group_rasters(tmp_path / "a", size60=8, seed=7))
    stored = json.loads(json.dumps({b: s.to_dict() for b, s in summarize_scene(train_scene, groups=[1]).items()}))
    dn = scene_dn(8, 7)
    dn["B12"] = (dn["B12"].astype(np.float64) * 1.5).round().astype(np.uint16)
    scene = open_scene(write_band_rasters(tmp_path / "b", dn, ALL_GROUPS))
    with pytest.warns(DomainShiftWarning) as records:
        msgs = check_scene(stored, scene, None, "scene b", "t2")
    assert len(records) == 1 and len(msgs) == 1 and msgs[0].startswith("B12: ") and "p99" in msgs[0]
    with warnings.catch_warnings(record=True) as none:
        warnings.simplefilter("always")
        assert check_scene(stored, train_scene, None, "scene a", "t2") == []
        assert check_scene(stored, scene, [0, 2], "scene b", "t2") == []  # no trained band there: nothing read
    assert none == []
