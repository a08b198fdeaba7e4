"""OSM roads on the real Helsinki extract: type filter, metric buffering, burning by cell cover."""


import numpy as np
import pytest
from helpers import SHARED
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
def test_extract_keeps_configured_types_buffered_in_metres():
    roads = extract_roads(HELSINKI, _helsinki_region(), CRS, WIDTHS)
    assert len(roads) > 50
    assert set(roads["highway"]) <= set(WIDTHS) and {"primary", "residential"} <= set(roads["highway"])
    assert roads.crs.to_string() == CRS
    # a flat-capped buffer of width w around a line of length L has area ~ w * L
    primary = roads[roads["highway"] == "primary"]
    assert (primary["width_m"] == 12.0).all()
    assert roads.geometry.intersects(_helsinki_region().buffer(12)).all()


@needs_helsinki
def test_footways_are_left_out_unless_configured():
    with_footways = extract_roads(HELSINKI, _helsinki_region(), CRS, {**WIDTHS, "footway": 2.0})
    without = extract_roads(HELSINKI, _helsinki_region(), CRS, WIDTHS)
    assert "footway" in set(with_footways["highway"]) and "footway" not in set(without["highway"])


@needs_helsinki
def test_roads_gpkg_roundtrip_and_cli(tmp_path):
    roads = extract_roads(HELSINKI, _helsinki_region(), CRS, WIDTHS)
    write_roads(roads, tmp_path / "roads.gpkg")
    back = read_roads(tmp_path / "roads.gpkg")
    assert len(back) == len(roads) and back.crs.to_epsg() == 32635


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
