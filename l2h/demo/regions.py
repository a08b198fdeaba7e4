"""The demo country's outline and its three provinces, and the admin-boundary file they go into."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from shapely.geometry import Polygon, box

from l2h.core.io import atomic_path
from l2h.demo.grid import DemoGrid
from l2h.demo.noise import noise_1d, stream

COUNTRY_INSET_M = 45.0  # the outline stays at least this far inside the raster edges (>= 40 m)
# (display name, code); one name has a space and a non-ASCII character on purpose
PROVINCES: tuple[tuple[str, str], ...] = (
    ("Northmoor", "DW-01"),
    ("Riverside", "DW-02"),
    ("Côte Verte", "DW-03"),
)
FIXED_GPKG_DATE = "2020-01-01T00:00:00Z"


@dataclass
class Province:
    """A province of the demo country: name, code and polygon."""
    name: str
    code: str
    geometry: Polygon  # run CRS (UTM 50N)


def country_outline(grid: DemoGrid, seed: int) -> Polygon:
    """An irregular outline: the raster edge pushed inwards by 45 m plus a smooth random margin."""
    rng = stream(seed, "country")
    w, h = grid.width, grid.height
    amp = 0.06 * min(w, h)
    x_lo, x_hi, y_lo, y_hi = COUNTRY_INSET_M, w - COUNTRY_INSET_M, COUNTRY_INSET_M, h - COUNTRY_INSET_M
    sides = [  # (start, end, inward normal) in pixel coordinates (col, row), clockwise from top-left
        ((x_lo, y_lo), (x_hi, y_lo), (0, 1)),
        ((x_hi, y_lo), (x_hi, y_hi), (-1, 0)),
        ((x_hi, y_hi), (x_lo, y_hi), (0, -1)),
        ((x_lo, y_hi), (x_lo, y_lo), (1, 0)),
    ]
    step = 8.0
    pts = []
    for (a, b, _n) in sides:
        length = math.hypot(b[0] - a[0], b[1] - a[1])
        k = max(int(length / step), 1)
        for i in range(k):
            t = i / k
            pts.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), _n))
    inward = np.array([p[2] for p in pts], dtype=float)
    base = np.array([p[:2] for p in pts], dtype=float)
    margin = amp * (0.5 + 0.5 * np.tanh(noise_1d(rng, len(pts), scale=350.0 / step, wrap=True)))
    ring = base + inward * margin[:, None]
    poly = Polygon(ring).buffer(0)
    if poly.geom_type != "Polygon":
        poly = max(poly.geoms, key=lambda g: g.area)
    poly = poly.buffer(-25.0).buffer(25.0)  # round off the corners
    poly = Polygon(np.column_stack([grid.x0 + np.asarray(poly.exterior.xy[0]),
                                    grid.y0 - np.asarray(poly.exterior.xy[1])]))
    inner = box(*grid.bounds).buffer(-COUNTRY_INSET_M, join_style="mitre")
    return shapely.set_precision(poly.intersection(inner), 0.01).normalize()


def _wavy(p0, p1, amp: float, rng: np.random.Generator, step: float = 10.0) -> np.ndarray:
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    length = float(np.hypot(*(p1 - p0)))
    n = max(int(length / step), 2)
    t = np.linspace(0, 1, n)
    normal = np.array([-(p1 - p0)[1], (p1 - p0)[0]]) / length
    off = amp * noise_1d(rng, n, scale=250.0 / step)
    return p0 + t[:, None] * (p1 - p0) + off[:, None] * normal


def split_provinces(grid: DemoGrid, country: Polygon, seed: int) -> list[Province]:
    """West ("Riverside") | east split by a wavy north-south line; the east split again east-west
    into "Northmoor" (north, with the mountain) and "Côte Verte" (south)."""
    rng = stream(seed, "provinces")
    xmin, ymin, xmax, ymax = grid.bounds
    pad = 100.0
    line_a = _wavy(grid.xy(0.36, -0.05), grid.xy(0.36, 1.05), 0.03 * grid.width, rng)
    west = Polygon([(xmin - pad, ymax + pad), *map(tuple, line_a), (xmin - pad, ymin - pad)]).buffer(0)
    line_b = _wavy(grid.xy(0.20, 0.50), grid.xy(1.05, 0.50 + rng.uniform(-0.05, 0.05)), 0.04 * grid.height, rng)
    north = Polygon([*map(tuple, line_b), (xmax + pad, ymax + pad), (xmin + 0.2 * grid.width, ymax + pad)]).buffer(0)
    riverside = country.intersection(west)
    east = country.difference(west)
    northmoor = east.intersection(north)
    cote = east.difference(north)
    geoms = {"Northmoor": northmoor, "Riverside": riverside, "Côte Verte": cote}
    out = []
    for name, code in PROVINCES:
        g = geoms[name]
        if g.geom_type != "Polygon":  # drop slivers a wavy line may cut off
            g = max(g.geoms, key=lambda p: p.area)
        out.append(Province(name, code, shapely.set_precision(g, 0.01).normalize()))
    return out


def to_lonlat(geom, grid: DemoGrid, densify_m: float = 20.0):
    """A run-CRS geometry in EPSG:4326 (densified first so edges stay true after the warp)."""
    dense = shapely.segmentize(geom, densify_m)

    def warp(coords: np.ndarray) -> np.ndarray:
        lon, lat = grid.to_lonlat.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(dense, warp)


@contextlib.contextmanager
def fixed_gpkg_date(value: str = FIXED_GPKG_DATE) -> Iterator[None]:
    """Scope GDAL's OGR_CURRENT_DATE (GeoPackage timestamps) so the file is byte-reproducible."""
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": value})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})


def write_provinces(path: Path, provinces: list[Province], grid: DemoGrid) -> Path:
    """Write `provinces` (layer `provinces`, fields name/code) as a GeoPackage in EPSG:4326."""
    frame = gpd.GeoDataFrame(
        {"name": [p.name for p in provinces], "code": [p.code for p in provinces]},
        geometry=[to_lonlat(p.geometry, grid) for p in provinces], crs="EPSG:4326",
    )
    with fixed_gpkg_date(), atomic_path(path) as tmp:
        pyogrio.write_dataframe(frame, tmp, layer="provinces", driver="GPKG")
    return path

