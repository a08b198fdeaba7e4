"""What the demo run publishes beside its maps, read back: class names that GDAL reports (category
names, attribute table, metadata), QGIS styles, and a STAC Collection valid against the STAC models."""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from stac_pydantic import Collection, Item

from l2h.core.classes import CLASSES

pytestmark = pytest.mark.workflow
PLACES = ("cote_verte", "northmoor", "riverside", "national")


def gdalinfo(path: Path) -> str:
    """`gdalinfo path` through the GDAL library rasterio ships (GDALInfo of gdal_utils.h)."""
    libs = glob.glob(os.path.join(os.path.dirname(rasterio.__file__), os.pardir, "rasterio.libs", "libgdal*"))
    if not libs:
        pytest.skip("rasterio was not installed from a wheel bundling libgdal")
    gdal = ctypes.CDLL(libs[0])
    gdal.GDALOpen.restype, gdal.GDALOpen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
    gdal.GDALInfo.restype, gdal.GDALInfo.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]
    gdal.GDALClose.argtypes = [ctypes.c_void_p]
    gdal.VSIFree.argtypes = [ctypes.c_void_p]
    dataset = gdal.GDALOpen(str(path).encode(), 0)
    assert dataset, f"GDAL cannot open {path}"
    try:
        text = gdal.GDALInfo(dataset, None)
        try:
            return ctypes.string_at(text).decode()
        finally:
            gdal.VSIFree(text)
    finally:
        gdal.GDALClose(dataset)


@pytest.fixture(scope="module")
def run(http_demo_run):
    return http_demo_run[0]


@pytest.mark.parametrize("place", PLACES)
def test_gdalinfo_names_the_classes_of_each_map(run, place):
    cog = run / f"results/maps/{place}.tif"
    info = gdalinfo(cog)
    assert f"{cog}.aux.xml" in info  # GDAL found the sidecar
    for c in CLASSES:
        assert f"{c.code}: {c.name}" in info  # category names
        assert f"CLASS_{c.code}={c.name}" in info  # the COG's own metadata
    assert '<GDALRasterAttributeTable tableType="thematic">' in info
    assert cog_validate(str(cog), strict=True, quiet=True)[0]


@pytest.mark.parametrize("place", PLACES)
def test_qgis_styles_carry_names_and_colours(run, place):
    style = ET.parse(run / f"results/maps/{place}.qml").getroot()
    entries = style.findall("./pipe/rasterrenderer[@type='paletted']/colorPalette/paletteEntry")
    assert [(int(e.get("value")), e.get("label"), e.get("color")) for e in entries] == [
        (c.code, c.name, c.colour) for c in CLASSES]
    ramp = ET.parse(run / f"results/maps/confidence/{place}.qml").getroot()
    items = ramp.findall("./pipe/rasterrenderer[@type='singlebandpseudocolor']/rastershader/colorrampshader/item")
    assert [int(i.get("value")) for i in items][::len(items) - 1] == [0, 255]


def test_stac_collection_and_items_validate_and_point_at_the_cogs(run):
    root = run / "results/stac"
    collection = json.loads((root / "collection.json").read_text())
    Collection.model_validate(collection)
    assert collection["id"] == "l2h-demo"
    provenance = collection["l2h:provenance"]
    assert provenance["training_settings"]["steps"] == 6 and provenance["model"]["width"] == 8
    # what really ran: training's device and arithmetic, the provider that mapped each map's blocks
    trained = provenance["model"]["extra"]
    steps = provenance["training_settings"]["steps"] + provenance["training_settings"]["self_training_steps"]
    assert trained["device"] == "cpu" and trained["precision"] == "fp32"
    assert trained["steps_by_device"] == {"cpu fp32": steps} and steps == trained["steps"]
    blocks = {b["id"]: b for m in sorted(run.glob("resources/pred/*/chunk_*.json"))
              for b in json.loads(m.read_text())["blocks"]}
    assert blocks and {b["provider"] for b in blocks.values()} == {"CPUExecutionProvider"}
    mapped = {place: sum(place == "national" or place in b["touches"] for b in blocks.values()) for place in PLACES}
    accuracy = collection["l2h:accuracy"]
    # the accuracy assessment's own numbers, as `l2h evaluate` wrote them (the same JSON floats)
    assessed = json.loads((run / "results/reports/accuracy.json").read_text())
    assert set(accuracy["products"]) == set(assessed["products"]) == {"esa_worldcover", "esri_lulc", "fromglc10"}
    assert accuracy["map"]["oa"] == assessed["map"]["oa"]
    assert {p: e["oa"] for p, e in accuracy["products"].items()} == {p: e["oa"] for p, e in assessed["products"].items()}
    items = [link["href"] for link in collection["links"] if link["rel"] == "item"]
    assert len(items) == 8 and all(not h.startswith("/") for h in items)  # relative: the folder can move
    for href in items:
        path = (root / href).resolve()
        item = json.loads(path.read_text())
        Item.model_validate(item)
        place = item["properties"]["l2h:region"]
        assert item["properties"]["l2h:execution_providers"] == {"CPUExecutionProvider": mapped[place]}, place
        data = item["assets"]["data"]
        cog = (path.parent / data["href"]).resolve()
        assert cog.is_file() and cog.is_relative_to(run / "results/maps")
        assert data["file:checksum"] == "1220" + hashlib.sha256(cog.read_bytes()).hexdigest()
        assert data["file:size"] == cog.stat().st_size
        with rasterio.open(cog) as src:
            proj = item["properties"]
            assert proj.get("proj:code", f"EPSG:{proj.get('proj:epsg')}") == "EPSG:32650" == src.crs.to_string()
            assert item["properties"]["proj:shape"] == [src.height, src.width]
        assert data["raster:bands"][0]["data_type"] == "uint8" and data["raster:bands"][0]["nodata"] == 0
        assert any("projection" in e for e in item["stac_extensions"])
        assert any("raster" in e for e in item["stac_extensions"])
        if item["id"].startswith("map-"):
            assert any("classification" in e for e in item["stac_extensions"])
            classes = {c["value"]: c["description"] for c in data["classification:classes"]}
            assert classes == {0: "no data"} | {c.code: c.name for c in CLASSES}
            sidecar = (path.parent / item["assets"]["metadata"]["href"]).resolve()
            assert sidecar == Path(f"{cog}.aux.xml")
        assert (path.parent / item["assets"]["style"]["href"]).resolve() == cog.with_suffix(".qml")
