"""The three 10 m land-cover products of the demo world, in their real formats and tile layouts.

Each product is the truth aggregated by majority (GDAL mode resampling) onto the product's own
grid, with product-specific designed errors, written with the product's real code table, CRS,
tile naming and folder layout into a local `mirror/` (only the tiles that touch the country; each
file holds the part of its tile near the country, on the tile's pixel grid).

- ESA WorldCover v200 (2021): EPSG:4326, 1/12000 deg, 3 x 3 deg tiles named by the lower-left
  corner (N30E114). Errors: 1-pixel eastward misregistration; shrub mapped as grass in patches.
- FROM-GLC10 (2017): EPSG:4326, 0.0000898315... deg, 2 x 2 deg tiles `fromglc10v01_30_114`.
  Errors: blurred boundaries (5 x 5 mode filter); crop/grass confusion in patches; wetland partly
  mapped as water.
- Esri / Impact Observatory annual LULC (2021): one file per UTM zone + MGRS latitude band (49R in
  EPSG:32649, 50R in EPSG:32650), 10 m pixels on multiples of 10 m, nodata outside the zone.
  Errors: built area dilated by ~2 px; shrub mapped as trees and bare ground as rangeland in
  patches; one cloud patch (code 10).

Agreement with the truth's own 10 m majority (a pixel agrees when the truth class is in the set of
classes the product code is compatible with) is measured per product over the country.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject
from scipy import ndimage
from shapely.geometry import box

from l2h.core.classes import (
    BARE,
    BUILDING,
    CLASS_CODES,
    CROP,
    ESA_WORLDCOVER,
    ESRI_LULC_ANNUAL,
    FROM_GLC10,
    GRASS,
    ROAD,
    SHRUB,
    TREE,
    WATER,
    WETLAND,
    ProductCode,
    code_for_class,
)
from l2h.core.io import atomic_path, class_raster_profile
from l2h.demo.grid import DemoGrid
from l2h.demo.noise import quantile_threshold, smooth_noise, stream

log = logging.getLogger(__name__)

CLOUD = 200  # internal marker for the Esri cloud patch (written as code 10)

ESA_PIXEL = 1.0 / 12000.0
ESA_TILE_DEG = 3
FROMGLC_PIXEL = 0.00008983152841195214
FROMGLC_TILE_DEG = 2
ESRI_PIXEL = 10.0
MGRS_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # 8-degree latitude bands from 80 S

TEMPLATES = {
    "esa_worldcover": "mirror/esa_worldcover/v200/2021/map/ESA_WorldCover_10m_2021_v200_{tile}_Map.tif",
    "fromglc10": "mirror/fromglc10/data/fromglc10_2017v01/fromglc10v01_{tile}.tif",
    "esri_lulc_annual": "mirror/esri_lulc/lulctimeseriesv003/lc2021/{tile}_20210101-20220101.tif",
}
TABLES = {"esa_worldcover": ESA_WORLDCOVER, "fromglc10": FROM_GLC10, "esri_lulc_annual": ESRI_LULC_ANNUAL}

# official palettes (ESA WorldCover and Esri LULC embed colour tables; FROM-GLC10 files do not)
ESA_PALETTE = {10: "#006400", 20: "#ffbb22", 30: "#ffff4c", 40: "#f096ff", 50: "#fa0000", 60: "#b4b4b4",
               70: "#f0f0f0", 80: "#0064c8", 90: "#0096a0", 95: "#00cf75", 100: "#fae6a0"}
ESRI_PALETTE = {1: "#419bdf", 2: "#397d49", 4: "#7a87c6", 5: "#e49635", 7: "#c4281b", 8: "#a59b8f",
                9: "#a8ebff", 10: "#616161", 11: "#e3e2c3"}


# --------------------------------------------------------------------------- tile naming
def esa_tile_name(lat_ll: int, lon_ll: int) -> str:
    """ESA WorldCover tile name from its lower-left corner, e.g. (30, 114) -> 'N30E114'."""
    return f"{'N' if lat_ll >= 0 else 'S'}{abs(lat_ll):02d}{'E' if lon_ll >= 0 else 'W'}{abs(lon_ll):03d}"


def fromglc_tile_name(lat_ll: int, lon_ll: int) -> str:
    """FROM-GLC10 tile id from its lower-left corner, e.g. (30, 114) -> '30_114'."""
    return f"{lat_ll}_{lon_ll}"


def tiles_touching(geom_lonlat, size_deg: int) -> list[tuple[int, int]]:
    """Lower-left corners (lat, lon) of the size_deg x size_deg tiles that `geom_lonlat` touches."""
    lon0, lat0, lon1, lat1 = geom_lonlat.bounds
    out = []
    def starts(low: float, high: float) -> range:
        return range(math.floor(low / size_deg) * size_deg, math.floor(high / size_deg) * size_deg + 1, size_deg)

    for lat in starts(lat0, lat1):
        for lon in starts(lon0, lon1):
            if geom_lonlat.intersects(box(lon, lat, lon + size_deg, lat + size_deg)):
                out.append((lat, lon))
    return out


# --------------------------------------------------------------------------- windows
@dataclass
class Window:
    """One product tile of the demo world: its name, CRS, grid (transform, size) and valid pixels."""
    name: str  # tile name
    crs: CRS
    transform: Affine
    width: int
    height: int
    valid: np.ndarray | None = None  # pixels inside the tile / zone (None = all)


def _geographic_window(name: str, region, tile_west: float, tile_north: float, pixel: float, tile_deg: int,
                       margin: int = 3) -> Window | None:
    """The part of a lon/lat tile near `region` (lon/lat bounds), on the tile's own pixel grid."""
    n_tile = int(math.ceil(tile_deg / pixel - 1e-9))
    lon0, lat0, lon1, lat1 = region
    c0 = max(int(math.floor((lon0 - tile_west) / pixel)) - margin, 0)
    c1 = min(int(math.ceil((lon1 - tile_west) / pixel)) + margin, n_tile)
    r0 = max(int(math.floor((tile_north - lat1) / pixel)) - margin, 0)
    r1 = min(int(math.ceil((tile_north - lat0) / pixel)) + margin, n_tile)
    if c1 <= c0 or r1 <= r0:
        return None
    transform = Affine(pixel, 0.0, tile_west + c0 * pixel, 0.0, -pixel, tile_north - r0 * pixel)
    return Window(name, CRS.from_epsg(4326), transform, c1 - c0, r1 - r0)


