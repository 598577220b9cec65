"""Archives: many products in one call, one COG each, resumable, with a table of what was done.

``aerogan product --ckpt T2 --ckpt S6 --out-dir OUT P1 P2 ...`` and ``aerogan sharpen --out-dir OUT P1 ...``
take *products*, each one of:

* a Sentinel-2 ``.SAFE`` folder or ``.zip``;
* a STAC Item JSON, or an ItemCollection JSON (``"type": "FeatureCollection"``: one product per Item);
* a folder holding one product's group rasters (``*.tif``, ``*.tiff``, ``*.jp2``: one file per resolution).

Each product's output is ``OUT/<name>_SR.tif``, ``<name>`` from the product (the ``.SAFE``/``.zip`` name
without its suffixes, the STAC Item's id, the folder's name). Outputs are written atomically, so a file
under its final name is complete: a product whose output exists (made by the same models) is skipped, and
an interrupted archive run, started again, does the rest. ``OUT/products.json`` / ``.csv`` / ``.md`` list
every product (written, skipped or failed, with its bands, seconds, consistency per model and warnings),
rewritten after each product. A failed product is recorded and the run goes on; the command then exits
with an error naming the failed products.

Many processes (``torchrun``, SLURM, Lightning's launcher: see :mod:`aerogan.prediction.shards`) share an
archive by rank: whole products per rank, each written by the rank that made it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aerogan.tables import write_outputs

__all__ = ["ArchiveRecord", "Product", "expand_products", "is_complete", "output_path", "products_table", "read_table",
           "run_products"]

#: Raster suffixes a product folder's group rasters may have.
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
#: Stem of the archive table (``products.json``, ``.csv``, ``.md``).
TABLE = "products"
FIELDS = ["product", "status", "output", "bands", "seconds", "consistency_rmse", "warnings", "error", "source"]


@dataclass
class Product:
    """One product of an archive: its name (the output's), what :func:`super_resolve_product` reads, the input."""

    name: str
    sources: list[str]
    origin: str


@dataclass
class ArchiveRecord:
    """What happened to one product: ``written``, ``skipped`` (its output was complete) or ``failed``."""

    product: str
    status: str
    output: str
    source: str
    bands: list[str] = field(default_factory=list)
    seconds: float = 0.0
    consistency_rmse: dict[str, dict[str, float]] = field(default_factory=dict)  # per model label, per band
    sam: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str = ""

    def row(self) -> dict[str, Any]:
        """The CSV row: lists and dicts flattened to short text."""
        out = asdict(self)
        out["bands"] = " ".join(self.bands)
        out["consistency_rmse"] = "; ".join(f"{m}: " + ", ".join(f"{b} {v:.4g}" for b, v in r.items())
                                            for m, r in self.consistency_rmse.items())
        out["warnings"] = " | ".join(self.warnings)
        out["seconds"] = f"{self.seconds:.1f}"
        return out


# ---------------------------------------------------------------------------------------------- products
def _safe_name(path: Path) -> str:
    name = path.name
    for suffix in (".zip", ".SAFE", ".safe"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _items_of_collection(path: Path, data: dict[str, Any], scratch: Path) -> list[Product]:
    """One Item JSON per feature of an ItemCollection, asset hrefs made absolute (relative ones: to the collection)."""
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise ValueError(f"{path}: an ItemCollection with no features (expected a list of STAC Items under 'features')")
    out = []
    for i, item in enumerate(features):
        ident = item.get("id") if isinstance(item, dict) else None
        if not ident or item.get("type") != "Feature":
            raise ValueError(f"{path}: feature {i} is not a STAC Item with an id (expected 'type': 'Feature' and 'id')")
        item = json.loads(json.dumps(item))
        for key, asset in (item.get("assets") or {}).items():
            href = asset.get("href", "") if isinstance(asset, dict) else ""
            if not href:
                raise ValueError(f"{path}: item {ident} asset {key!r} has no href")
            if "://" not in href and not os.path.isabs(href):
                asset["href"] = str((path.parent / href).resolve())
        item["links"] = [lk for lk in item.get("links", []) if lk.get("rel") not in ("self", "root", "parent", "collection")]
        scratch.mkdir(parents=True, exist_ok=True)
        item_path = scratch / f"{ident}.json"
        item_path.write_text(json.dumps(item))
        out.append(Product(str(ident), [str(item_path)], f"{path}#{ident}"))
    return out


def expand_products(inputs: Sequence[str | os.PathLike], scratch: str | os.PathLike) -> list[Product]:
    """The products named by ``inputs`` (see the module docstring), in order; ``scratch``: where the Items of an
    ItemCollection are written. Two products with one name is an error naming both."""
    products: list[Product] = []
    for item in inputs:
        path = Path(item).expanduser()
        suffix = path.suffix.lower()
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such product (expected a .SAFE folder or .zip, a STAC Item or ItemCollection "
                                    "JSON, or a folder of one product's group rasters)")
        if suffix in (".safe", ".zip") or (path.is_dir() and any(path.glob("MTD_MSIL*.xml"))):
            products.append(Product(_safe_name(path), [str(path)], str(path)))
        elif suffix == ".json":
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}: not a readable JSON file ({err})") from err
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "FeatureCollection":
                products.extend(_items_of_collection(path, data, Path(scratch) / path.stem))
            elif kind == "Feature" and data.get("id"):
                products.append(Product(str(data["id"]), [str(path)], str(path)))
            else:
                raise ValueError(f"{path}: neither a STAC Item ('type': 'Feature' with an 'id') nor an ItemCollection "
                                 f"('type': 'FeatureCollection'); got type {kind!r}")
        elif path.is_dir():
            rasters = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
            if not rasters:
                raise ValueError(f"{path}: a folder without group rasters ({', '.join(RASTER_SUFFIXES)}) and not a .SAFE product")
            products.append(Product(path.name, rasters, str(path)))
        else:
            raise ValueError(f"{path}: a single file is not a product; give a .SAFE folder or .zip, a STAC JSON, or the "
                             "folder holding the product's group rasters")
    seen: dict[str, str] = {}
    for p in products:
        if p.name in seen:
            raise ValueError(f"products {seen[p.name]} and {p.origin} have the same name {p.name!r}: their outputs would collide")
        seen[p.name] = p.origin
    return products


def output_path(out_dir: str | os.PathLike, product: Product) -> Path:
    """``<out_dir>/<name>_SR.tif``."""
    return Path(out_dir) / f"{product.name}_SR.tif"


def is_complete(out: Path, models_tag: str | None) -> bool:
    """Whether ``out`` is a finished output made by these models (``models_tag``: their ``aerogan_models`` tag;
    None: any finished output counts)."""
    if not out.is_file():
        return False
    tag = made_by(out)
    return tag is not None and (models_tag is None or tag == models_tag)


def made_by(path: Path) -> str | None:
    """The ``aerogan_models`` tag of a finished output (None when absent or unreadable)."""
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return ds.tags().get("aerogan_models")
    except Exception:  # noqa: BLE001 - any unreadable file counts as not complete
        return None


# ---------------------------------------------------------------------------------------------- the table
def read_table(out_dir: str | os.PathLike) -> dict[str, ArchiveRecord]:
    """The records of an earlier run in ``out_dir`` (empty when none), by product name."""
    path = Path(out_dir) / f"{TABLE}.json"
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text()).get("products", [])
        return {r["product"]: ArchiveRecord(**r) for r in rows}
    except (ValueError, TypeError, KeyError):
        return {}


