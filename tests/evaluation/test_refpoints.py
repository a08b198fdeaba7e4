"""Reference points from reference rasters (l2h reference-points) and a region from raster footprints."""

import csv

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from l2h.cli import main
from l2h.core.errors import ConfigError, InputError
from l2h.evaluation.reference_points import allocate, draw_reference_points
from l2h.inputs.regions import write_footprint_region

CRS = "EPSG:32617"


def _raster(path, data, west=500000.0, north=4100000.0, nodata=0):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint8", crs=CRS, transform=from_origin(west, north, 1.0, 1.0), nodata=nodata) as dst:
        dst.write(data.astype(np.uint8), 1)
    return str(path)


@pytest.fixture()
def two_rasters(tmp_path):
    """Two 100 x 100 m rasters side by side: codes 1 (6,300 + 6,700 px), 2 (3,000 + 3,000), 5 (300 + 300),
    6 (200 + 0), 0 = nodata (200 + 0)."""
    a = np.ones((100, 100), np.uint8)
    a[:30] = 2
    a[30:33] = 5
    a[33:35] = 6
    a[35:37] = 0
    b = np.ones((100, 100), np.uint8)
    b[:30] = 2
    b[30:33] = 5
    return [_raster(tmp_path / "a.tif", a), _raster(tmp_path / "b.tif", b, west=500100.0)]


def test_allocation_gives_every_class_its_minimum_then_shares_by_area():
    assert allocate({1: 9000, 2: 900, 3: 100}, 1000, 50) == {1: 50 + 765, 2: 50 + 77, 3: 50 + 8}
    assert allocate({1: 9000, 3: 20}, 100, 50) == {1: 80, 3: 20}  # a class smaller than the minimum: all of it
    assert sum(allocate({1: 5, 2: 7, 3: 11}, 10, 2).values()) == 10


def test_stratified_points_lie_on_their_class_after_recoding(two_rasters):
    points, stats = draw_reference_points(two_rasters, 300, seed=1, min_per_class=40, recode={6: 5})
    assert set(stats) == {1, 2, 5}  # 6 merged into 5, nodata never drawn
    assert stats[5]["pixels"] == 300 + 200 + 300 and stats[1]["pixels"] == 6300 + 6700
    assert {c: s["points"] for c, s in stats.items()} == allocate({c: s["pixels"] for c, s in stats.items()}, 300, 40)
    assert stats[1]["area_km2"] == pytest.approx(0.013)
    assert len({(x, y) for x, y, _, _ in points}) == 300
    originals = {}
    for path in two_rasters:
        with rasterio.open(path) as src:
            inside = [(x, y) for x, y, _, _ in points if src.bounds.left < x < src.bounds.right]
            originals.update(zip(inside, (v[0] for v in src.sample(inside))))
    for x, y, crs, cls in points:
        assert crs == CRS and (x % 1, y % 1) == (0.5, 0.5)  # pixel centres
        assert {6: 5}.get(int(originals[(x, y)]), int(originals[(x, y)])) == cls
    assert [p[3] for p in points] == sorted(p[3] for p in points)
    again, _ = draw_reference_points(two_rasters, 300, seed=1, min_per_class=40, recode={6: 5})
    other, _ = draw_reference_points(two_rasters, 300, seed=2, min_per_class=40, recode={6: 5})
    assert again == points and other != points


def test_simple_random_points_follow_the_area(two_rasters):
    points, stats = draw_reference_points(two_rasters, 2000, seed=0, stratified=False, exclude=[6])
    assert 5 in stats and 6 not in stats
    counts = {c: sum(p[3] == c for p in points) for c in stats}
    total = sum(s["pixels"] for s in stats.values())
    assert sum(counts.values()) == 2000
    for c, s in stats.items():  # within 5 standard deviations of the expected count
        share = s["pixels"] / total
        assert abs(counts[c] - 2000 * share) < 5 * np.sqrt(2000 * share * (1 - share)) + 1


def test_bad_input_is_named(two_rasters, tmp_path):
    with pytest.raises(ConfigError, match="number of points must be >= 1"):
        draw_reference_points(two_rasters, 0)
    empty = _raster(tmp_path / "empty.tif", np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="empty.tif: no valid pixel"):
        draw_reference_points([empty], 10)
    (tmp_path / "junk.tif").write_text("not a raster")
    with pytest.raises(InputError, match="junk.tif: cannot be opened"):
        draw_reference_points([str(tmp_path / "junk.tif")], 10)
    assert main(["reference-points", "--raster", *two_rasters, "--n", "5", "--recode", "6-5",
                 "--out", str(tmp_path / "p.csv")]) == 1


def test_cli_writes_points_and_strata_areas(two_rasters, tmp_path):
    out, areas = tmp_path / "p.csv", tmp_path / "strata.csv"
    assert main(["reference-points", "--raster", *two_rasters, "--n", "50", "--stratified", "--min-per-class", "10",
                 "--recode", "6=5", "--seed", "3", "--out", str(out), "--strata-areas", str(areas)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 50 and list(rows[0]) == ["x", "y", "crs", "class"]
    assert sum(r["class"] == "5" for r in rows) >= 10
    assert list(csv.reader(areas.open())) == [["stratum", "area_km2"], ["1", "0.013000"], ["2", "0.006000"],
                                              ["5", "0.000800"]]


def test_footprint_region_is_the_union_of_the_extents(two_rasters, tmp_path):
    far = _raster(tmp_path / "far.tif", np.ones((50, 50), np.uint8), west=501000.0)
    info = write_footprint_region([*two_rasters, far], "Study area", tmp_path / "region.geojson")
    region = gpd.read_file(tmp_path / "region.geojson")
    assert list(region["name"]) == ["Study area"] and region.crs.to_epsg() == 32617
    assert region.geometry[0].area == pytest.approx(200 * 100 + 50 * 50)
    assert info["area_km2"] == pytest.approx(0.0225)
    other = _raster(tmp_path / "utm18.tif", np.ones((5, 5), np.uint8))
    with rasterio.open(other, "r+") as dst:
        dst.crs = "EPSG:32618"
    with pytest.raises(InputError, match="utm18.tif: CRS EPSG:32618 differs"):
        write_footprint_region([two_rasters[0], other], "x", tmp_path / "bad.gpkg")
