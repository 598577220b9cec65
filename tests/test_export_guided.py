"""Guided export: T2 and S6 to TorchScript and ONNX, and the standalone product script without the package.

Tolerance: the fixtures hold reflectance x 10000 (``data_range`` 10000), so "within 1e-4 in reflectance"
is a maximum absolute difference of 1e-4 * 10000 = 1 digital number between the standalone product and
``super_resolve_product(..., projection=False)``; the measured difference is printed (``pytest -s``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from aerogan import export_runtime as rt
from aerogan.export import export_metadata, export_onnx, main
from aerogan.prediction.product import super_resolve_product
from tests.data.multires import GROUPS, scene_dn, wald_dn, write_band_rasters, write_group_rasters
from tests.test_prediction_product import ALL_ORDER, MEAN, T2_ORDER, _checkpoint, guided, s6, t2

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

DATA_RANGE = 10000.0  # the fixtures' reflectance scale (model metadata data_range)
TOL = 1e-4 * DATA_RANGE  # 1e-4 in reflectance, in digital numbers

# Runs a script with aerogan, torch, lightning and datamodules impossible to import (a meta-path blocker ahead
# of every finder, the editable install's included), then checks that none of them was loaded.
BLOCKED_RUN = """
import runpy, sys
BLOCKED = {"aerogan", "torch", "lightning", "datamodules"}
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is blocked in this test", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
script, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    leaked = sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED)
    if leaked:
        print("LEAKED", leaked, file=sys.stderr)
        sys.exit(99)