def esa_windows(country_ll) -> list[Window]:
    """The ESA WorldCover tiles (3° lower-left) covering the country."""
    out = []
    for lat, lon in tiles_touching(country_ll, ESA_TILE_DEG):
        part = country_ll.intersection(box(lon, lat, lon + ESA_TILE_DEG, lat + ESA_TILE_DEG))
        win = _geographic_window(esa_tile_name(lat, lon), part.bounds, lon, lat + ESA_TILE_DEG, ESA_PIXEL, ESA_TILE_DEG)
        if win is not None:
            out.append(win)
    return out


def fromglc_windows(country_ll) -> list[Window]:
    """The FROM-GLC10 tiles (2° lower-left) covering the country."""
    out = []
    for lat, lon in tiles_touching(country_ll, FROMGLC_TILE_DEG):
        part = country_ll.intersection(box(lon, lat, lon + FROMGLC_TILE_DEG, lat + FROMGLC_TILE_DEG))
        win = _geographic_window(fromglc_tile_name(lat, lon), part.bounds, lon, lat + FROMGLC_TILE_DEG,
                                 FROMGLC_PIXEL, FROMGLC_TILE_DEG)
        if win is not None:
            out.append(win)
    return out


def esri_windows(country_ll) -> list[Window]:
    """One window per UTM zone + latitude band the country touches, 10 m aligned, masked to the zone."""
    from pyproj import Transformer

    out = []
    lon0, lat0, lon1, lat1 = country_ll.bounds
    zones = sorted({int(math.floor((lon + 180.0) / 6.0)) + 1 for lon in (lon0, lon1)})
    zones = list(range(zones[0], zones[-1] + 1))
    bands = sorted({int(math.floor((lat + 80.0) / 8.0)) for lat in (lat0, lat1)})
    for zone in zones:
        for band in range(bands[0], bands[-1] + 1):
            west, south = -180.0 + (zone - 1) * 6.0, -80.0 + band * 8.0
            cell = box(west, south, west + 6.0, south + 8.0)
            part = country_ll.intersection(cell)
            if part.is_empty or part.area == 0:
                continue
            epsg = (32600 if south >= 0 else 32700) + zone
            to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
            lonlat = shapely.get_coordinates(shapely.segmentize(part, 0.0005))
            xs, ys = to_utm.transform(lonlat[:, 0], lonlat[:, 1])
            m = 3 * ESRI_PIXEL
            x0 = math.floor((min(xs) - m) / ESRI_PIXEL) * ESRI_PIXEL
            x1 = math.ceil((max(xs) + m) / ESRI_PIXEL) * ESRI_PIXEL
            y0 = math.floor((min(ys) - m) / ESRI_PIXEL) * ESRI_PIXEL
            y1 = math.ceil((max(ys) + m) / ESRI_PIXEL) * ESRI_PIXEL
            width, height = int(round((x1 - x0) / ESRI_PIXEL)), int(round((y1 - y0) / ESRI_PIXEL))
            transform = Affine(ESRI_PIXEL, 0.0, x0, 0.0, -ESRI_PIXEL, y1)
            # pixels whose centre lies in the zone's 6-degree strip and the 8-degree band
            cols = x0 + (np.arange(width) + 0.5) * ESRI_PIXEL
            rows = y1 - (np.arange(height) + 0.5) * ESRI_PIXEL
            gx, gy = np.meshgrid(cols, rows)
            lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(gx, gy)
            valid = (lon >= west) & (lon < west + 6.0) & (lat >= south) & (lat < south + 8.0)
            name = f"{zone}{MGRS_BANDS[band]}"
            out.append(Window(name, CRS.from_epsg(epsg), transform, width, height, valid))
    return out


