"""The viewer's layers on a small synthetic run (no workflow): discovery, zooms, non-8-bit imagery."""

from __future__ import annotations

import io

import morecantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin

from l2h.core.classes import CROP, TREE
from l2h.core.errors import InputError
from l2h.core.io import write_class_raster
from l2h.maps.mosaic import to_cog
from l2h.view.layers import IMAGERY_ZOOMS_WITHOUT_OVERVIEWS, find_layers, point_info, render_tile

WEST, NORTH, SIDE = 208384.0, 3323904.0, 1024
TRANSFORM = from_origin(WEST, NORTH, 1.0, 1.0)


@pytest.fixture
def run(tmp_path):
    classes = np.full((SIDE, SIDE), TREE, np.uint8)
    classes[:, SIDE // 2:] = CROP
    scratch = tmp_path / "merge.tif"
    write_class_raster(scratch, classes, "EPSG:32650", TRANSFORM)
    to_cog(scratch, tmp_path / "results/maps/national.tif")
    rgb = np.stack([np.linspace(0, 4000, SIDE * SIDE, dtype=np.uint16).reshape(SIDE, SIDE)] * 3)
    imagery = tmp_path / "imagery.tif"
    with rasterio.open(imagery, "w", driver="GTiff", width=SIDE, height=SIDE, count=3, dtype="uint16",
                       crs="EPSG:32650", transform=TRANSFORM, tiled=True) as dst:
        dst.write(rgb)
    return tmp_path, imagery


def lonlat(col: int, row: int) -> tuple[float, float]:
    return Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True).transform(WEST + col + 0.5, NORTH - row - 0.5)


def test_16_bit_imagery_is_stretched_and_shown_from_a_bounded_zoom(run):
    root, imagery = run
    layers = find_layers(root, imagery=[str(imagery)])
    assert layers.confidence is None and set(layers.zooms) == {"map", "imagery"}
    low, high = layers.zooms["imagery"]
    assert low == high - IMAGERY_ZOOMS_WITHOUT_OVERVIEWS  # no overviews: no tile reads the whole file
    assert layers.imagery_range is not None and all(lo < hi <= 4000 for lo, hi in layers.imagery_range)
    tile = morecantile.tms.get("WebMercatorQuad").tile(*lonlat(SIDE // 2, SIDE // 2), high)
    image = np.asarray(Image.open(io.BytesIO(render_tile(layers, "imagery", high, tile.x, tile.y))))
    assert image.dtype == np.uint8 and image[..., :3].std() > 0 and image[..., 3].max() == 255


def test_point_names_the_class_and_nothing_outside(run):
    root, imagery = run
    layers = find_layers(root, imagery=[str(imagery)])
    assert point_info(layers, *lonlat(100, 100))["class"]["name"] == "tree cover"
    assert point_info(layers, *lonlat(900, 100))["class"]["name"] == "cropland"
    outside = point_info(layers, 100.0, 10.0)
    assert outside["class"]["name"] == "no data" and outside["confidence"] is None


def test_missing_imagery_is_named(run):
    root, _ = run
    with pytest.raises(InputError, match="imagery /nowhere.tif does not exist; give the imagery with --imagery"):
        find_layers(root, imagery=["/nowhere.tif"])


def test_missing_web_library_names_the_npm_step(monkeypatch, tmp_path):
    from l2h.view import server

    monkeypatch.setattr(server, "LEAFLET", tmp_path / "node_modules/leaflet/dist")
    with pytest.raises(InputError, match=r"web map library is not installed .*npm ci --prefix"):
        server.check_web_libraries()