"""


def run_blocked(script: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED_RUN, str(script), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, check=False, timeout=300)


def bands(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with rasterio.open(path) as ds:
        data = {d: ds.read(i + 1) for i, d in enumerate(ds.descriptions)}
        return data, {"names": list(ds.descriptions), "transform": ds.transform, "crs": ds.crs, "nodata": ds.nodata,
                      "dtype": ds.dtypes[0], "shape": (ds.count, ds.height, ds.width)}


def max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: list[str]) -> float:
    return max(float(np.abs(a[n].astype(np.float64) - b[n].astype(np.float64)).max()) for n in names)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """T2 and S6 checkpoints exported by ``aerogan export`` (both formats) into one folder."""
    root = tmp_path_factory.mktemp("guided_export")
    out = root / "exported"
    for name, model in (("t2", t2()), ("s6", s6())):
        main(["--ckpt_path", str(_checkpoint(model, root / f"{name}.ckpt")), "--out", str(out), "--example_size", "8"])
    return out


def onnx_meta(path: Path) -> dict:
    return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}


def ts_load(path: Path) -> tuple[torch.jit.ScriptModule, dict]:
    files = {"aerogan.json": ""}
    module = torch.jit.load(str(path), _extra_files=files)
    return module, json.loads(files["aerogan.json"])


# ---------------------------------------------------------------------------------------------- export
def test_guided_export_names_inputs_and_carries_metadata(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == [
        "export_runtime.py", "s6.onnx", "s6.torchscript.pt", "t2.onnx", "t2.torchscript.pt"]
    for name, targets, guides, ratios, factors in (("t2", GROUPS[20], [GROUPS[10]], [1], [2]),
                                                   ("s6", GROUPS[60], [GROUPS[10], GROUPS[20]], [1, 2], [6, 3])):
        session = ort.InferenceSession(str(exported / f"{name}.onnx"))
        inputs = session.get_inputs()
        assert [i.name for i in inputs] == ["target"] + [f"guide{k}" for k in range(len(guides))]
        assert inputs[0].shape == ["batch", len(targets), "height", "width"]
        for i, g, f in zip(inputs[1:], guides, factors, strict=True):  # guide sides tied to the target's
            assert i.shape == ["batch", len(g), f"{f}*height", f"{f}*width"]
        assert [o.name for o in session.get_outputs()] == ["sr"]
        meta = onnx_meta(exported / f"{name}.onnx")
        _, ts_meta = ts_load(exported / f"{name}.torchscript.pt")
        assert ts_meta == meta
        assert meta["guided"] is True and meta["scale"] == (2 if name == "t2" else 6)
        assert meta["target_band_names"] == targets and meta["guide_band_names"] == guides
        assert meta["guide_ratios"] == ratios and meta["guide_factors"] == factors
        assert meta["input_names"] == [i.name for i in inputs] and meta["output_names"] == ["sr"]
        assert [s["bands"] for s in meta["inputs"]] == [targets, *guides]
        assert [s["pixels_per_target_pixel"] for s in meta["inputs"]] == [1, *factors]
        assert meta["guide_mean"] == [[MEAN] * len(g) for g in guides] and meta["input_mean"] == [MEAN] * len(targets)
        assert meta["receptive_radius"] >= 1 and "NaN" in meta["nodata"]
        assert meta["source_checkpoint"].endswith(f"{name}.ckpt")
    assert (exported / "export_runtime.py").read_text() == Path(rt.__file__).read_text()


def test_exported_graphs_equal_the_model_with_nodata_filled(exported: Path) -> None:
    """Another batch and size than the tracing example; NaN pixels are filled with the band means as the package does."""
    model = s6()
    gen = torch.Generator().manual_seed(3)
    target = MEAN + 1000 * torch.randn(2, 2, 5, 7, generator=gen)
    g10 = MEAN + 1000 * torch.randn(2, 4, 30, 42, generator=gen)
    g20 = MEAN + 1000 * torch.randn(2, 6, 15, 21, generator=gen)
    target[0, :, 1, 2] = float("nan")  # a nodata pixel: every band NaN
    g10[1, :, 4:6, 7] = float("nan")
    with torch.no_grad():
        filled = model.fill_invalid(target, torch.isfinite(target).all(1))
        g10_filled = torch.where(torch.isfinite(g10), g10, model.guide_norms[0].mean.view(1, -1, 1, 1))
        expected = model.super_resolve(filled, (g10_filled, g20)).numpy()
    session = ort.InferenceSession(str(exported / "s6.onnx"))
    (got,) = session.run(None, {"target": target.numpy(), "guide0": g10.numpy(), "guide1": g20.numpy()})
    assert got.shape == (2, 2, 30, 42) and np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    module, _ = ts_load(exported / "s6.torchscript.pt")
    with torch.no_grad():
        traced = module(target, g10, g20).numpy()
    np.testing.assert_allclose(traced, expected, rtol=0, atol=TOL)
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):  # the guide sides are tied to the target's
        session.run(None, {"target": target.numpy(), "guide0": g10[..., :-1].numpy(), "guide1": g20.numpy()})


def test_guided_export_refuses_models_without_band_names(tmp_path: Path) -> None:
    model = t2()
    del model.metadata["guide_band_names"]
    with pytest.raises(ValueError, match=r"lacks \['guide_band_names'\]"):
        export_metadata(model)
    with pytest.raises(ValueError, match=r"lacks \['guide_band_names'\]"):
        export_onnx(model, tmp_path / "never.onnx")
    assert not (tmp_path / "never.onnx").exists()
    wrong = t2()
    wrong.metadata["guide_band_names"] = [GROUPS[10][:3]]
    with pytest.raises(ValueError, match=r"guide group 0 \['B02', 'B03', 'B04'\] has no matching band statistics"):
        export_metadata(wrong)


# ---------------------------------------------------------------------------------------------- standalone product
def test_standalone_t2_s6_product_without_the_package(exported: Path, tmp_path: Path) -> None:
    """The exported pair, run by the copied script where aerogan and torch cannot be imported, gives the package's product."""
    paths = write_group_rasters(tmp_path / "in")
    deploy = tmp_path / "deploy"  # what a user copies: the two ONNX files and the script
    deploy.mkdir()
    for f in ("t2.onnx", "s6.onnx", "export_runtime.py"):
        shutil.copy(exported / f, deploy / f)
    script = deploy / "export_runtime.py"
    # the blocker works: the package and torch are not importable under it
    probe = tmp_path / "probe.py"
    probe.write_text("import aerogan\n")
    assert "aerogan is blocked" in run_blocked(probe, cwd=deploy).stderr
    probe.write_text("import torch\n")
    assert "torch is blocked" in run_blocked(probe, cwd=deploy).stderr

    ref_path = tmp_path / "package.tif"
    super_resolve_product([t2(), s6()], paths, ref_path, projection=False, dtype="float32")
    ref, ref_meta = bands(ref_path)
    sr = GROUPS[20] + GROUPS[60]
    for tile in ("0", "48"):  # whole scene, and 48 px tiles (8 coarse px: 3 x 3 tiles with margins)
        out = tmp_path / f"standalone_{tile}.tif"
        proc = run_blocked(script, "--model", "t2.onnx", "--model", "s6.onnx", "--out", out, "--dtype", "float32",
                           "--tile", tile, *paths, cwd=deploy)
        assert proc.returncode == 0, proc.stderr
        assert "12 bands" in proc.stdout
        got, meta = bands(out)
        assert meta == ref_meta and meta["names"] == ALL_ORDER and meta["shape"] == (12, 144, 144)
        for b in GROUPS[10]:  # the finest bands are copied unchanged
            np.testing.assert_array_equal(got[b], ref[b])
        diff = max_diff(got, ref, sr)
        print(f"standalone (tile {tile}) vs package, T2 + S6 float32: max |diff| = {diff:.3g} DN = {diff / DATA_RANGE:.3g} reflectance")
        assert diff <= TOL
    # the default dtype: the input's (uint16), rounded and clipped as the package does
    out = tmp_path / "standalone_uint16.tif"
    proc = run_blocked(script, "--model", "t2.onnx", "--model", "s6.onnx", "--out", out, *paths, cwd=deploy)
    assert proc.returncode == 0, proc.stderr
    super_resolve_product([t2(), s6()], paths, tmp_path / "package_uint16.tif", projection=False)
    got, meta = bands(out)
    ref16, meta16 = bands(tmp_path / "package_uint16.tif")
    assert meta == meta16 and meta["dtype"] == "uint16"
    assert max_diff(got, ref16, sr) <= 1  # rounding may flip where the float values differ by float noise


