"""Archives: many products per call, skip and resume, the table, bad products, and two gloo processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from aerogan.prediction.archive import expand_products
from aerogan.prediction.product import main, super_resolve_product
from tests.data.multires import write_group_rasters, write_safe, write_stac_item
from tests.test_prediction_product import _checkpoint, s6, t2

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ckpt")
    return [_checkpoint(t2(), folder / "t2.ckpt"), _checkpoint(s6(), folder / "s6.ckpt")]


def _args(ckpts: list[Path], out: Path, *products: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [a for c in ckpts for a in ("--ckpt", str(c))] + ["--out-dir", str(out), "--no-progress", *extra, *map(str, products)]


def _pixels(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def test_two_products_written_then_skipped_with_the_table(tmp_path: Path, ckpts: list[Path]) -> None:
    p1, p2 = tmp_path / "tileA", tmp_path / "tileB"
    write_group_rasters(p1, seed=1)
    write_group_rasters(p2, seed=2)
    out = tmp_path / "out"
    records = main(_args(ckpts, out, p1, p2))
    assert [(r.product, r.status) for r in records] == [("tileA", "written"), ("tileB", "written")]
    files = {p.name for p in out.iterdir()}
    assert files == {"tileA_SR.tif", "tileB_SR.tif", "products.json", "products.csv", "products.md"}
    # each output is the one-product call's
    one = super_resolve_product([str(c) for c in ckpts], sorted(str(p) for p in p1.iterdir()), tmp_path / "one.tif")
    np.testing.assert_array_equal(_pixels(out / "tileA_SR.tif"), _pixels(one.out_path))
    table = json.loads((out / "products.json").read_text())
    assert table["counts"] == {"written": 2, "skipped": 0, "failed": 0}
    row = table["products"][0]
    assert row["bands"] == one.band_names and row["seconds"] > 0 and row["source"] == str(p1)
    assert set(row["consistency_rmse"]) == {"['B05', 'B06', 'B07', 'B8A', 'B11', 'B12'] x2", "['B01', 'B09'] x6"}
    assert "tileA" in (out / "products.csv").read_text()
    # again: both complete, nothing rewritten; the table keeps what was done
    mtimes = {p: (out / p).stat().st_mtime_ns for p in ("tileA_SR.tif", "tileB_SR.tif")}
    again = main(_args(ckpts, out, p1, p2))
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert {p: (out / p).stat().st_mtime_ns for p in mtimes} == mtimes
    table = json.loads((out / "products.json").read_text())
    assert table["counts"]["skipped"] == 2 and table["products"][0]["seconds"] == row["seconds"]
    # other models (S6 alone): not the same outputs, made again
    remade = main(_args(ckpts[1:], out, p1))
    assert [r.status for r in remade] == ["written"]
    with rasterio.open(out / "tileA_SR.tif") as ds:
        assert ds.count == 6  # 10 m bands + B01, B09
    # --force remakes a complete one
    assert [r.status for r in main(_args(ckpts[1:], out, p1, extra=("--force",)))] == ["written"]


def test_killed_archive_resumes(tmp_path: Path, ckpts: list[Path]) -> None:
    products = []
    for i in range(3):
        products.append(tmp_path / f"p{i}")
        write_group_rasters(products[-1], size60=48, seed=i)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "aerogan.prediction.product", *_args(ckpts, out, *products)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 240
    while not (out / "p0_SR.tif").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "p0_SR.tif").exists() and not (out / "p2_SR.tif").exists(), "the run was not killed in the middle"
    first = _pixels(out / "p0_SR.tif")
    records = main(_args(ckpts, out, *products))
    statuses = {r.product: r.status for r in records}
    assert statuses["p0"] == "skipped" and statuses["p2"] == "written"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".p")) == []  # staging left by the kill is gone
    np.testing.assert_array_equal(_pixels(out / "p0_SR.tif"), first)
    for p in products:
        with rasterio.open(out / f"{p.name}_SR.tif") as ds:
            assert ds.count == 12


def test_products_of_every_kind_and_their_names(tmp_path: Path) -> None:
    write_group_rasters(tmp_path / "folder_product")
    safe = write_safe(tmp_path, level="L2A", baseline="05.09", as_zip=True)
    item = write_stac_item(tmp_path / "stac")
    data = json.loads(Path(item).read_text())
    second = {**data, "id": "second-item"}
    collection = tmp_path / "stac" / "items.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": [data, second]}))
    products = expand_products([tmp_path / "folder_product", safe, item], tmp_path / "scratch")
    names = [p.name for p in products]
    assert names[0] == "folder_product" and len(products[0].sources) == 3
    assert Path(safe).name == names[1] + ".SAFE.zip" or Path(safe).name == names[1] + ".zip"
    assert names[2] == data["id"] and products[2].sources == [str(item)]
    with pytest.raises(ValueError, match="same name"):  # the Item and the collection's first Item share an id
        expand_products([item, collection], tmp_path / "scratch")
    items = expand_products([collection], tmp_path / "scratch")
    assert [p.name for p in items] == [data["id"], "second-item"]
    hrefs = [a["href"] for a in json.loads(Path(items[1].sources[0]).read_text())["assets"].values()]
    assert all(os.path.isabs(h) and Path(h).is_file() for h in hrefs)  # relative hrefs resolved to the collection
    with pytest.raises(ValueError, match="a single file is not a product"):
        expand_products([tmp_path / "folder_product" / "S2_10m.tif"], tmp_path / "scratch")
    with pytest.raises(SystemExit):  # archive options without --out-dir are refused, not ignored
        main(["--ckpt", "t2.ckpt", "--out", str(tmp_path / "x.tif"), "--devices", "2", str(tmp_path / "folder_product")])
    with pytest.raises(FileNotFoundError, match="no such product"):
        expand_products([tmp_path / "missing"], tmp_path / "scratch")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="without group rasters"):
        expand_products([tmp_path / "empty"], tmp_path / "scratch")


def test_a_bad_product_is_recorded_and_the_others_are_made(tmp_path: Path, ckpts: list[Path]) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    write_group_rasters(good)
    paths = write_group_rasters(bad)
    paths[1].unlink()  # no 20 m bands: T2 cannot run
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"1 of 2 products failed: \['bad'\]"):
        main(_args(ckpts, out, bad, good))
    table = json.loads((out / "products.json").read_text())
    rows = {r["product"]: r for r in table["products"]}
    assert rows["bad"]["status"] == "failed" and "B05" in rows["bad"]["error"]
    assert rows["good"]["status"] == "written" and (out / "good_SR.tif").is_file() and not (out / "bad_SR.tif").exists()


@pytest.mark.ddp
@pytest.mark.parametrize("launcher", ["fabric", "torchrun"])
def test_two_gloo_processes_write_the_same_bytes(tmp_path: Path, ckpts: list[Path], launcher: str) -> None:
    """Whole products per rank (two products, Fabric's launcher) and one product split over both ranks by block
    columns (torchrun): the bytes of one process."""
    if launcher == "fabric":
        products = [tmp_path / "a", tmp_path / "b"]
        for i, p in enumerate(products):
            write_group_rasters(p, seed=i)
        extra: tuple[str, ...] = ()
    else:
        products = [tmp_path / "wide"]
        write_group_rasters(products[0], size60=160, zero_cols=3)  # 960 px: two block columns of 480
        extra = ("--block-width", "480", "--tile", "192")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    one = tmp_path / "one"
    assert main(_args(ckpts, one, *products, extra=extra))
    two = tmp_path / "two"
    args = _args(ckpts, two, *products, extra=extra)
    if launcher == "fabric":
        cmd = [sys.executable, "-m", "aerogan.prediction.product", *args, "--devices", "2", "--accelerator", "cpu"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "aerogan.prediction.product", *args, "--accelerator", "cpu"]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for p in products:
        name = f"{p.name}_SR.tif"
        assert (two / name).read_bytes() == (one / name).read_bytes()
    t1 = json.loads((one / "products.json").read_text())["products"]
    t2_ = json.loads((two / "products.json").read_text())["products"]
    assert [r["product"] for r in t2_] == [p.name for p in products] and all(r["status"] == "written" for r in t2_)
    for a, b in zip(t1, t2_, strict=True):  # the consistency of a split product merges its parts' states
        for label, rmse in a["consistency_rmse"].items():
            np.testing.assert_allclose(list(b["consistency_rmse"][label].values()), list(rmse.values()), rtol=1e-9)
    assert not (two / ".parts").exists()


def test_shards_of_a_job_array_split_the_products(tmp_path: Path, ckpts: list[Path]) -> None:
    products = [tmp_path / f"q{i}" for i in range(3)]
    for i, p in enumerate(products):
        write_group_rasters(p, size60=12, seed=i)
    out = tmp_path / "out"
    first = main(_args(ckpts[:1], out, *products, extra=("--shard", "0/2")))
    second = main(_args(ckpts[:1], out, *products, extra=("--shard", "1/2")))
    assert [r.product for r in first] == ["q0", "q2"] and [r.product for r in second] == ["q1"]
    assert {p.name for p in out.iterdir()} >= {"q0_SR.tif", "q1_SR.tif", "q2_SR.tif", "products_0of2.json", "products_1of2.csv"}
    assert not (out / "products.json").exists()
    for bad in ("2/2", "a/b", "1"):
        with pytest.raises(ValueError, match="--shard"):
            main(_args(ckpts[:1], out, *products, extra=("--shard", bad)))
