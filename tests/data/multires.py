"""Seeded generators of tiny multi-resolution Sentinel-2-like fixtures: group GeoTIFFs, SAFE products, STAC Items.

Nothing is committed: tests call these into ``tmp_path``. One scene is a smooth field per band on the
10 m grid, block-averaged to each band's native resolution (10, 20 or 60 m) and stored as uint16
digital numbers (reflectance x 10000, plus 1000 when the product's baseline carries the offset).

    python tests/data/multires.py OUT_DIR   # writes every fixture, for a look in QGIS
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests.data.geotiffs import block_mean, smooth_scene

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
BAND_ID = {b: i for i, b in enumerate(("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"))}
RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20}
GROUPS = {10: ["B02", "B03", "B04", "B08"], 20: ["B05", "B06", "B07", "B8A", "B11", "B12"], 60: ["B01", "B09"]}
ORIGIN = (300000.0, 5000040.0)
CRS = "EPSG:32633"


def scene_dn(size60: int = 24, seed: int = 0, zero_cols: int = 0) -> dict[str, np.ndarray]:
    """Per band, uint16 digital numbers at the band's native resolution (``size60`` pixels at 60 m).

    ``zero_cols``: the first columns (in 60 m pixels) are 0 in every band, like a product's edge.
    """
    n10 = size60 * 6
    fields = smooth_scene(len(BANDS), n10, n10, seed)
    out = {}
    for i, b in enumerate(BANDS):
        f = RES[b] // 10
        dn = np.rint(block_mean(fields[i : i + 1], f)[0] * 10000).astype(np.uint16)
        if zero_cols:
            dn[:, : zero_cols * 6 // f] = 0
        out[b] = dn
    return out


def _profile(res: float, shape: tuple[int, ...], count: int, crs: str | None, origin: tuple[float, float], driver: str = "GTiff") -> dict:
    from affine import Affine

    p = {"driver": driver, "width": shape[-1], "height": shape[-2], "count": count, "dtype": "uint16", "crs": crs,
         "transform": Affine(res, 0.0, origin[0], 0.0, -res, origin[1])}
    if driver == "JP2OpenJPEG":
        p.update(QUALITY=100, REVERSIBLE="YES")  # lossless
    return p


def write_group_rasters(
    folder: str | Path,
    size60: int = 24,
    seed: int = 0,
    crs: str | None | Sequence[str | None] = CRS,
    origins: Sequence[tuple[float, float]] | None = None,
    resolutions: Sequence[float] = (10.0, 20.0, 60.0),
    zero_cols: int = 0,
    band_order: dict[int, list[str]] | None = None,
) -> list[Path]:
    """One GeoTIFF per group (10, 20, 60 m) with band descriptions; returns the three paths.

    ``crs``: one CRS for all, or one per file (None: no CRS, local transform); ``origins``: per file
    (x, y) of the top-left corner; ``resolutions``: the pixel sizes written (to build bad grids).
    """
    import rasterio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dn = scene_dn(size60, seed, zero_cols)
    crss = list(crs) if isinstance(crs, list | tuple) else [crs] * 3
    paths = []
    for k, res in enumerate((10, 20, 60)):
        names = (band_order or GROUPS)[res]
        data = np.stack([dn[b] for b in names])
        path = folder / f"S2_{res}m.tif"
        origin = origins[k] if origins is not None else ORIGIN
        with rasterio.open(path, "w", **_profile(resolutions[k], data.shape, len(names), crss[k], origin)) as dst:
            dst.write(data)
            for i, b in enumerate(names, start=1):
                dst.set_band_description(i, b)
        paths.append(path)
    return paths


def _mtd_xml(level: str, baseline: str, image_files: list[str], offsets: bool) -> str:
    ns = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-" + ("1C" if level == "L1C" else "2A") + ".xsd"
    root = "Level-1C_User_Product" if level == "L1C" else "Level-2A_User_Product"
    files = "\n".join(f"          <IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    if level == "L1C":
        quant = "<QUANTIFICATION_VALUE unit=\"none\">10000</QUANTIFICATION_VALUE>"
        offs = "<Radiometric_Offset_List>" + "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13)) + "</Radiometric_Offset_List>"
    else:
        quant = "<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>"
        offs = "<BOA_ADD_OFFSET_VALUES_LIST>" + "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13)) + "</BOA_ADD_OFFSET_VALUES_LIST>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:{root} xmlns:n1="{ns}">
  <n1:General_Info>
    <Product_Info>
      <PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Product_Organisation>
        <Granule_List>
          <Granule granuleIdentifier="G" imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      {quant}
      {offs if offsets else ""}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:{root}>
"""


