"""The demo world: real formats, designed properties, determinism (l2h.demo, l2h.core.quicklook)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from pyproj import Transformer
from rasterio.warp import Resampling, reproject
from scipy import ndimage

from l2h.core.classes import ESA_WORLDCOVER, ESRI_LULC_ANNUAL, FROM_GLC10, ROAD
from l2h.core.errors import InputError
from l2h.core.quicklook import block_mode, legend_entries, quicklook_from_file, save_class_quicklook
from l2h.demo.world import SURVEY_LEGEND, generate_demo_world

ESA_DIR = "mirror/esa_worldcover/v200/2021/map"
FROMGLC_DIR = "mirror/fromglc10/data/fromglc10_2017v01"
ESRI_DIR = "mirror/esri_lulc/lulctimeseriesv003/lc2021"
TABLES = {"esa_worldcover": ESA_WORLDCOVER, "fromglc10": FROM_GLC10, "esri_lulc_annual": ESRI_LULC_ANNUAL}
FROMGLC_PIXEL = 0.00008983152841195214


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _truth(world: Path) -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(world / "truth/truth_1m.tif") as ds:
        return ds.read(1), ds.transform


def _province_bounds(world: Path) -> tuple[float, float, float, float]:
    return tuple(pyogrio.read_dataframe(world / "regions/provinces.gpkg").total_bounds)


def _lat_lon_tiles(bounds, size):
    lon0, lat0, lon1, lat1 = bounds
    lats = range(math.floor(lat0 / size) * size, math.floor(lat1 / size) * size + 1, size)
    lons = range(math.floor(lon0 / size) * size, math.floor(lon1 / size) * size + 1, size)
    return [(lat, lon) for lat in lats for lon in lons]


def _points(world: Path) -> list[dict]:
    with open(world / "reference/points.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- determinism
def _size(world: Path) -> tuple[int, int]:
    manifest = json.loads((world / "manifest.json").read_text(encoding="utf-8"))
    return manifest["width_m"], manifest["height_m"]


def test_same_seed_gives_byte_identical_files(small_demo_world, tmp_path):
    again = tmp_path / "again"
    width, height = _size(small_demo_world)
    generate_demo_world(again, seed=42, width_m=width, height_m=height)
    first, second = _tree_hashes(small_demo_world), _tree_hashes(again)
    assert first.keys() == second.keys()
    assert first == second
    manifest = json.loads((small_demo_world / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert listed == {k: v for k, v in first.items() if k != "manifest.json"}


def test_different_seed_gives_different_world(small_demo_world, tmp_path):
    other = tmp_path / "seed7"
    width, height = _size(small_demo_world)
    generate_demo_world(other, seed=7, width_m=width, height_m=height)
    a, _ = _truth(small_demo_world)
    b, _ = _truth(other)
    assert a.shape == b.shape
    assert (a != b).mean() > 0.2
    assert _sha(small_demo_world / "imagery/demo_imagery.tif") != _sha(other / "imagery/demo_imagery.tif")


# --------------------------------------------------------------------------- truth and imagery
def test_truth_grid_location_and_classes(demo_world):
    with rasterio.open(demo_world / "truth/truth_1m.tif") as ds:
        assert ds.crs.to_epsg() == 32650
        assert ds.res == (1.0, 1.0)
        assert (ds.width, ds.height) == (4096, 3072)
        assert ds.transform.c % 512 == 0 and ds.transform.f % 512 == 0
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert ds.colormap(1)[1][:3] == (0, 100, 0)
        truth = ds.read(1)
        transform = ds.transform
    assert set(np.unique(truth).tolist()) == set(range(12))  # all 11 classes + nodata outside
    # the country keeps >= 40 m from every raster edge
    for edge in (truth[:40], truth[-40:], truth[:, :40], truth[:, -40:]):
        assert not edge.any()
    # the country straddles 114 E and 30 N (ESA / FROM-GLC10 tile corner, UTM 49/50 boundary)
    rows, cols = np.nonzero(truth[::16, ::16])
    xs, ys = rasterio.transform.xy(transform, rows * 16, cols * 16)
    lon, lat = Transformer.from_crs(32650, 4326, always_xy=True).transform(xs, ys)
    assert lon.min() < 114.0 < lon.max() and lat.min() < 30.0 < lat.max()


def test_roads_and_buildings_are_too_small_for_10m(demo_world):
    truth, _ = _truth(demo_world)
    road = truth == ROAD
    assert road.mean() > 0.003
    depth = ndimage.distance_transform_edt(road)[road]
    # carriageways <= 9 m (distance to the verge <= 4.5 px); only junction corners go further
    assert np.percentile(depth, 99.5) <= 4.5
    assert depth.max() <= 7.0
    # at 10 m majority most of the road and building area disappears
    h, w = (truth.shape[0] // 10) * 10, (truth.shape[1] // 10) * 10
    blocks = truth[:h, :w].reshape(h // 10, 10, w // 10, 10)
    for cls, limit in ((ROAD, 0.5), (5, 0.8)):
        frac = (blocks == cls).mean(axis=(1, 3))
        majority = np.repeat(np.repeat(frac > 0.5, 10, 0), 10, 1)
        in_cls = truth[:h, :w] == cls
        assert majority[in_cls].mean() < limit


def test_imagery_format_and_spectra(demo_world):
    truth, transform = _truth(demo_world)
    with rasterio.open(demo_world / "imagery/demo_imagery.tif") as ds:
        assert ds.count == 4 and ds.dtypes == ("uint8",) * 4
        assert ds.crs.to_epsg() == 32650 and ds.transform == transform
        assert ds.nodata == 0
        assert ds.descriptions == ("red", "green", "blue", "nir")
        assert ds.block_shapes[0] == (512, 512)
        assert ds.compression.name.lower() == "deflate"
        img = ds.read()
    valid = img.any(axis=0)
    assert not valid[0].any() and not valid[-1].any() and not valid[:, 0].any() and not valid[:, -1].any()
    assert (img[:, truth > 0] >= 1).all()  # data everywhere in the country
    assert (valid & (truth == 0)).sum() > 0  # the footprint is a bit larger than the country
    nir, red = img[3].astype(float), img[0].astype(float)
    ndvi = (nir - red) / np.maximum(nir + red, 1)
    means = {c: ndvi[truth == c].mean() for c in (1, 3, 4, 7, 9)}
    assert means[1] > 0.3 and means[3] > 0.15 and means[7] < 0 and means[9] < 0.05
    # separable but not trivially: crop and grass overlap in plain per-pixel spectra
    assert abs(means[3] - means[4]) < 0.15


# --------------------------------------------------------------------------- products
def test_product_tiles_names_grids_and_codes(demo_world):
    bounds = _province_bounds(demo_world)
    esa = {f"{'N' if lat >= 0 else 'S'}{abs(lat):02d}{'E' if lon >= 0 else 'W'}{abs(lon):03d}": (lat, lon)
           for lat, lon in _lat_lon_tiles(bounds, 3)}
    assert set(esa) == {"N27E111", "N27E114", "N30E111", "N30E114"}
    files = sorted(p.name for p in (demo_world / ESA_DIR).glob("*.tif"))
    assert files == sorted(f"ESA_WorldCover_10m_2021_v200_{n}_Map.tif" for n in esa)
    for name, (lat, lon) in esa.items():
        with rasterio.open(demo_world / ESA_DIR / f"ESA_WorldCover_10m_2021_v200_{name}_Map.tif") as ds:
            px = 1 / 12000
            assert ds.crs.to_epsg() == 4326
            assert math.isclose(ds.transform.a, px, rel_tol=1e-12) and math.isclose(-ds.transform.e, px, rel_tol=1e-12)
            col0, row0 = (ds.transform.c - lon) / px, (lat + 3 - ds.transform.f) / px
            assert abs(col0 - round(col0)) < 1e-6 and abs(row0 - round(row0)) < 1e-6  # on the tile's grid
            assert lon - 1e-9 <= ds.bounds.left and ds.bounds.right <= lon + 3 + 1e-9
            assert lat - 1e-9 <= ds.bounds.bottom and ds.bounds.top <= lat + 3 + 1e-9
            data = ds.read(1)
            assert ds.nodata == 0 and data.dtype == np.uint8 and ds.profile["tiled"]
            assert set(np.unique(data).tolist()) <= {0, *ESA_WORLDCOVER}
            assert data.any()

    fg = {f"{lat}_{lon}": (lat, lon) for lat, lon in _lat_lon_tiles(bounds, 2)}
    assert set(fg) == {"28_112", "28_114", "30_112", "30_114"}
    assert sorted(p.name for p in (demo_world / FROMGLC_DIR).glob("*.tif")) == sorted(f"fromglc10v01_{n}.tif" for n in fg)
    for name, (lat, lon) in fg.items():
        with rasterio.open(demo_world / FROMGLC_DIR / f"fromglc10v01_{name}.tif") as ds:
            assert ds.crs.to_epsg() == 4326 and math.isclose(ds.transform.a, FROMGLC_PIXEL, rel_tol=1e-12)
            col0, row0 = (ds.transform.c - lon) / FROMGLC_PIXEL, (lat + 2 - ds.transform.f) / FROMGLC_PIXEL
            assert abs(col0 - round(col0)) < 1e-6 and abs(row0 - round(row0)) < 1e-6
            assert ds.bounds.left >= lon - 1e-9 and ds.bounds.top <= lat + 2 + 1e-9
            data = ds.read(1)
            assert set(np.unique(data).tolist()) <= {0, *FROM_GLC10} and data.any()

    lon0, lat0, lon1, lat1 = bounds
    zones = range(math.floor((lon0 + 180) / 6) + 1, math.floor((lon1 + 180) / 6) + 2)
    band = "CDEFGHJKLMNPQRSTUVWX"[math.floor((lat0 + 80) / 8)]
    assert band == "R" and list(zones) == [49, 50]
    assert sorted(p.name for p in (demo_world / ESRI_DIR).glob("*.tif")) == \
        [f"{z}{band}_20210101-20220101.tif" for z in zones]
    for z in zones:
        with rasterio.open(demo_world / ESRI_DIR / f"{z}{band}_20210101-20220101.tif") as ds:
            assert ds.crs.to_epsg() == 32600 + z and ds.res == (10.0, 10.0)
            assert ds.transform.c % 10 == 0 and ds.transform.f % 10 == 0
            data = ds.read(1)
            assert set(np.unique(data).tolist()) <= {0, *ESRI_LULC_ANNUAL} and data.any()
            # the file only holds its own zone: pixel centres with data lie within the zone's 6 degrees
            rows, cols = np.nonzero(data)
            xs, ys = rasterio.transform.xy(ds.transform, rows, cols)
            lon, _ = Transformer.from_crs(ds.crs, 4326, always_xy=True).transform(xs, ys)
            west = -180 + (z - 1) * 6
            assert lon.min() >= west and lon.max() < west + 6


def _product_sampler(world: Path, key: str):
    """lon, lat -> product code at that point (0 = nodata), over all of the product's files."""
    folder = {"esa_worldcover": ESA_DIR, "fromglc10": FROMGLC_DIR, "esri_lulc_annual": ESRI_DIR}[key]
    rasters = []
    for path in sorted((world / folder).glob("*.tif")):
        with rasterio.open(path) as ds:
            rasters.append((ds.read(1), ds.transform, Transformer.from_crs(4326, ds.crs, always_xy=True)))

    def sample(lon: float, lat: float) -> int:
        for data, transform, to_crs in rasters:
            row, col = rasterio.transform.rowcol(transform, *to_crs.transform(lon, lat))
            if 0 <= row < data.shape[0] and 0 <= col < data.shape[1] and data[row, col]:
                return int(data[row, col])
        return 0

    return sample


