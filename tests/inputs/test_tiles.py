"""Tile names of the 10 m products for a lon/lat box: exact corners, edges, hemispheres, UTM quirks."""

import math

import pytest

from l2h.inputs.tiles import esa_worldcover_tiles, esri_lulc_tiles, fromglc10_tiles

WUHAN_CENTRE = (114.3, 30.6, 114.3, 30.6)
WUHAN = (113.68, 29.97, 115.08, 31.36)


def point(lon, lat):
    return (lon, lat, lon, lat)


def test_wuhan_centre():
    assert esa_worldcover_tiles(WUHAN_CENTRE) == ["N30E114"]
    assert fromglc10_tiles(WUHAN_CENTRE) == ["fromglc10v01_30_114"]
    assert esri_lulc_tiles(WUHAN_CENTRE) == ["50R"]


def test_wuhan_region_touches_every_tile_it_overlaps():
    # 29.97 °N dips below the 30° line, 113.68 °E lies west of 114°, 115.08 °E stays in 114–117.
    assert esa_worldcover_tiles(WUHAN) == ["N27E111", "N27E114", "N30E111", "N30E114"]
    # 2° grid: 28–30 and 30–32 °N; 112–114 and 114–116 °E.
    assert fromglc10_tiles(WUHAN) == ["fromglc10v01_28_112", "fromglc10v01_28_114",
                                      "fromglc10v01_30_112", "fromglc10v01_30_114"]
    # Zone 49 is 108–114 °E, zone 50 is 114–120 °E; band R is 24–32 °N.
    assert esri_lulc_tiles(WUHAN) == ["49R", "50R"]


@pytest.mark.parametrize("lon, lat, esa, fromglc, esri", [
    (6.5, 0.3, "N00E006", "fromglc10v01_0_6", "32N"),           # São Tomé
    (-60.5, -2.5, "S03W063", "fromglc10v01_-4_-62", "20M"),     # Amazonas
    (-0.1, 51.5, "N51W003", "fromglc10v01_50_-2", "30U"),       # London, west of Greenwich
    (151.2, -33.9, "S36E150", "fromglc10v01_-34_150", "56H"),   # Sydney
    (-70.6, -33.4, "S36W072", "fromglc10v01_-34_-72", "19H"),   # Santiago
])
def test_hemispheres(lon, lat, esa, fromglc, esri):
    assert esa_worldcover_tiles(point(lon, lat)) == [esa]
    assert fromglc10_tiles(point(lon, lat)) == [fromglc]
    assert esri_lulc_tiles(point(lon, lat)) == [esri]


@pytest.mark.parametrize("bounds, expected", [
    ((114.1, 29.0, 114.5, 30.0), ["N27E114"]),                  # ends exactly on 30 °N
    ((114.1, 30.0, 114.5, 31.0), ["N30E114"]),                  # starts exactly on 30 °N
    ((114.1, 29.0, 114.5, 29.999999999), ["N27E114"]),
    ((114.1, 29.999999999, 114.5, 30.5), ["N27E114", "N30E114"]),
    ((111.0, 28.0, 114.0, 29.0), ["N27E111"]),                  # exactly one tile wide
    ((113.99999999999999, 28.0, 114.2, 29.0), ["N27E111", "N27E114"]),
    ((-3.0, -3.0, 0.0, 0.0), ["S03W003"]),
    ((114.0, 30.0, 114.0, 30.0), ["N30E114"]),                  # a corner point: tile to its NE
])
def test_esa_edges(bounds, expected):
    assert esa_worldcover_tiles(bounds) == expected


def test_exact_arithmetic_next_to_zero():
    tiny = math.nextafter(0.0, 1.0)  # tiny / 3 rounds to 0.0 in floats: the box would lose E000
    assert esa_worldcover_tiles((-1.0, -1.0, tiny, tiny)) == ["N00E000", "N00W003", "S03E000", "S03W003"]


