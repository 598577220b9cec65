"""Multi-resolution scenes: band groups on aligned grids at integer resolution ratios.

A *band group* is a set of bands on one pixel grid (Sentinel-2: B02 B03 B04 B08 at 10 m; B05 B06 B07
B8A B11 B12 at 20 m; B01 B09 at 60 m). Bands are chosen by name, in any order, from one of:

* raster files, one per group (GeoTIFF or COG), whose band descriptions name the bands;
* a Sentinel-2 L1C or L2A product (``.SAFE`` folder or its ``.zip``): the JP2 band files listed in the
  product metadata (``GRANULE/*/IMG_DATA``, ``R10m``/``R20m``/``R60m`` for L2A, each band at its native
  resolution), with the processing-baseline >= 04.00 radiometric offset (``RADIO_ADD_OFFSET`` /
  ``BOA_ADD_OFFSET``, -1000) added to the digital numbers, so every baseline gives the same units;
* a STAC Item JSON whose assets are band files (asset keys or ``eo:bands`` names; relative hrefs
  resolved against the item file; a ``raster:bands`` offset is applied in the file's digital units).

Values are float32 in the files' units plus the offset (Sentinel-2: reflectance x 10000). A pixel is
nodata in a group when every band of the group holds its file's nodata value (default 0, Sentinel-2's
fill value of product edges) or when any band is NaN/inf.

:class:`MultiResolutionScene` checks that the groups share a CRS, that resolution ratios are integers
and that every grid origin lies on the coarsest group's pixel corners, and reads aligned windows.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aerogan.prediction.sources import SceneSource

#: Sentinel-2 bands in the order of the metadata's ``band_id`` (0..12).
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Native resolution (m) of each Sentinel-2 band.
S2_RESOLUTION = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20,
    "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}
#: Default nodata of Sentinel-2 digital numbers (the fill value of product edges).
S2_NODATA = 0.0
#: First processing baseline whose digital numbers carry a radiometric offset.
OFFSET_BASELINE = (4, 0)

_RES_TOL = 1e-6
_ORIGIN_TOL = 1e-3


# ---------------------------------------------------------------------------------------------- files
class BandFile(SceneSource):
    """One raster dataset read by windows with rasterio, reopened lazily in each process.

    Args:
        gdal_path: what rasterio opens (a file, or ``/vsizip/<zip>/<member>``).
        label: the name used in messages.
        cache_path: the real file whose size and time key the statistics cache (the zip for members).
        nodata: nodata value overriding the file's own; when both are unset, ``default_nodata``.
        default_nodata: nodata when neither the argument nor the file sets one.
    """

    def __init__(
        self,
        gdal_path: str,
        label: str,
        cache_path: Path | None = None,
        nodata: float | None = None,
        default_nodata: float | None = S2_NODATA,
    ) -> None:
        import rasterio
        from rasterio.errors import RasterioIOError

        self.gdal_path = gdal_path
        self.name = label
        self.path = cache_path
        try:
            with rasterio.open(gdal_path) as ds:
                self.count, self.height, self.width = ds.count, ds.height, ds.width
                self.dtype = ds.dtypes[0]
                self.crs = ds.crs
                self.transform = ds.transform
                self.descriptions = list(ds.descriptions)
                file_nodata = ds.nodata
        except RasterioIOError as err:
            raise ValueError(f"{label}: not a readable raster: {err}") from err
        if nodata is not None:
            self.nodata: float | None = float(nodata)
        elif file_nodata is not None:
            self.nodata = float(file_nodata)
        else:
            self.nodata = default_nodata
        self._ds: Any = None
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ds"] = None
        state["_pid"] = None
        return state

    def _dataset(self) -> Any:
        import rasterio

        if self._ds is None or self._pid != os.getpid():
            self._ds = rasterio.open(self.gdal_path)
            self._pid = os.getpid()
        return self._ds

    def _read(self, row0: int, col0: int, height: int, width: int, bands: Sequence[int]) -> np.ndarray:
        from rasterio.errors import RasterioIOError
        from rasterio.windows import Window

        try:
            return self._dataset().read([b + 1 for b in bands], window=Window(col0, row0, width, height), out_dtype="float32")
        except RasterioIOError as err:
            raise ValueError(f"{self.name}: failed to read rows {row0}..{row0 + height}, cols {col0}..{col0 + width}: {err}") from err

    def stats_key(self) -> str:
        return f"member={self.gdal_path if self.path is None or self.gdal_path != str(self.path) else ''};nodata={self.nodata!r}"

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size (x, y) in ground units."""
        return abs(self.transform.a), abs(self.transform.e)