def test_products_agree_partly_with_truth_and_disagree_with_each_other(demo_world):
    manifest = json.loads((demo_world / "manifest.json").read_text(encoding="utf-8"))
    for key in TABLES:
        assert 0.6 <= manifest["product_agreement"][key] <= 0.95, (key, manifest["product_agreement"][key])
    # recompute ESA's agreement from the files on disk
    with rasterio.open(demo_world / "truth/truth_1m.tif") as tds:
        truth, t_transform, t_crs = tds.read(1), tds.transform, tds.crs
    agree = total = 0
    for path in sorted((demo_world / ESA_DIR).glob("*.tif")):
        with rasterio.open(path) as ds:
            product = ds.read(1)
            ref = np.zeros_like(product)
            reproject(truth, ref, src_transform=t_transform, src_crs=t_crs, dst_transform=ds.transform,
                      dst_crs=ds.crs, resampling=Resampling.mode, src_nodata=0, dst_nodata=0)
        scored = ref > 0
        ok = [t in ESA_WORLDCOVER[p].classes if p in ESA_WORLDCOVER else False
              for p, t in zip(product[scored], ref[scored])]
        agree += sum(ok)
        total += len(ok)
    assert abs(agree / total - manifest["product_agreement"]["esa_worldcover"]) < 0.01
    # per reference point: which product is right; errors must differ between products
    pts = _points(demo_world)
    right = {}
    for key, table in TABLES.items():
        sample = _product_sampler(demo_world, key)
        right[key] = np.array([
            int(p["class"]) in (table[v].classes if v in table else frozenset())
            for p in pts for v in [sample(float(p["x"]), float(p["y"]))]
        ])
        assert 0.4 < right[key].mean() < 0.97
    keys = list(TABLES)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert (right[a] != right[b]).mean() > 0.03, (a, b)