def write_safe(
    folder: str | Path,
    level: str = "L1C",
    baseline: str = "04.00",
    offsets: bool = True,
    as_zip: bool = False,
    size60: int = 24,
    seed: int = 0,
    drop: Sequence[str] = (),
    zero_cols: int = 0,
) -> Path:
    """A tiny Sentinel-2 product with lossless JP2 band files (rasterio's JP2OpenJPEG driver).

    L1C: ``GRANULE/<g>/IMG_DATA/T33UUB_<date>_<band>.jp2`` at native resolutions; L2A: ``R10m``, ``R20m``,
    ``R60m`` folders (R60m holds every band but B08 at 60 m, as real products). From baseline 04.00 the
    digital numbers carry +1000 and the metadata the -1000 offset (``offsets=False`` leaves it out).
    ``drop``: resolution folders (``R20m``) or bands to leave out. Returns the ``.SAFE`` folder or the ``.zip``.
    """
    import rasterio

    folder = Path(folder)
    name = f"S2A_MSI{level}_20230101T100000_N{baseline.replace('.', '')}_R022_T33UUB_20230101T120000"
    safe = folder / f"{name}.SAFE"
    dn = scene_dn(size60, seed, zero_cols)
    shift = 1000 if tuple(int(x) for x in baseline.split(".")) >= (4, 0) else 0
    granule = f"GRANULE/{level}_T33UUB_A000001_20230101T100000/IMG_DATA"
    files: list[tuple[str, np.ndarray, int]] = []  # (member without .jp2, data, res)
    for b in BANDS:
        if b in drop:
            continue
        if level == "L1C":
            files.append((f"{granule}/T33UUB_20230101T100000_{b}", dn[b], RES[b]))
            continue
        native = RES[b]
        if f"R{native}m" not in drop:
            files.append((f"{granule}/R{native}m/T33UUB_20230101T100000_{b}_{native}m", dn[b], native))
        if native != 60 and b != "B08" and "R60m" not in drop:
            f = 60 // native
            files.append((f"{granule}/R60m/T33UUB_20230101T100000_{b}_60m", block_mean(dn[b][None].astype(np.float64), f)[0].round().astype(np.uint16), 60))
    for member, data, res in files:
        path = safe / f"{member}.jp2"
        path.parent.mkdir(parents=True, exist_ok=True)
        values = np.where(data > 0, data.astype(np.int64) + shift, 0).astype(np.uint16)  # 0 stays the fill value
        with rasterio.open(path, "w", **_profile(float(res), values.shape, 1, CRS, ORIGIN, driver="JP2OpenJPEG")) as dst:
            dst.write(values[None])
        for aux in path.parent.glob("*.aux.xml"):
            aux.unlink()
    mtd = safe / f"MTD_MSI{level}.xml"
    mtd.write_text(_mtd_xml(level, baseline, [m for m, _, _ in files], offsets))
    if not as_zip:
        return safe
    zpath = folder / f"{name}.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
        for p in sorted(safe.rglob("*")):
            if p.is_file():
                z.write(p, str(p.relative_to(folder)))
    return zpath