def test_standalone_nodata_and_reduced_resolution_match_the_package(exported: Path, tmp_path: Path) -> None:
    dn = scene_dn(24, zero_cols=2)  # the first 12 columns at 10 m are 0 in every band
    for b in GROUPS[20]:
        dn[b][30:34, 40:44] = 0  # a 20 m hole
    for b in GROUPS[10]:
        dn[b][100:103, 21:23] = 0  # a 10 m hole inside 20 m pixels
    cases = {"holes": write_band_rasters(tmp_path / "holes", dn, {10: GROUPS[10], 20: GROUPS[20]}),
             # Wald: a x2 model one level down (20 m guide + 40 m bands give 20 m bands)
             "wald": write_band_rasters(tmp_path / "wald", wald_dn(scene_dn(24), 2), {20: GROUPS[10], 40: GROUPS[20]})}
    model = rt.load_onnx(exported / "t2.onnx")
    for name, paths in cases.items():
        super_resolve_product(t2(), paths, tmp_path / f"{name}_package.tif", projection=False, dtype="float32")
        rt.write_product([model], paths, tmp_path / f"{name}.tif", dtype="float32", tile=40)
        ref, ref_meta = bands(tmp_path / f"{name}_package.tif")
        got, meta = bands(tmp_path / f"{name}.tif")
        assert meta == ref_meta and meta["names"] == T2_ORDER
        invalid = np.stack([ref[b] == 0 for b in T2_ORDER]).all(0)
        np.testing.assert_array_equal(np.stack([got[b] == 0 for b in T2_ORDER]).all(0), invalid)
        assert invalid.any() == (name == "holes")
        assert max_diff(got, ref, GROUPS[20]) <= TOL
    assert meta["transform"].a == 20.0 and meta["shape"] == (10, 72, 72)