# --------------------------------------------------------------------------- OSM
def test_osm_readable_by_gdal_with_offset_roads(demo_world):
    path = demo_world / "osm/demo.osm"
    lines = pyogrio.read_dataframe(path, layer="lines")
    assert "highway" in lines.columns and lines.crs.to_epsg() == 4326
    kinds = set(lines["highway"].dropna())
    assert {"primary", "secondary", "tertiary", "residential", "track", "footway"} <= kinds
    roads = lines[lines["highway"].notna()]
    assert roads["name"].notna().all() and (roads["name"].str.len() > 0).all()
    assert (lines["waterway"] == "river").any()
    polys = pyogrio.read_dataframe(path, layer="multipolygons")
    manifest = json.loads((demo_world / "manifest.json").read_text(encoding="utf-8"))
    assert (polys["building"] == "yes").sum() == manifest["osm"]["buildings"] > 100
    text = path.read_text(encoding="utf-8")
    coords = re.findall(r'(?:lat|lon)="(-?\d+\.\d+)"', text)
    assert coords and max(len(c.split(".")[1]) for c in coords) <= 7

    # mapped roads (not footpaths) lie on the truth's roads, within the 1-2 m OSM offset
    truth, transform = _truth(demo_world)
    dist = ndimage.distance_transform_edt(truth != ROAD)
    inner = ndimage.binary_erosion(truth > 0, iterations=12)
    utm = roads[roads["highway"] != "footway"].to_crs(32650)
    samples = []
    for geom in utm.geometry:
        for d in np.arange(0.0, geom.length, 3.0):
            p = geom.interpolate(d)
            row, col = rasterio.transform.rowcol(transform, p.x, p.y)
            if 0 <= row < truth.shape[0] and 0 <= col < truth.shape[1] and inner[row, col]:
                samples.append(dist[row, col])
    samples = np.array(samples)
    assert len(samples) > 1000
    assert np.percentile(samples, 99) <= 2.0 and samples.max() <= 3.0
    # footpaths are in OSM only
    paths = lines[lines["highway"] == "footway"].to_crs(32650)
    on_road = []
    for geom in paths.geometry:
        for d in np.arange(0.0, geom.length, 3.0):
            p = geom.interpolate(d)
            row, col = rasterio.transform.rowcol(transform, p.x, p.y)
            if 0 <= row < truth.shape[0] and 0 <= col < truth.shape[1] and inner[row, col]:
                on_road.append(dist[row, col] == 0)
    assert np.mean(on_road) < 0.2