# --------------------------------------------------------------------------- rendering
@dataclass
class ProductResult:
    """What rendering one product wrote: its files and tiles."""
    key: str
    files: list[str] = field(default_factory=list)  # relative to the world folder
    tiles: list[str] = field(default_factory=list)
    agreement: float = 0.0
    pixels: int = 0


# classes no product code is compatible with, and the class whose code the products give them
# instead (a 10 m pixel that is mostly road is mapped as built-up / impervious)
FALLBACK_CLASS = {ROAD: BUILDING}


def _code_lut(table: dict[int, ProductCode], cloud_code: int | None = None) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for cls in CLASS_CODES:
        try:
            lut[cls] = code_for_class(table, cls)
        except KeyError:
            lut[cls] = code_for_class(table, FALLBACK_CLASS[cls])
    if cloud_code is not None:
        lut[CLOUD] = cloud_code
    return lut


def _agree_table(table: dict[int, ProductCode]) -> np.ndarray:
    """agree[code, cls]: product code `code` is compatible with our class `cls`."""
    agree = np.zeros((256, 256), bool)
    for code, pc in table.items():
        for cls in pc.classes:
            agree[code, cls] = True
    return agree


def _warp_mode(src: np.ndarray, grid: DemoGrid, win: Window, src_shift_x: float = 0.0) -> np.ndarray:
    dst = np.zeros((win.height, win.width), np.uint8)
    reproject(
        source=src, destination=dst,
        src_transform=Affine.translation(src_shift_x, 0.0) * grid.transform, src_crs=grid.crs,
        dst_transform=win.transform, dst_crs=win.crs,
        resampling=Resampling.mode, src_nodata=0, dst_nodata=0,
    )
    if win.valid is not None:
        dst[~win.valid] = 0
    return dst


def mode_filter(classes: np.ndarray, size: int) -> np.ndarray:
    """Majority filter over size x size windows (nodata 0 never wins where a class is present)."""
    best = np.zeros_like(classes)
    best_count = np.zeros(classes.shape, np.float32)
    for cls in np.unique(classes):
        if cls == 0:
            continue
        count = ndimage.uniform_filter((classes == cls).astype(np.float32), size=size, mode="nearest")
        better = count > best_count + 1e-6
        best[better] = cls
        best_count[better] = count[better]
    best[classes == 0] = 0  # keep the footprint
    return best


def _write_tile(path: Path, codes: np.ndarray, win: Window, palette: dict[int, str] | None) -> None:
    profile = class_raster_profile(win.width, win.height, win.crs, win.transform)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            if palette:  # before the pixels: GDAL cannot change the photometric tag afterwards
                cmap = {0: (0, 0, 0, 0)}
                for code, colour in palette.items():
                    c = colour.lstrip("#")
                    cmap[code] = (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255)
                dst.write_colormap(1, cmap)
            dst.write(codes, 1)


def _patches(seed: int, name: str, grid: DemoGrid, share: float, scale: float, within: np.ndarray) -> np.ndarray:
    """Random patches covering about `share` of the `within` mask (the product's error areas)."""
    noise = smooth_noise(stream(seed, name), grid.shape, scale=scale, octaves=2)
    return noise > quantile_threshold(noise, share, within)