def test_fromglc10_edges():
    assert fromglc10_tiles((114.5, 30.5, 116.0, 32.0)) == ["fromglc10v01_30_114"]
    assert fromglc10_tiles((-2.0, -2.0, 0.0, 0.0)) == ["fromglc10v01_-2_-2"]
    assert fromglc10_tiles((-2.0, -2.0, 0.0000001, 0.0)) == ["fromglc10v01_-2_-2", "fromglc10v01_-2_0"]


def test_esri_edges():
    assert esri_lulc_tiles((108.0, 24.0, 114.0, 32.0)) == ["49R"]
    assert esri_lulc_tiles((108.0, 24.0, 114.0, 32.0001)) == ["49R", "49S"]


def test_multi_tile_counts():
    bounds = (96.0, 18.0, 114.0, 30.0)  # on 3°, 2° and 6° grid lines: no tile beyond them
    assert len(esa_worldcover_tiles(bounds)) == 6 * 4
    assert len(fromglc10_tiles(bounds)) == 9 * 6
    # Zones 47, 48, 49 (96–114 °E) × bands Q, R (16–24, 24–32 °N).
    assert esri_lulc_tiles(bounds) == ["47Q", "47R", "48Q", "48R", "49Q", "49R"]


def test_world_has_every_tile_once():
    world = (-180.0, -90.0, 180.0, 90.0)
    assert len(esa_worldcover_tiles(world)) == 120 * 60
    assert len(fromglc10_tiles(world)) == 180 * 90
    # 60 zones × 20 bands, less 32X, 34X and 36X (absorbed by the Svalbard zones).
    assert len(esri_lulc_tiles((-180.0, -80.0, 180.0, 84.0))) == 60 * 20 - 3


def test_points_on_the_far_edges_of_the_world():
    assert esa_worldcover_tiles(point(180.0, 90.0)) == ["N87E177"]
    assert esri_lulc_tiles(point(180.0, 84.0)) == ["60X"]


@pytest.mark.parametrize("bounds, expected", [
    (point(5.3, 60.4), ["32V"]),                  # Bergen: 32V reaches west to 3 °E
    ((2.0, 59.0, 4.0, 61.0), ["31V", "32V"]),
    ((1.0, 57.0, 2.5, 58.0), ["31V"]),
    (point(4.0, 55.0), ["31U"]),                  # band U keeps the regular zones
    (point(4.0, 65.0), ["31W"]),                  # and so does band W
])
def test_norway_exception(bounds, expected):
    assert esri_lulc_tiles(bounds) == expected


@pytest.mark.parametrize("bounds, expected", [
    (point(15.6, 78.2), ["33X"]),                 # Longyearbyen (regular zone: 33)
    (point(8.0, 79.0), ["31X"]),                  # regular zone 32 does not exist in X
    (point(20.0, 80.0), ["33X"]),                 # regular zone 34 does not exist in X
    (point(32.0, 80.0), ["35X"]),                 # regular zone 36 does not exist in X
    (point(40.0, 80.0), ["37X"]),
    ((0.0, 72.0, 42.0, 84.0), ["31X", "33X", "35X", "37X"]),
    ((7.0, 71.0, 8.5, 73.0), ["31X", "32W"]),         # 32W below, 31X above 72 °N
])
def test_svalbard_exception(bounds, expected):
    assert esri_lulc_tiles(bounds) == expected


@pytest.mark.parametrize("function", [esa_worldcover_tiles, fromglc10_tiles, esri_lulc_tiles])
def test_bad_bounds(function):
    with pytest.raises(ValueError, match="antimeridian"):
        function((179.0, 10.0, -179.0, 11.0))
    with pytest.raises(ValueError, match="south > north"):
        function((10.0, 11.0, 11.0, 10.0))
    with pytest.raises(ValueError, match="outside"):
        function((10.0, 10.0, 190.0, 11.0))


def test_esri_outside_the_utm_grid():
    with pytest.raises(ValueError, match="84°N"):
        esri_lulc_tiles((10.0, 83.0, 11.0, 85.0))
