"""The run's grid: defaults from the imagery, and only projected metric CRSs."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from l2h.core.errors import ConfigError, InputError
from l2h.core.grid import resolve_grid


def _image(path, crs="EPSG:32650", res=(1.0, 1.0)):
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs=crs,
                       transform=from_origin(500000, 3300000, *res)) as dst:
        dst.write(np.ones((1, 8, 8), "uint8"))
    return str(path)


def test_grid_defaults_to_the_imagery(tmp_path):
    grid = resolve_grid(None, None, [_image(tmp_path / "a.tif", res=(0.5, 0.5))])
    assert grid.crs == "EPSG:32650" and grid.resolution == 0.5


def test_explicit_grid_wins(tmp_path):
    grid = resolve_grid("EPSG:3857", 2.0, [_image(tmp_path / "a.tif")])
    assert grid.crs == "EPSG:3857" and grid.resolution == 2.0


def test_geographic_crs_rejected(tmp_path):
    with pytest.raises(ConfigError, match="not a projected CRS in metres"):
        resolve_grid("EPSG:4326", 1.0, [_image(tmp_path / "a.tif")])


def test_garbage_crs_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="'grid.crs': 'EPSG:nope'"):
        resolve_grid("EPSG:nope", 1.0, [_image(tmp_path / "a.tif")])


def test_unreadable_imagery_named(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(InputError, match="broken.tif"):
        resolve_grid(None, None, [str(bad)])


def test_tile_service_needs_an_explicit_grid():
    with pytest.raises(ConfigError, match="'grid.crs' and 'grid.resolution' must be set"):
        resolve_grid(None, 1.0, [])
    assert resolve_grid("EPSG:32650", 1.0, []).crs == "EPSG:32650"


def test_label_resolution_must_be_a_whole_multiple():
    from l2h.core.grid import Grid, check_label_resolution

    assert check_label_resolution(Grid("EPSG:32650", 1.0), 10) == 10
    with pytest.raises(ConfigError, match="'labels.resolution': 10 m must be a whole multiple of .* 3.0 m"):
        check_label_resolution(Grid("EPSG:32650", 3.0), 10)
