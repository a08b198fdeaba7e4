"""OSM roads on the real Helsinki extract and a hand-made one: type filter, metric buffering, the
`l2h roads` command, burning by cell cover."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import LineString, box

from l2h.cli import main
from l2h.core.classes import IGNORE, ROAD
from l2h.inputs.regions import write_region_geometry
from l2h.labels.roads import extract_roads, read_roads, road_burner, write_roads

HELSINKI = SHARED / "data" / "real" / "osm" / "Helsinki.osm.pbf"
needs_helsinki = pytest.mark.skipif(not HELSINKI.exists(), reason=f"real OSM fixture absent ({HELSINKI}); "
                                    "it lives in the project's shared data, not in the repository")
CRS = "EPSG:32635"  # UTM 35N, metric
WIDTHS = {"primary": 12.0, "secondary": 9.0, "residential": 5.0}


def _helsinki_region():
    import geopandas as gpd

    centre = gpd.GeoSeries.from_xy([24.94], [60.17], crs="EPSG:4326").to_crs(CRS)[0]
    return box(centre.x - 1500, centre.y - 1500, centre.x + 1500, centre.y + 1500)


@needs_helsinki
def test_extract_keeps_configured_types_near_the_region():
    roads = extract_roads(HELSINKI, _helsinki_region(), CRS, WIDTHS)
    assert len(roads) > 50
    assert set(roads["highway"]) <= set(WIDTHS) and {"primary", "residential"} <= set(roads["highway"])
    assert roads.crs.to_string() == CRS
    assert (roads["width_m"] == roads["highway"].map(WIDTHS)).all()
    assert roads.geometry.intersects(_helsinki_region().buffer(12)).all()


def _write_osm(path: Path, ways: list[tuple[str, list[tuple[float, float]]]]) -> Path:
    """An OSM XML file of highway ways whose nodes are given in CRS (UTM 35N) metres; OSM stores lon/lat."""
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    nodes, way_lines = [], []
    for way_id, (highway, points) in enumerate(ways, start=1):
        refs = []
        for x, y in points:
            lon, lat = to_lonlat.transform(x, y)
            nodes.append(f'  <node id="{len(nodes) + 1}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>')
            refs.append(f'    <nd ref="{len(nodes)}"/>')
        way_lines += [f'  <way id="{way_id}" version="1">', *refs,
                      f'    <tag k="highway" v="{highway}"/>', "  </way>"]
    path.write_text("\n".join(['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6">', *nodes,
                               *way_lines, "</osm>", ""]), encoding="utf-8")
    return path


def test_roads_from_lon_lat_are_buffered_by_their_width_in_metres(tmp_path):
    # straight roads laid out in UTM metres: a 1000 m diagonal primary (a 600-800-1000 triangle) and a
    # 400 m east-west residential; OSM carries them in degrees (7 decimals: <= 2 cm off)
    x0, y0 = 385000.0, 6672000.0
    osm = _write_osm(tmp_path / "roads.osm", [
        ("primary", [(x0, y0), (x0 + 600, y0 + 800)]),
        ("residential", [(x0 + 100, y0 + 500), (x0 + 500, y0 + 500)]),
        ("footway", [(x0 + 100, y0 + 100), (x0 + 500, y0 + 100)]),  # not configured: left out
    ])
    region = box(x0 - 100, y0 - 100, x0 + 700, y0 + 900)
    roads = extract_roads(osm, region, CRS, {"primary": 12.0, "residential": 5.0})
    assert sorted(roads["highway"]) == ["primary", "residential"] and roads.crs.to_string() == CRS
    for highway, width, length in (("primary", 12.0, 1000.0), ("residential", 5.0, 400.0)):
        [surface] = roads.geometry[roads["highway"] == highway]
        # a flat-capped buffer of a straight line: a width x length rectangle (area within 0.1 %)
        sides = sorted(_rectangle_sides(surface.minimum_rotated_rectangle))
        assert sides[0] == pytest.approx(width, abs=0.01) and sides[1] == pytest.approx(length, abs=0.05)
        assert surface.area == pytest.approx(width * length, rel=1e-3)
        assert surface.minimum_rotated_rectangle.area == pytest.approx(surface.area, rel=1e-4)  # flat caps


def _rectangle_sides(rectangle) -> tuple[float, float]:
    (ax, ay), (bx, by), (cx, cy) = list(rectangle.exterior.coords)[:3]
    return math.hypot(bx - ax, by - ay), math.hypot(cx - bx, cy - by)


@needs_helsinki
def test_footways_are_left_out_unless_configured():
    with_footways = extract_roads(HELSINKI, _helsinki_region(), CRS, {**WIDTHS, "footway": 2.0})
    without = extract_roads(HELSINKI, _helsinki_region(), CRS, WIDTHS)
    assert "footway" in set(with_footways["highway"]) and "footway" not in set(without["highway"])


@needs_helsinki
def test_roads_gpkg_roundtrip_and_cli(tmp_path, capsys):
    import geopandas as gpd

    roads = extract_roads(HELSINKI, _helsinki_region(), CRS, WIDTHS)
    write_roads(roads, tmp_path / "roads.gpkg")
    back = read_roads(tmp_path / "roads.gpkg")
    assert len(back) == len(roads) and back.crs.to_epsg() == 32635
    assert list(back["highway"]) == list(roads["highway"]) and list(back["width_m"]) == list(roads["width_m"])
    assert all(a.equals(b) for a, b in zip(back.geometry, roads.geometry))

    # `l2h roads` on the same region writes the same surfaces and says how many
    regions = tmp_path / "regions.gpkg"
    gpd.GeoDataFrame({"name": ["Helsinki"]}, geometry=[_helsinki_region()], crs=CRS).to_file(regions)
    write_region_geometry(regions, "helsinki", tmp_path / "helsinki.gpkg", CRS, "name")
    code = main(["roads", "--osm", str(HELSINKI), "--region", str(tmp_path / "helsinki.gpkg"),
                 "--widths", json.dumps(WIDTHS), "--out", str(tmp_path / "cli.gpkg")])
    assert code == 0
    assert f"region helsinki: {len(roads)} road segment(s) written to {tmp_path / 'cli.gpkg'}" in capsys.readouterr().err
    cli = read_roads(tmp_path / "cli.gpkg")
    assert list(cli["highway"]) == list(roads["highway"]) and cli.crs.to_epsg() == 32635
    assert all(a.equals(b) for a, b in zip(cli.geometry, back.geometry))


def test_burn_by_cover_share():
    # a 10 m wide east-west road along y = 45 .. 55 in a 10 m grid whose rows span 40-50 and 50-60
    roads = _frame([LineString([(0, 50), (100, 50)]).buffer(5, cap_style="flat")])
    label = np.full((10, 10), 3, np.uint8)
    label[:, 0] = 0  # outside the region stays nodata
    transform = from_origin(0, 100, 10, 10)
    road_burner(roads, min_cover=0.3)(label, transform, (0, 0, 100, 100))
    assert (label[4:6, 1:] == ROAD).all()  # rows 40-50 and 50-60 are each half covered
    assert (label[:4, 1:] == 3).all() and (label[6:, 1:] == 3).all()
    assert (label[:, 0] == 0).all()
    strict = np.full((10, 10), 3, np.uint8)
    road_burner(roads, min_cover=0.7)(strict, transform, (0, 0, 100, 100))
    assert (strict != ROAD).all()  # half cover (0.5-0.6 on the 2 m sub-grid) is below 0.7


def test_narrow_track_does_not_become_road():
    roads = _frame([LineString([(0, 55), (100, 55)]).buffer(1.5, cap_style="flat")])
    label = np.full((10, 10), IGNORE, np.uint8)
    road_burner(roads, min_cover=0.3)(label, from_origin(0, 100, 10, 10), (0, 0, 100, 100))
    assert (label == IGNORE).all()


def _frame(geoms):
    import geopandas as gpd

    return gpd.GeoDataFrame({"highway": ["primary"] * len(geoms), "name": [""] * len(geoms),
                             "width_m": [10.0] * len(geoms)}, geometry=geoms, crs="EPSG:32650")


@needs_helsinki
def test_no_roads_in_region_warns_and_writes_empty(tmp_path, capsys):
    import geopandas as gpd

    regions = tmp_path / "regions.gpkg"
    gpd.GeoDataFrame({"name": ["Lapland"]}, geometry=[box(26.0, 68.0, 26.1, 68.1)], crs="EPSG:4326").to_file(regions)
    write_region_geometry(regions, "lapland", tmp_path / "lapland.gpkg", CRS, "name")
    code = main(["roads", "--osm", str(HELSINKI), "--region", str(tmp_path / "lapland.gpkg"),
                 "--widths", '{"primary": 12}', "--out", str(tmp_path / "roads.gpkg")])
    assert code == 0
    assert "WARNING" in (err := capsys.readouterr().err) and "has no roads of the configured types" in err
    roads = read_roads(tmp_path / "roads.gpkg")
    assert roads.empty
    label = np.full((4, 4), 3, np.uint8)
    road_burner(roads, 0.3)(label, from_origin(0, 40, 10, 10), (0, 0, 40, 40))
    assert (label == 3).all()