@dataclass(frozen=True)
class BandRef:
    """One named band: its file, 0-based index in the file, and the offset added to its values."""

    name: str
    file: BandFile
    index: int
    offset: float = 0.0


# ---------------------------------------------------------------------------------------------- catalogs
def normalize_band_name(name: str) -> str:
    """Canonical band name: ``b8a`` -> ``B8A``, ``B5`` -> ``B05``."""
    n = str(name).strip().upper()
    m = re.fullmatch(r"B(\d)", n)
    return f"B0{m.group(1)}" if m else n


def _add(catalog: dict[str, BandRef], ref: BandRef, where: str) -> None:
    key = normalize_band_name(ref.name)
    if key in catalog:
        raise ValueError(f"{where}: band {ref.name} appears twice ({catalog[key].file.name} and {ref.file.name}); each band name must be unique")
    catalog[key] = ref


def catalog_from_rasters(paths: Sequence[str | os.PathLike], nodata: float | None = None) -> dict[str, BandRef]:
    """Bands of raster files named by their band descriptions (one file per group)."""
    catalog: dict[str, BandRef] = {}
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such raster file (data.sources lists one raster per band group)")
        f = BandFile(str(path), str(path), path, nodata=nodata)
        if not all(f.descriptions):
            raise ValueError(
                f"{path}: band(s) {[i + 1 for i, d in enumerate(f.descriptions) if not d]} have no description; bands are "
                "chosen by name, so every band needs one (e.g. rasterio's set_band_description(1, 'B05'))"
            )
        for i, d in enumerate(f.descriptions):
            _add(catalog, BandRef(str(d), f, i), str(path))
    return catalog