# --------------------------------------------------------------------------- provinces, points, survey
def test_provinces(demo_world):
    assert [layer[0] for layer in pyogrio.list_layers(demo_world / "regions/provinces.gpkg")] == ["provinces"]
    prov = pyogrio.read_dataframe(demo_world / "regions/provinces.gpkg", layer="provinces")
    assert prov.crs.to_epsg() == 4326
    assert len(prov) == 3 and {"name", "code"} <= set(prov.columns)
    assert all(isinstance(c, str) and c for c in prov["code"])
    special = [n for n in prov["name"] if " " in n and not n.isascii()]
    assert len(special) == 1
    assert sum(n.isascii() and " " not in n for n in prov["name"]) == 2
    utm = prov.to_crs(32650)
    assert (utm.area >= 3e6).all()
    union = utm.union_all()
    assert abs(sum(utm.area) - union.area) < 1.0  # no overlaps
    truth, _ = _truth(demo_world)
    assert abs(union.area - (truth > 0).sum()) / union.area < 0.002


def test_reference_points(demo_world):
    pts = _points(demo_world)
    assert list(pts[0].keys()) == ["x", "y", "crs", "class"]
    assert 1900 <= len(pts) <= 2100
    assert {p["crs"] for p in pts} == {"EPSG:4326"}
    classes = np.array([int(p["class"]) for p in pts])
    counts = np.bincount(classes, minlength=12)
    assert set(classes.tolist()) == set(range(1, 12))
    assert counts[1:].min() >= 60
    truth, transform = _truth(demo_world)
    share_truth = np.bincount(truth.ravel(), minlength=12)[1:] / (truth > 0).sum()
    big = int(np.argmax(share_truth)) + 1
    assert counts[big] == counts.max()  # the rest is proportional to area
    lon = np.array([float(p["x"]) for p in pts])
    lat = np.array([float(p["y"]) for p in pts])
    assert (100 < lon).all() and (lon < 130).all() and (0 < lat).all() and (lat < 60).all()
    xs, ys = Transformer.from_crs(4326, 32650, always_xy=True).transform(lon, lat)
    rows, cols = rasterio.transform.rowcol(transform, xs, ys)
    assert (truth[np.array(rows), np.array(cols)] == classes).all()
    # pixel centres
    fx = (np.asarray(xs) - transform.c) % 1.0
    assert np.allclose(fx, 0.5, atol=1e-3)