def test_torchscript_pair_reproduces_the_product(exported: Path, tmp_path: Path) -> None:
    """The same script with the TorchScript files plugged in as models."""
    paths = write_group_rasters(tmp_path / "in")
    models = []
    for name in ("t2", "s6"):
        module, meta = ts_load(exported / f"{name}.torchscript.pt")

        def run(target: np.ndarray, guides: list[np.ndarray], module: torch.jit.ScriptModule = module) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(target), *map(torch.from_numpy, guides)).numpy()

        models.append(rt.ExportedModel(meta, run, f"{name}.torchscript.pt"))
    names = rt.write_product(models, paths, tmp_path / "ts.tif", dtype="float32", tile=60)
    super_resolve_product([t2(), s6()], paths, tmp_path / "package.tif", projection=False, dtype="float32")
    ref, ref_meta = bands(tmp_path / "package.tif")
    got, meta = bands(tmp_path / "ts.tif")
    assert names == ALL_ORDER and meta == ref_meta
    diff = max_diff(got, ref, GROUPS[20] + GROUPS[60])
    print(f"TorchScript pair vs package: max |diff| = {diff:.3g} DN = {diff / DATA_RANGE:.3g} reflectance")
    assert diff <= TOL


# ---------------------------------------------------------------------------------------------- errors
def test_standalone_errors_name_the_band_and_the_file(exported: Path, tmp_path: Path) -> None:
    paths = write_group_rasters(tmp_path / "in")
    t2m, s6m = rt.load_onnx(exported / "t2.onnx"), rt.load_onnx(exported / "s6.onnx")
    out = tmp_path / "bad.tif"
    # a missing band group, from the command line in the blocked interpreter: a message, no traceback
    proc = run_blocked(exported / "export_runtime.py", "--model", exported / "s6.onnx", "--out", out, paths[0], paths[2], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "needs band(s) ['B05', 'B06', 'B07', 'B8A', 'B11', 'B12'] (guide group 1)" in proc.stderr and str(paths[0]) in proc.stderr
    # target 4 times coarser than the guide, for a x2 model
    dn = scene_dn(24)
    x4 = write_band_rasters(tmp_path / "x4", {**dn, **wald_dn({b: dn[b] for b in GROUPS[20]}, 2)}, {10: GROUPS[10], 40: GROUPS[20]})
    with pytest.raises(ValueError, match=rf"target bands \['B05'.*at 40 m \({x4[1]}\).*finest guide \['B02'.*at 10 m.*ratio of 4.*ratio of 2"):
        rt.write_product([t2m], x4, out)
    # S6's 20 m guide at 30 m
    odd = write_band_rasters(tmp_path / "odd", {**dn, **wald_dn({b: dn[b] for b in GROUPS[20]}, 3)},
                             {10: GROUPS[10], 30: GROUPS[20], 60: GROUPS[60]})
    with pytest.raises(ValueError, match=rf"guide group 1 \['B05'.*at 30 m \({odd[1]}\).*ratio of 2"):
        rt.write_product([s6m], odd, out)
    # a band without a description
    unnamed = tmp_path / "unnamed" / "S2_20m.tif"
    unnamed.parent.mkdir()
    shutil.copy(paths[1], unnamed)
    with rasterio.open(unnamed, "r+") as ds:
        ds.set_band_description(3, "")
    with pytest.raises(ValueError, match=rf"{unnamed}: band\(s\) \[3\] have no description"):
        rt.write_product([t2m], [paths[0], unnamed], out)
    with pytest.raises(ValueError, match="B05 would be written twice"):
        rt.write_product([t2m, t2m], paths, out)
    with pytest.raises(ValueError, match="not a guided export"):
        rt.ExportedModel({"scale": 2, "target_band_names": GROUPS[20]}, lambda t, g: t, "plain.onnx")
    with pytest.raises(ValueError, match=r"plain.onnx: no aerogan metadata"):
        rt._decode({}, "plain.onnx")
    coarse_out = rt.ExportedModel(export_metadata(guided(GROUPS[60], [GROUPS[20]], 3, [1])), lambda t, g: t, "s3.onnx")
    with pytest.raises(ValueError, match="not the finest grid"):
        rt.write_product([coarse_out], paths, out)

    def lost(target: np.ndarray, guides: list[np.ndarray]) -> np.ndarray:
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="device lost"):  # a failure mid-run leaves no file, not even a temporary
        rt.write_product([rt.ExportedModel(t2m.metadata, lost, "t2.onnx")], paths, out)
    with pytest.raises(ValueError, match=r"junk.onnx: not a readable ONNX model"):
        (tmp_path / "junk.onnx").write_bytes(b"not onnx")
        rt.load_onnx(tmp_path / "junk.onnx")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in", "junk.onnx", "odd", "unnamed", "x4"]