def _baseline(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass
class SafeMetadata:
    """What is read from ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``."""

    level: str
    baseline: tuple[int, int] | None
    offsets: dict[int, float] = field(default_factory=dict)
    image_files: list[str] = field(default_factory=list)


def parse_safe_metadata(xml: bytes, level: str, label: str) -> SafeMetadata:
    """Processing baseline, per-band offsets and listed image files of a SAFE product's main metadata."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise ValueError(f"{label}: not a readable metadata XML: {err}") from err
    meta = SafeMetadata(level=level, baseline=None)
    offset_tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "PROCESSING_BASELINE" and meta.baseline is None:
            meta.baseline = _baseline(el.text)
        elif tag == offset_tag:
            meta.offsets[int(el.get("band_id", "-1"))] = float((el.text or "").strip())
        elif tag == "IMAGE_FILE" and el.text:
            meta.image_files.append(el.text.strip())
    return meta


class _Product:
    """Access to a SAFE folder or zip: member listing, XML bytes, and GDAL paths."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = path.suffix.lower() == ".zip"
        if self.zip:
            try:
                with zipfile.ZipFile(path) as z:
                    self.members = [n for n in z.namelist() if not n.endswith("/")]
            except zipfile.BadZipFile as err:
                raise ValueError(f"{path}: not a readable zip file: {err}") from err
        else:
            self.members = [str(p.relative_to(path)).replace(os.sep, "/") for p in path.rglob("*") if p.is_file()]

    def read(self, member: str) -> bytes:
        if self.zip:
            with zipfile.ZipFile(self.path) as z:
                return z.read(member)
        return (self.path / member).read_bytes()

    def gdal_path(self, member: str) -> str:
        return f"/vsizip/{self.path.resolve()}/{member}" if self.zip else str(self.path / member)

    def label(self, member: str) -> str:
        return f"{self.path}!/{member}" if self.zip else str(self.path / member)


_BAND_FILE = re.compile(r"_(B\d[\dA])(?:_(\d+)m)?\.jp2$", re.IGNORECASE)


def catalog_from_safe(path: str | os.PathLike, nodata: float | None = None, bands: Sequence[str] | None = None) -> dict[str, BandRef]:
    """Bands of a Sentinel-2 L1C/L2A product (``.SAFE`` folder or ``.zip``), each at its native resolution.

    Only the bands in ``bands`` (default: all) are opened. Raises when a product of baseline >= 04.00
    lacks its offsets, or when the product holds no file of a requested band at its native resolution.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such Sentinel-2 product (a .SAFE folder or its .zip)")
    product = _Product(root)
    mtd = [m for m in product.members if re.search(r"(^|/)MTD_MSIL(1C|2A)\.xml$", m)]
    if len(mtd) != 1:
        raise ValueError(
            f"{root}: expected one MTD_MSIL1C.xml or MTD_MSIL2A.xml at the product's top level, found {mtd or 'none'}; "
            "data.sources must name a Sentinel-2 .SAFE folder or its .zip"
        )
    mtd_member = mtd[0]
    prefix = mtd_member[: -len(Path(mtd_member).name)]
    level = "L2A" if mtd_member.endswith("MTD_MSIL2A.xml") else "L1C"
    meta = parse_safe_metadata(product.read(mtd_member), level, product.label(mtd_member))
    offset_tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    needs_offset = meta.baseline is not None and meta.baseline >= OFFSET_BASELINE
    if needs_offset and not meta.offsets:
        raise ValueError(
            f"{product.label(mtd_member)}: processing baseline {meta.baseline[0]:02d}.{meta.baseline[1]:02d} (>= 04.00) "
            f"shifts the digital numbers, but the metadata has no {offset_tag} values; expected "
            f"<{offset_tag} band_id=\"0\">-1000</{offset_tag}> ... for every band"
        )
    # image files: listed in the metadata (paths without extension), else every JP2 under GRANULE/*/IMG_DATA
    listed = [prefix + f + ("" if f.lower().endswith(".jp2") else ".jp2") for f in meta.image_files]
    members = set(product.members)
    missing = [m for m in listed if m not in members]
    if missing:
        raise FileNotFoundError(f"{root}: the metadata lists image files absent from the product, e.g. {missing[0]}")
    files = listed or [m for m in product.members if re.search(r"GRANULE/[^/]+/IMG_DATA/", m) and m.lower().endswith(".jp2")]
    found: dict[str, dict[int, str]] = {}
    for m in files:
        hit = _BAND_FILE.search(m)
        if not hit or "IMG_DATA" not in m:
            continue
        band = normalize_band_name(hit.group(1))
        res = int(hit.group(2)) if hit.group(2) else S2_RESOLUTION.get(band, 0)
        found.setdefault(band, {})[res] = m
    wanted = [normalize_band_name(b) for b in bands] if bands is not None else sorted(found)
    catalog: dict[str, BandRef] = {}
    for band in wanted:
        if band not in S2_RESOLUTION:
            raise ValueError(f"{root}: {band} is not a Sentinel-2 band; expected one of {list(S2_BANDS)}")
        native = S2_RESOLUTION[band]
        if band not in found:
            raise ValueError(f"{root}: the {level} product holds no file of band {band}; available: {sorted(found)}")
        if native not in found[band]:
            folder = f"R{native}m" if level == "L2A" else "IMG_DATA"
            raise ValueError(
                f"{root}: band {band} is needed at its native {native} m, but the product has it only at "
                f"{sorted(found[band])} m (no {folder} file of {band}); the product lacks the {native} m resolution"
            )
        member = found[band][native]
        band_id = S2_BANDS.index(band)
        if needs_offset and band_id not in meta.offsets:
            raise ValueError(f"{product.label(mtd_member)}: no {offset_tag} for band {band} (band_id {band_id}), needed from baseline 04.00")
        offset = meta.offsets.get(band_id, 0.0)
        cache = root if product.zip else root / member  # the file whose size and time key the statistics cache
        f = BandFile(product.gdal_path(member), product.label(member), cache, nodata=nodata)
        catalog[band] = BandRef(band, f, 0, offset)
    return catalog


def catalog_from_stac(path: str | os.PathLike, nodata: float | None = None, bands: Sequence[str] | None = None) -> dict[str, BandRef]:
    """Bands of a STAC Item: assets named by key or by their ``eo:bands`` names (relative hrefs resolved)."""
    import pystac

    item_path = Path(path).expanduser()
    if not item_path.is_file():
        raise FileNotFoundError(f"{item_path}: no such STAC Item JSON")
    try:
        item = pystac.Item.from_file(str(item_path))
    except Exception as err:  # noqa: BLE001 - pystac raises several types for a bad item
        raise ValueError(f"{item_path}: not a readable STAC Item: {err}") from err
    wanted = {normalize_band_name(b) for b in bands} if bands is not None else None
    entries: dict[str, tuple[str, int, float, str]] = {}  # band -> (href, index, offset, asset key)
    for key, asset in item.assets.items():
        d = asset.to_dict()
        eo = d.get("eo:bands") or d.get("bands") or []
        names = [b.get("name") for b in eo if isinstance(b, dict)]
        raster = d.get("raster:bands") or []
        if not names or not all(names):
            names = [key]
        if len(names) == 1 and normalize_band_name(key) != normalize_band_name(names[0]) and normalize_band_name(key) in S2_RESOLUTION:
            names = [key]
        href = asset.get_absolute_href() or asset.href
        for i, n in enumerate(names):
            offset = 0.0
            if i < len(raster) and isinstance(raster[i], dict):
                scale = float(raster[i].get("scale", 1.0) or 1.0)
                offset = float(raster[i].get("offset", 0.0) or 0.0) / scale
            band = normalize_band_name(n)
            if band in entries and (wanted is None or band in wanted):
                raise ValueError(f"{item_path}: band {n} is named by two assets ({entries[band][3]!r} and {key!r})")
            entries[band] = (href, i, offset, key)
    targets = sorted(entries) if wanted is None else [b for b in (normalize_band_name(x) for x in bands) if b in entries]
    catalog: dict[str, BandRef] = {}
    files: dict[str, BandFile] = {}
    for band in targets:
        href, index, offset, key = entries[band]
        local = href[len("file://"):] if href.startswith("file://") else href
        if "://" not in local and not Path(local).is_file():
            raise FileNotFoundError(f"{item_path}: asset {key!r} (band {band}) points to {local}, which does not exist")
        if local not in files:
            files[local] = BandFile(local, f"{item_path}#{key} ({local})", Path(local) if "://" not in local else None, nodata=nodata)
        catalog[band] = BandRef(band, files[local], index, offset)
    return catalog


def open_catalog(sources: Sequence[str | os.PathLike], nodata: float | None = None, bands: Sequence[str] | None = None) -> dict[str, BandRef]:
    """Band catalog of ``sources``: one SAFE product (folder or .zip), one STAC Item (.json), or raster files."""
    items = [Path(s).expanduser() for s in ([sources] if isinstance(sources, str | os.PathLike) else sources)]
    if not items:
        raise ValueError("data.sources is empty: name raster files (one per band group), a Sentinel-2 .SAFE/.zip, or a STAC Item JSON")
    first = items[0]
    is_safe = first.suffix.lower() in (".safe", ".zip") or (first.is_dir() and any(first.glob("MTD_MSIL*.xml")))
    if is_safe or first.suffix.lower() == ".json":
        if len(items) != 1:
            raise ValueError(f"data.sources: {first} is a {'Sentinel-2 product' if is_safe else 'STAC Item'}; give it alone, not with {len(items) - 1} other source(s)")
        return catalog_from_safe(first, nodata, bands) if is_safe else catalog_from_stac(first, nodata, bands)
    for p in items:
        if p.is_dir():
            raise IsADirectoryError(f"{p}: is a folder but not a Sentinel-2 .SAFE product; data.sources takes raster files, a .SAFE, a .zip or a STAC .json")
    return catalog_from_rasters(items, nodata)


# ---------------------------------------------------------------------------------------------- groups
class BandGroup:
    """Bands on one grid, read together as float32 (C, h, w) with their offsets applied."""

    def __init__(self, refs: Sequence[BandRef], label: str) -> None:
        self.refs = list(refs)
        self.label = label
        first = self.refs[0].file
        for ref in self.refs[1:]:
            f = ref.file
            if (f.height, f.width, f.crs, tuple(f.transform)[:6]) != (first.height, first.width, first.crs, tuple(first.transform)[:6]):
                raise ValueError(
                    f"data.{label}: bands {self.refs[0].name} ({first.name}: {first.resolution[0]:g} m, {first.height}x{first.width}) "
                    f"and {ref.name} ({f.name}: {f.resolution[0]:g} m, {f.height}x{f.width}) lie on different grids; the bands "
                    "of one group must share one grid (one resolution)"
                )
        t = first.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise ValueError(f"{first.name}: the grid is rotated or not north-up ({tuple(t)[:6]}); warp it first (gdalwarp)")
        self.files: list[BandFile] = []
        self._reads: list[tuple[int, list[int], list[int]]] = []  # (file slot, file band indices, output positions)
        for pos, ref in enumerate(self.refs):
            slot = next((i for i, f in enumerate(self.files) if f is ref.file), None)
            if slot is None:
                self.files.append(ref.file)
                self._reads.append((len(self.files) - 1, [], []))
                slot = len(self.files) - 1
            self._reads[slot][1].append(ref.index)
            self._reads[slot][2].append(pos)
        self.offsets = np.array([r.offset for r in self.refs], dtype=np.float32)
        self.nodata = np.array([r.file.nodata if r.file.nodata is not None else np.nan for r in self.refs], dtype=np.float32)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.refs]

    @property
    def grid(self) -> BandFile:
        return self.refs[0].file

    @property
    def resolution(self) -> float:
        return self.grid.resolution[0]

    def read(self, row0: int, col0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(data, invalid)``: float32 (C, h, w) values with offsets applied, and the (h, w) nodata mask."""
        out = np.empty((len(self.refs), height, width), dtype=np.float32)
        for slot, idx, pos in self._reads:
            out[pos] = self.files[slot].read(row0, col0, height, width, idx)
        nonfinite = ~np.isfinite(out).all(0)
        nd = self.nodata[:, None, None]
        at_nodata = (out == nd).all(0) if not np.isnan(self.nodata).any() else np.zeros_like(nonfinite)
        invalid = nonfinite | at_nodata
        if self.offsets.any():
            out += self.offsets[:, None, None]
        return out, invalid


def _ratio(coarse: float, fine: float) -> float:
    return coarse / fine


def _is_int(x: float, tol: float) -> bool:
    return abs(x - round(x)) <= tol * max(1.0, abs(x))


class MultiResolutionScene:
    """Band groups checked for alignment, with the common extent on the coarsest grid.

    Args:
        groups: the groups (any order); all must share a CRS (or all have none), have pairwise integer
            resolution ratios and grid origins on the coarsest group's pixel corners.

    Attributes:
        height, width: the common extent in pixels of the coarsest group.
        factors: per group, its pixels per coarsest pixel.
        origins: per group, the (row, col) of the common extent's corner in the group's own pixels.
    """

    def __init__(self, groups: Sequence[BandGroup]) -> None:
        self.groups = list(groups)
        coarse = max(self.groups, key=lambda g: g.resolution)
        ref = coarse.grid
        for g in self.groups:
            f = g.grid
            if (f.crs is None) != (ref.crs is None) or (f.crs is not None and f.crs != ref.crs):
                a = f.crs.to_string() if f.crs is not None else "no CRS"
                b = ref.crs.to_string() if ref.crs is not None else "no CRS"
                raise ValueError(
                    f"{f.name} (bands {g.names}): CRS {a} differs from {b} of {ref.name} (bands {coarse.names}); all band "
                    "groups must share one CRS (reproject with gdalwarp -t_srs ... -tap)"
                )
            rx, ry = f.resolution
            if abs(rx - ry) > _RES_TOL * rx:
                raise ValueError(f"{f.name}: pixels are {rx:g} x {ry:g}, not square; band groups need square pixels")
        for a in self.groups:
            for b in self.groups:
                if b.resolution > a.resolution and not _is_int(_ratio(b.resolution, a.resolution), _RES_TOL):
                    raise ValueError(
                        f"{b.grid.name} (bands {b.names}, {b.resolution:g} m) is {b.resolution / a.resolution:.6g} times the pixel of "
                        f"{a.grid.name} (bands {a.names}, {a.resolution:g} m); resolution ratios between groups must be integers"
                    )
        res = coarse.resolution
        self.factors = [round(res / g.resolution) for g in self.groups]
        starts: list[tuple[int, int]] = []
        for g in self.groups:
            t, rt = g.grid.transform, ref.transform
            dx, dy = (t.c - rt.c) / res, (rt.f - t.f) / res
            if not (_is_int(dx, _ORIGIN_TOL) and _is_int(dy, _ORIGIN_TOL)):
                raise ValueError(
                    f"{g.grid.name} (bands {g.names}): grid origin ({t.c:g}, {t.f:g}) is offset by ({t.c - rt.c:g}, {t.f - rt.f:g}) "
                    f"from the origin ({rt.c:g}, {rt.f:g}) of {ref.name}, not a whole number of its {res:g} m pixels; the grids are "
                    "not aligned (every origin must lie on a corner of the coarsest grid, e.g. gdalwarp -tap)"
                )
            starts.append((round(dy), round(dx)))
        ends = [(s[0] + g.grid.height // q, s[1] + g.grid.width // q) for s, g, q in zip(starts, self.groups, self.factors, strict=True)]
        r0, c0 = max(s[0] for s in starts), max(s[1] for s in starts)
        r1, c1 = min(e[0] for e in ends), min(e[1] for e in ends)
        if r1 <= r0 or c1 <= c0:
            raise ValueError(f"band groups {[g.names for g in self.groups]}: the grids do not overlap ({[g.grid.name for g in self.groups]})")
        self.height, self.width = r1 - r0, c1 - c0
        self.origins = [((r0 - s[0]) * q, (c0 - s[1]) * q) for s, q in zip(starts, self.factors, strict=True)]
        self.resolution = res
        self.coarse_index = self.groups.index(coarse)

    def read(self, k: int, row0: int, col0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Group ``k`` over coarse-pixel window ``[row0, row0+height) x [col0, col0+width)``, in its own pixels."""
        q = self.factors[k]
        r, c = self.origins[k]
        return self.groups[k].read(r + row0 * q, c + col0 * q, height * q, width * q)

    def invalid_coarse(self, row0: int, height: int) -> np.ndarray:
        """(height, width) mask of coarse pixels holding nodata in any pixel of any group (rows ``row0..``)."""
        out = np.zeros((height, self.width), dtype=bool)
        for k, q in enumerate(self.factors):
            _, inv = self.read(k, row0, 0, height, self.width)
            out |= inv.reshape(height, q, self.width, q).any((1, 3))
        return out

    def describe(self) -> str:
        return ", ".join(f"{g.names} at {g.resolution:g} m" for g in self.groups)