def products_table(out_dir: str | os.PathLike, records: Sequence[ArchiveRecord], tool: str, suffix: str = "") -> list[Path]:
    """Write ``products<suffix>.json`` / ``.csv`` / ``.md`` (atomically); returns the paths."""
    rows = [r.row() for r in records]
    counts = {s: sum(r.status == s for r in records) for s in ("written", "skipped", "failed")}
    lines = [f"# {tool}: {len(records)} products ({counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed)",
             "", "| Product | Status | Seconds | Consistency RMSE | Warnings |", "|---|---|---|---|---|"]
    lines += [f"| {r['product']} | {r['status']} | {r['seconds']} | {r['consistency_rmse']} | {r['warnings'] or r['error']} |" for r in rows]
    result = {"tool": tool, "counts": counts, "products": [asdict(r) for r in records]}
    return write_outputs(Path(out_dir), TABLE + suffix, result, rows, FIELDS, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------- running
Make = Callable[[Product, Path, Callable[[int, int], None]], ArchiveRecord]


def run_products(
    products: Sequence[Product],
    out_dir: str | os.PathLike,
    make: Make,
    *,
    progress: bool = True,
    on_record: Callable[[ArchiveRecord], None] | None = None,
) -> list[ArchiveRecord]:
    """Make every product in ``out_dir`` with ``make(product, out_path, progress)`` (which products are still to be
    made is the caller's decision: :func:`is_complete`). A product that raises is recorded as ``failed`` and the
    run goes on. Progress bars: the products (overall, with ETA) and the current product's output pixels.
    """
    from tqdm.auto import tqdm

    records: list[ArchiveRecord] = []
    overall = tqdm(total=len(products), desc="products", unit="product", disable=not progress, position=0)
    try:
        for product in products:
            out = output_path(out_dir, product)
            bar = tqdm(total=0, desc=product.name[:40], unit="px", unit_scale=True, leave=False, disable=not progress,
                       position=1)

            def advance(done: int, total: int, bar: Any = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            _remove_stale(out)
            t0 = time.perf_counter()
            try:
                record = make(product, out, advance)
            except Exception as err:  # noqa: BLE001 - an archive goes on past a bad product, recording why
                record = ArchiveRecord(product.name, "failed", str(out), product.origin,
                                       seconds=time.perf_counter() - t0, error=f"{type(err).__name__}: {err}")
            finally:
                bar.close()
            records.append(record)
            if on_record is not None:
                on_record(record)
            overall.update(1)
    finally:
        overall.close()
    return records


def _remove_stale(out: Path) -> None:
    """Staging folders of ``out`` left by a killed run (``atomic_output``'s hidden ``.<name>.*.tmp``): this product
    is this job's alone, so nothing else is writing them."""
    import shutil

    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def merge_records(earlier: dict[str, ArchiveRecord], records: Sequence[ArchiveRecord]) -> list[ArchiveRecord]:
    """This run's records; a skipped product keeps its earlier record (what was done then), marked skipped."""
    out = []
    for r in records:
        before = earlier.get(r.product)
        if r.status == "skipped" and before is not None and before.status in ("written", "skipped"):
            r = ArchiveRecord(**{**asdict(before), "status": "skipped"})
        out.append(r)
    return out
