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
    # the stretch: the 2 and 98 % points of each band's ramp (the window is the whole 1024 px image). The
    # ramp is trunc(4000 i / (N - 1)), N = 1024^2; the 2 % point lies at i = 0.02 (N - 1) = 20971.5, between
    # trunc(79.998) = 79 and trunc(80.002) = 80: 79.5; the 98 % one at i = 1027603.5, between 3919 and 3920
    assert len(layers.imagery_range) == 3  # 0.02 (N - 1) is not exact in binary: 1e-6
    assert all(band == pytest.approx((79.5, 3919.5), abs=1e-6) for band in layers.imagery_range)
    tms = morecantile.tms.get("WebMercatorQuad")
    tile = tms.tile(*lonlat(SIDE // 2, SIDE // 2), high)
    image = np.asarray(Image.open(io.BytesIO(render_tile(layers, "imagery", high, tile.x, tile.y))))
    assert image.dtype == np.uint8 and image.shape == (256, 256, 4)
    assert (image[..., 3] == 255).all()  # the tile lies inside the imagery
    # each tile pixel is the ramp at its centre, 4000 (row N^0.5 + col) / (N - 1) (linear, so bilinear
    # resampling keeps it), stretched linearly from (79.5, 3919.5) to (0, 255) and cut to a byte: the
    # byte is that value rounded down (0 to 1 below it), give or take 0.07 (the ramp's own truncation
    # to whole numbers) and the warp's approximation (< 0.1)
    west, south, east, north = tms.xy_bounds(tile)
    centres = (np.arange(256) + 0.5) / 256
    x, y = Transformer.from_crs("EPSG:3857", "EPSG:32650", always_xy=True).transform(
        *np.meshgrid(west + centres * (east - west), north - centres * (north - south)))
    ramp = 4000 * ((NORTH - y - 0.5) * SIDE + (x - WEST - 0.5)) / (SIDE * SIDE - 1)
    stretched = (ramp - 79.5) / (3919.5 - 79.5) * 255
    for band in range(3):
        np.testing.assert_allclose(image[..., band], stretched - 0.5, rtol=0, atol=0.7)


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
