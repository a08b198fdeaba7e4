"""Regions: slugs, clear errors for bad files, and the per-region geometry in the run's CRS."""

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import box

from l2h.core.errors import InputError
from l2h.inputs.regions import (
    dissolved_regions,
    region_bounds_lonlat,
    region_geometries,
    slugify,
    write_region_geometry,
)


@pytest.mark.parametrize("name, slug", [
    ("Côte Verte", "cote_verte"), ("Hubei", "hubei"), ("Inner  Mongolia", "inner_mongolia"),
    ("Île-de-France", "ile_de_france"), ("São Tomé", "sao_tome"), ("湖北", ""),
])
def test_slugify(name, slug):
    assert slugify(name) == slug


def _regions(tmp_path, names, crs="EPSG:4326", **columns):
    geoms = [box(114 + 0.01 * i, 30, 114 + 0.01 * (i + 1), 30.01) for i in range(len(names))]
    frame = gpd.GeoDataFrame({"name": names, **columns}, geometry=geoms, crs=crs)
    path = tmp_path / "regions.gpkg"
    frame.to_file(path, engine="pyogrio")
    return path


def test_list_regions_sorted_and_merged(tmp_path):
    path = _regions(tmp_path, ["Côte Verte", "Alpha", "Côte Verte"])
    regions = dissolved_regions(path, "name")
    assert list(regions.index) == ["alpha", "cote_verte"] and regions.loc["cote_verte", "name"] == "Côte Verte"
    assert region_bounds_lonlat(regions)["cote_verte"] == pytest.approx((114.0, 30.0, 114.03, 30.01))
    assert region_geometries(regions, "EPSG:32650")["cote_verte"].area / 1e6 == pytest.approx(2 * 0.9638 * 1.1094, rel=0.01)


def test_missing_name_field_lists_available(tmp_path):
    path = _regions(tmp_path, ["A"], code=["x"])
    with pytest.raises(InputError, match=r"no attribute 'NAME_1' \(config key regions.name_field\).*name, code"):
        dissolved_regions(path, "NAME_1")


def test_non_latin_names_need_slug_field(tmp_path):
    path = _regions(tmp_path, ["湖北", "湖南"], pinyin=["Hubei", "Hunan"])
    with pytest.raises(InputError, match="regions.slug_field"):
        dissolved_regions(path, "name")
    assert list(dissolved_regions(path, "name", slug_field="pinyin").index) == ["hubei", "hunan"]


def test_slug_clash_is_an_error(tmp_path):
    path = _regions(tmp_path, ["Cote Verte", "Côte-Verte"])
    with pytest.raises(InputError, match="'cote_verte'"):
        dissolved_regions(path, "name")


def test_unreadable_file_named(tmp_path):
    bad = tmp_path / "regions.gpkg"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="regions.gpkg: cannot be read"):
        dissolved_regions(bad, "name")


def test_region_geometry_reprojected_with_area(tmp_path):
    path = _regions(tmp_path, ["Côte Verte", "Other", "Côte Verte"])
    out = tmp_path / "out" / "cote_verte.gpkg"
    attrs = write_region_geometry(path, "cote_verte", out, "EPSG:32650", "name")
    frame = gpd.read_file(out, engine="pyogrio")
    assert frame.crs.to_epsg() == 32650 and len(frame) == 1
    assert frame["name"][0] == "Côte Verte"
    # two 0.01° x 0.01° boxes at 30°N: ~ 2 * 0.963 km * 1.109 km
    assert frame.geometry[0].area / 1e6 == pytest.approx(2 * 0.9638 * 1.1094, rel=0.01)
    assert attrs["area_km2"] == pytest.approx(frame.geometry[0].area / 1e6)
    assert [p.name for p in out.parent.iterdir()] == ["cote_verte.gpkg"]  # no temp files left


def test_unknown_region_and_missing_crs(tmp_path):
    path = _regions(tmp_path, ["A"])
    with pytest.raises(InputError, match="no region with identifier 'b'; known: a"):
        write_region_geometry(path, "b", tmp_path / "b.gpkg", "EPSG:32650", "name")
    nocrs = tmp_path / "nocrs.shp"  # no .prj: no CRS
    pyogrio.write_dataframe(gpd.GeoDataFrame({"name": ["A"]}, geometry=[box(0, 0, 1, 1)]), nocrs)
    with pytest.raises(InputError, match="has no CRS"):
        write_region_geometry(nocrs, "a", tmp_path / "a.gpkg", "EPSG:32650", "name")


def test_an_empty_regions_file_holds_no_features(tmp_path):
    empty = tmp_path / "regions.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match=r"regions file .*regions.geojson: holds no features"):
        dissolved_regions(empty, "NAME")


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:2263"])  # degrees; US survey feet
def test_region_geometry_refuses_a_crs_not_in_metres(tmp_path, crs):
    from l2h.core.errors import ConfigError

    path = _regions(tmp_path, ["Hubei"])
    with pytest.raises(ConfigError, match=r"region geometry CRS .* is not a projected CRS in metres"):
        write_region_geometry(path, "hubei", tmp_path / "out.gpkg", crs, "name")
    assert not (tmp_path / "out.gpkg").exists()