def write_stac_item(folder: str | Path, size60: int = 24, seed: int = 0, offset: bool = False, missing: Sequence[str] = ()) -> Path:
    """A STAC Item (pystac) with relative asset hrefs: a 4-band 10 m asset (``eo:bands`` B02 B03 B04 B08),
    one asset per 20 m band keyed by common names (``rededge1`` = B05 ...), the 60 m bands keyed by name.

    ``offset``: add ``raster:bands`` scale 0.0001 / offset -0.1 (digital numbers carry +1000);
    ``missing``: asset keys whose file is deleted after writing.
    """
    import datetime

    import pystac
    import rasterio

    folder = Path(folder)
    (folder / "bands").mkdir(parents=True, exist_ok=True)
    dn = scene_dn(size60, seed)
    shift = 1000 if offset else 0
    common = {"B05": "rededge1", "B06": "rededge2", "B07": "rededge3", "B8A": "nir08", "B11": "swir16", "B12": "swir22"}
    x0, y1 = ORIGIN
    size = size60 * 60
    item = pystac.Item(
        id="S2A_T33UUB_20230101", geometry={"type": "Polygon", "coordinates": [[[x0, y1], [x0 + size, y1], [x0 + size, y1 - size], [x0, y1 - size], [x0, y1]]]},
        bbox=[x0, y1 - size, x0 + size, y1], datetime=datetime.datetime(2023, 1, 1, 10, tzinfo=datetime.timezone.utc), properties={},
    )

    def write(rel: str, names: list[str], res: int) -> None:
        data = np.stack([dn[b].astype(np.int64) + shift for b in names]).astype(np.uint16)
        with rasterio.open(folder / rel, "w", **_profile(float(res), data.shape, len(names), CRS, ORIGIN)) as dst:
            dst.write(data)

    def raster_bands(n: int) -> dict:
        return {"raster:bands": [{"scale": 0.0001, "offset": -0.1} for _ in range(n)]} if offset else {}

    write("bands/visual10.tif", GROUPS[10], 10)
    item.add_asset("bands10", pystac.Asset("./bands/visual10.tif", media_type=pystac.MediaType.GEOTIFF,
                                           extra_fields={"eo:bands": [{"name": b} for b in GROUPS[10]], **raster_bands(4)}))
    for b in GROUPS[20]:
        write(f"bands/{b}.tif", [b], 20)
        item.add_asset(common[b], pystac.Asset(f"./bands/{b}.tif", media_type=pystac.MediaType.GEOTIFF,
                                               extra_fields={"eo:bands": [{"name": b}], **raster_bands(1)}))
    for b in GROUPS[60]:
        write(f"bands/{b}.tif", [b], 60)
        item.add_asset(b, pystac.Asset(f"bands/{b}.tif", media_type=pystac.MediaType.GEOTIFF, extra_fields=raster_bands(1)))
    path = folder / "item.json"
    path.write_text(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=1))
    for key in missing:
        (folder / item.assets[key].href).unlink()
    return path


def wald_dn(dn: dict[str, np.ndarray], factor: int = 2) -> dict[str, np.ndarray]:
    """Every band block-averaged by ``factor`` (rounded uint16): the product one Wald level down (10 m -> 20 m ...)."""
    return {b: np.rint(block_mean(d[None].astype(np.float64), factor)[0]).astype(np.uint16) for b, d in dn.items()}


def write_band_rasters(
    folder: str | Path,
    dn: dict[str, np.ndarray],
    groups: dict[float, Sequence[str]],
    crs: str | None = CRS,
    origin: tuple[float, float] = ORIGIN,
    nodata: float | None = None,
) -> list[Path]:
    """One GeoTIFF per entry of ``groups`` (pixel size -> band names, data from ``dn``) with band descriptions.

    For grids other than :func:`write_group_rasters`'s: a Wald level down (20 / 40 / 120 m), bands at the
    wrong resolution, holes. Files are named ``S2_<res>m.tif``; returns their paths in ``groups`` order.
    """
    import rasterio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for res, names in groups.items():
        data = np.stack([dn[b] for b in names])
        path = folder / f"S2_{res:g}m.tif"
        profile = {**_profile(float(res), data.shape, len(names), crs, origin), "dtype": data.dtype.name, "nodata": nodata}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            for i, b in enumerate(names, start=1):
                dst.set_band_description(i, b)
        paths.append(path)
    return paths


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_multires")
    write_group_rasters(out / "groups")
    write_safe(out / "safe", "L1C")
    write_safe(out / "safe", "L2A", as_zip=True)
    write_stac_item(out / "stac")
    print(f"wrote fixtures under {out}")