def make_products(outdir: Path, truth: np.ndarray, grid: DemoGrid, country_ll, seed: int) -> dict[str, ProductResult]:
    """Render, write and score the three products. `truth`: (H, W) uint8 classes, 0 outside."""
    inside = truth > 0
    scale = max(300.0 * grid.scale, 120.0)
    results: dict[str, ProductResult] = {}

    # ESA WorldCover: shrub -> grass in patches, then a 1-pixel eastward shift of the whole map
    src = truth.copy()
    src[(truth == SHRUB) & _patches(seed, "esa-shrub", grid, 0.7, scale, inside)] = GRASS
    lon, lat = grid.to_lonlat.transform(grid.x0 + grid.width / 2, grid.y0 - grid.height / 2)
    x_a, _ = grid.from_lonlat.transform(lon, lat)
    x_b, _ = grid.from_lonlat.transform(lon + ESA_PIXEL, lat)
    results["esa_worldcover"] = _render(
        "esa_worldcover", outdir, truth, src, grid, esa_windows(country_ll), shift_x=x_b - x_a,
        palette=ESA_PALETTE)

    # FROM-GLC10: crop <-> grass in patches, wetland partly water, 5 x 5 majority blur
    src = truth.copy()
    src[(truth == CROP) & _patches(seed, "fromglc-crop", grid, 0.3, scale, inside)] = GRASS
    src[(truth == GRASS) & _patches(seed, "fromglc-grass", grid, 0.3, scale, inside)] = CROP
    src[(truth == WETLAND) & _patches(seed, "fromglc-wet", grid, 0.5, scale / 2, inside)] = WATER
    results["fromglc10"] = _render("fromglc10", outdir, truth, src, grid, fromglc_windows(country_ll),
                                   blur=5, palette=None)

    # Esri LULC: shrub -> trees and bare -> rangeland in patches, a cloud, built area dilated by 2 px
    src = truth.copy()
    src[(truth == SHRUB) & _patches(seed, "esri-shrub", grid, 0.8, scale, inside)] = TREE
    src[(truth == BARE) & _patches(seed, "esri-bare", grid, 0.6, scale, inside)] = GRASS
    rng = stream(seed, "esri-cloud")
    cx, cy = grid.width * rng.uniform(0.70, 0.80), grid.height * rng.uniform(0.45, 0.60)
    radius = max(170.0 * grid.scale, 60.0)
    rows = np.arange(grid.height, dtype=np.float32)[:, None] - cy
    cols = np.arange(grid.width, dtype=np.float32)[None, :] - cx
    wobble = smooth_noise(rng, grid.shape, scale=radius / 2)
    cloud = (rows ** 2 + cols ** 2) < (radius * (1 + 0.25 * wobble)) ** 2
    src[cloud & inside] = CLOUD
    results["esri_lulc_annual"] = _render("esri_lulc_annual", outdir, truth, src, grid,
                                          esri_windows(country_ll), dilate_built=2,
                                          palette=ESRI_PALETTE, cloud_code=10)
    return results


def _render(key: str, outdir: Path, truth: np.ndarray, src: np.ndarray, grid: DemoGrid, windows: list[Window],
            shift_x: float = 0.0, blur: int = 0, dilate_built: int = 0, palette=None,
            cloud_code: int | None = None) -> ProductResult:
    table = TABLES[key]
    lut = _code_lut(table, cloud_code)
    agree = _agree_table(table)
    result = ProductResult(key)
    n_agree = 0
    for win in windows:
        truth10 = _warp_mode(truth, grid, win)
        if not truth10.any():
            continue
        classes = _warp_mode(src, grid, win, src_shift_x=shift_x)
        if blur:
            classes = mode_filter(classes, blur)
        codes = lut[classes]
        if dilate_built:  # settlements (not the thin road lines) grow into their surroundings
            grown = ndimage.binary_dilation(classes == BUILDING, structure=np.ones((3, 3), bool),
                                            iterations=dilate_built)
            codes[grown & (codes > 0)] = code_for_class(table, BUILDING)
        if win.valid is not None:
            codes[~win.valid] = 0
        rel = TEMPLATES[key].format(tile=win.name)
        _write_tile(outdir / rel, codes, win, palette)
        scored = truth10 > 0
        n_agree += int(agree[codes[scored], truth10[scored]].sum())
        result.pixels += int(scored.sum())
        result.files.append(rel)
        result.tiles.append(win.name)
    result.agreement = n_agree / max(result.pixels, 1)
    log.info("product %s: %d tiles %s, agreement %.3f", key, len(result.tiles), result.tiles, result.agreement)
    return result

