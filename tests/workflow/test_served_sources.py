"""The workflow from the sources national mapping uses: the small demo world's imagery and products
as a static STAC catalog, and its imagery as a WMTS layer, served on 127.0.0.1. The maps are
pixel-identical to those of the same world read from files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from helpers import demo_overrides, snakemake
from served_sources import published

pytestmark = pytest.mark.workflow
REGIONS = ("cote_verte", "northmoor", "riverside")
MAPS = [f"results/maps/{name}.tif" for name in (*REGIONS, "national")]
TARGETS = ("results/maps/national.tif", "results/stac/collection.json")


@pytest.fixture(scope="module")
def served(small_demo_world, tmp_path_factory):
    """The small demo world as a static STAC catalog and a WMTS layer, on a local HTTP server."""
    with published(small_demo_world, tmp_path_factory.mktemp("served")) as server:
        yield server


def _settings(world: Path) -> dict:
    settings = demo_overrides(world)
    settings["sampling"] = {"target_fraction": 0.5, "tolerance": 0.1}
    return settings


def _run(workdir: Path, settings: dict) -> None:
    workdir.mkdir(parents=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(settings))
    result = snakemake(workdir, *TARGETS, configfile=workdir / "config.yaml")
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def from_files(small_demo_world, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("files") / "run"
    _run(workdir, _settings(small_demo_world))
    return workdir


def _served_grid(settings: dict, world: Path) -> None:
    """No imagery file to take the grid from: state it (the demo world's)."""
    with rasterio.open(world / "imagery" / "demo_imagery.tif") as src:
        settings["grid"] = {"crs": f"EPSG:{src.crs.to_epsg()}", "resolution": src.res[0]}


def _assert_same_maps(run: Path, reference: Path) -> None:
    for path in MAPS:
        with rasterio.open(run / path) as got, rasterio.open(reference / path) as expected:
            assert got.transform == expected.transform and got.crs == expected.crs
            np.testing.assert_array_equal(got.read(), expected.read(), err_msg=path)


def test_maps_from_a_stac_catalog_equal_the_maps_from_files(served, small_demo_world, from_files, tmp_path):
    settings = _settings(small_demo_world)
    catalog = served.url("stac/catalog.json")
    settings["imagery"] = {"paths": [], "stac": {"url": catalog, "collection": "demo-imagery", "asset": "image"}}
    settings["products"] = {
        "esa_worldcover": {"base_url": None, "stac": {"url": catalog}},
        "esri_lulc": {"base_url": None, "stac": {"url": catalog}},
        "fromglc10": {"preset": "custom", "edition": None, "base_url": None,
                      "codes": {str(code): classes for code, classes in _fromglc10_codes().items()},
                      "stac": {"url": catalog, "collection": "fromglc10", "asset": "data"}}}
    _served_grid(settings, small_demo_world)
    _run(tmp_path / "run", settings)

    _assert_same_maps(tmp_path / "run", from_files)
    blocks = sorted((tmp_path / "run/resources/imagery").glob("*/*.tif"))
    assert blocks and served.bytes_sent("stac/demo-imagery/") > 0
    # provenance: which items each region's map derives from, down to the block
    for region in REGIONS:
        record = json.loads((tmp_path / f"run/resources/imagery/{region}.items.json").read_text())
        assert set(record["blocks"]) == {p.stem for p in (tmp_path / f"run/resources/imagery/{region}").glob("*.tif")}
        item = json.loads((tmp_path / f"run/results/stac/map-{region}/map-{region}.json").read_text())
        links = [link for link in item["links"] if link["rel"] == "derived_from"]
        assert sorted(link["title"] for link in links) == sorted(record["items"]) == item["properties"][
            "l2h:imagery_items"]
        assert all(link["href"].startswith("http://127.0.0.1") for link in links)
    manifests = [json.loads((tmp_path / f"run/resources/raw/{p}/manifest.json").read_text())
                 for p in ("esa_worldcover", "esri_lulc", "fromglc10")]
    assert all(m["files"] and all("/stac/" in f["path"] for f in m["files"]) for m in manifests)


def _fromglc10_codes() -> dict[int, list[str]]:
    """FROM-GLC10's code table as a custom product's `codes` (the preset's, by class key)."""
    from l2h.core.classes import CLASSES, FROM_GLC10

    keys = {c.code: c.key for c in CLASSES}
    return {code: sorted(keys[c] for c in entry.classes) for code, entry in FROM_GLC10.items()}


def test_maps_from_a_wmts_layer_equal_the_maps_from_files(served, small_demo_world, from_files, tmp_path):
    settings = _settings(small_demo_world)
    settings["imagery"] = {"paths": [], "wmts": {"url": served.url("wmts/capabilities.xml"), "layer": "demo",
                                                 "bands": 4}}
    _served_grid(settings, small_demo_world)
    _run(tmp_path / "run", settings)
    _assert_same_maps(tmp_path / "run", from_files)
    assert len(served.requests_for("wmts/capabilities.xml")) >= len(REGIONS)