def test_survey_matches_truth(demo_world):
    covered = sorted(c for codes in SURVEY_LEGEND.values() for c in codes)
    assert covered == list(range(1, 12))  # every class in exactly one survey class
    with open(demo_world / "survey/survey.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == ["province", "class", "area_km2"]
    names = set(pyogrio.read_dataframe(demo_world / "regions/provinces.gpkg")["name"])
    assert {r["province"] for r in rows} == names
    assert {r["class"] for r in rows} == set(SURVEY_LEGEND)
    truth, _ = _truth(demo_world)
    counts = np.bincount(truth.ravel(), minlength=12)
    total = sum(float(r["area_km2"]) for r in rows)
    assert total == pytest.approx((truth > 0).sum() / 1e6, abs=1e-5)
    for name, codes in SURVEY_LEGEND.items():
        area = sum(float(r["area_km2"]) for r in rows if r["class"] == name)
        assert area == pytest.approx(sum(counts[c] for c in codes) / 1e6, abs=1e-5)


# --------------------------------------------------------------------------- manifest, quicklook
def test_manifest_lists_every_file(demo_world):
    manifest = json.loads((demo_world / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == 42 and manifest["crs"] == "EPSG:32650"
    assert (manifest["width_m"], manifest["height_m"]) == (4096, 3072)
    assert [p["name"] for p in manifest["provinces"]] == ["Northmoor", "Riverside", "Côte Verte"]
    assert sum(manifest["class_shares"].values()) == pytest.approx(1.0, abs=1e-4)
    on_disk = {p.relative_to(demo_world).as_posix() for p in demo_world.rglob("*") if p.is_file()}
    listed = {f["path"] for f in manifest["files"]}
    assert listed == on_disk - {"manifest.json"}
    for f in manifest["files"]:
        path = demo_world / f["path"]
        assert _sha(path) == f["sha256"] and path.stat().st_size == f["bytes"]
    assert not list(demo_world.rglob(".*tmp*"))  # no temporary leftovers


def test_manifest_is_written_last(tmp_path, monkeypatch):
    """Every file lands by an atomic rename, once each, and manifest.json's rename is the last one."""
    landed: list[str] = []
    real = os.replace

    def recording(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        landed.append(Path(dst).relative_to(world).as_posix())

    world = tmp_path / "world"
    monkeypatch.setattr(os, "replace", recording)
    generate_demo_world(world, seed=42, width_m=1024, height_m=1024)
    monkeypatch.undo()
    on_disk = sorted(p.relative_to(world).as_posix() for p in world.rglob("*") if p.is_file())
    assert sorted(landed) == on_disk  # nothing written in place, nothing renamed twice
    assert landed[-1] == "manifest.json"


def test_quicklook(demo_world, tmp_path):
    from PIL import Image

    with Image.open(demo_world / "quicklook.png") as im:
        assert im.format == "PNG" and im.width > im.height > 300
    classes = np.zeros((300, 500), np.uint8)
    classes[:, 100:300] = 3
    classes[:150, 300:] = 7
    out = save_class_quicklook(tmp_path / "q.png", classes, "test", max_side=100)
    with Image.open(out) as im:
        assert im.format == "PNG"
    labels = [label for label, _ in legend_entries(np.bincount(classes.ravel(), minlength=256))]
    assert len(labels) == 2 and labels[0].startswith("3 cropland") and labels[1].startswith("7 water")
    small = block_mode(classes, 5)
    assert small.shape == (60, 100)
    assert small[0, 10] == 0 and small[0, 30] == 3 and small[0, 80] == 7 and small[40, 80] == 0
    # from files: decimated read of the truth beside the imagery; unreadable input is an InputError
    out = quicklook_from_file(tmp_path / "truth.png", demo_world / "truth/truth_1m.tif", "truth",
                              rgb=demo_world / "imagery/demo_imagery.tif", max_side=400)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > im.height
    with pytest.raises(InputError):
        quicklook_from_file(tmp_path / "x.png", tmp_path / "missing.tif", "missing")
    assert not (tmp_path / "x.png").exists()
    # a thin class survives block mode where it is the largest class in the block
    thin = np.full((10, 10), 4, np.uint8)
    thin[:, :6] = 11
    assert block_mode(thin, 10)[0, 0] == 11


def test_strata_csv_holds_the_truths_class_areas(small_demo_world):
    truth, _ = _truth(small_demo_world)
    counts = np.bincount(truth.ravel(), minlength=12)
    with open(small_demo_world / "reference/strata.csv", newline="", encoding="utf-8") as f:
        strata = {int(r["stratum"]): float(r["area_km2"]) for r in csv.DictReader(f)}
    assert strata == {c: pytest.approx(counts[c] / 1e6, abs=1e-6) for c in range(1, 12) if counts[c]}
    assert {int(p["class"]) for p in _points(small_demo_world)} <= set(strata)


@pytest.mark.parametrize("title", ["Region $_$ of $^^$",  # not valid mathtext: would break the PNG
                                   "Region $x^2$ of Côte"])  # valid mathtext: would be drawn as math
def test_quicklook_title_is_plain_text(tmp_path, monkeypatch, title):
    """A region name is shown as written: "$" (Matplotlib's math delimiter) neither breaks the PNG
    nor is interpreted: the renderer is handed the title's exact string, as plain text."""
    from matplotlib.backends.backend_agg import RendererAgg
    from PIL import Image

    drawn: list[tuple[str, object]] = []
    real = RendererAgg.draw_text

    def recording(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        drawn.append((s, ismath))
        return real(self, gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    monkeypatch.setattr(RendererAgg, "draw_text", recording)
    classes = np.full((40, 60), 3, np.uint8)
    out = save_class_quicklook(tmp_path / "q.png", classes, title, max_side=60)
    with Image.open(out) as im:
        assert im.format == "PNG"
    assert {(s, ismath) for s, ismath in drawn if s.startswith("Region")} == {(title, False)}
