"""Render 1 m RGB + NIR imagery (uint8) from the demo world's land cover.

Per-class spectra that overlap on purpose (grass / crop / shrub; crop parcels in a bare-soil stage
look like bare ground), per-class texture (crop rows per parcel, tree and shrub crowns, wetland
reed/water mixtures, patchy moss), hillshade on the mountain, building and tree shadows cast to the
north-west, sensor noise and a 0.7 px Gaussian blur. Outside an irregular footprint a bit larger
than the country the image is 0 (nodata); inside, values are clipped to 1..255.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from scipy import ndimage

from l2h.core.classes import BARE, BUILDING, CROP, GRASS, MOSS, ROAD, SHRUB, SNOW, TREE, WATER, WETLAND
from l2h.core.io import atomic_path
from l2h.demo.grid import DemoGrid
from l2h.demo.landscape import HIGHWAY_KIND, Landscape, geometry_mask
from l2h.demo.noise import shift, smooth_noise, stream

log = logging.getLogger(__name__)

BAND_NAMES = ("red", "green", "blue", "nir")
# mean reflectance-like digital numbers (R, G, B, NIR)
SPECTRA: dict[int, tuple[float, float, float, float]] = {
    TREE: (50, 72, 52, 170),
    SHRUB: (80, 104, 64, 158),  # crowns; soil shows between them
    CROP: (84, 114, 68, 165),  # replaced per parcel (soil .. lush blend)
    GRASS: (92, 118, 74, 162),  # green pasture; mixed with dry grass below
    BUILDING: (160, 150, 145, 130),  # replaced per roof material
    BARE: (166, 150, 126, 158),
    WATER: (40, 60, 74, 20),
    WETLAND: (64, 88, 74, 82),
    SNOW: (232, 238, 246, 214),
    MOSS: (138, 134, 96, 128),
    ROAD: (112, 110, 110, 100),
}
SOIL = np.array([150, 132, 108, 124], np.float32)
LUSH = np.array([62, 112, 55, 190], np.float32)
DRY_GRASS = np.array([142, 134, 100, 126], np.float32)
REEDS = np.array([78, 102, 66, 138], np.float32)
ROOFS = np.array([
    [168, 166, 160, 150],  # concrete
    [165, 82, 66, 96],  # red tiles
    [84, 118, 160, 112],  # blue metal
    [92, 92, 98, 86],  # dark asphalt shingles
], np.float32)
ROADS = {  # by HIGHWAY_KIND
    HIGHWAY_KIND["primary"]: (92, 92, 98, 82),
    HIGHWAY_KIND["secondary"]: (104, 104, 108, 92),
    HIGHWAY_KIND["tertiary"]: (116, 113, 110, 102),
    HIGHWAY_KIND["residential"]: (126, 122, 118, 110),
    HIGHWAY_KIND["track"]: (152, 136, 110, 128),
}
SUN_AZIMUTH_DEG = 135.0  # from the south-east: shadows fall to the north-west
SUN_ELEVATION_DEG = 55.0


def _hillshade(elev: np.ndarray, relief_m: float, factor: int = 8) -> np.ndarray:
    """Terrain shading (1 on flat ground), computed on `factor`-times coarser cells and smoothly
    upsampled so the piecewise-linear noise in the elevation does not print as facets."""
    h, w = elev.shape
    hc, wc = -(-h // factor), -(-w // factor)
    padded = np.pad(elev, ((0, hc * factor - h), (0, wc * factor - w)), mode="edge")
    coarse = padded.reshape(hc, factor, wc, factor).mean(axis=(1, 3)) * relief_m
    dz_row, dz_col = np.gradient(coarse, float(factor))
    az, el = math.radians(SUN_AZIMUTH_DEG), math.radians(SUN_ELEVATION_DEG)
    sun = (math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el))  # east, north, up
    # surface normal (east, north, up) = (-dz/dx, -dz/dnorth, 1) and dz/dnorth = -dz/drow
    dot = -dz_col * sun[0] + dz_row * sun[1] + sun[2]
    shade = (dot / np.sqrt(dz_col ** 2 + dz_row ** 2 + 1.0) / math.sin(el)).astype(np.float32)
    fine = ndimage.zoom(shade, factor, order=1, mode="nearest", grid_mode=True)
    return fine[:h, :w]


def footprint_mask(grid: DemoGrid, country, seed: int) -> np.ndarray:
    """Where the imagery has data: the country grown by 12-35 m, irregularly (inside the raster)."""
    rng = stream(seed, "footprint")
    noise = smooth_noise(rng, grid.shape, scale=80.0)
    return geometry_mask(grid, country.buffer(12.0)) | (geometry_mask(grid, country.buffer(35.0)) & (noise > 0.0))


def render_imagery(land: Landscape, footprint: np.ndarray, seed: int) -> np.ndarray:
    """(4, H, W) uint8 image (R, G, B, NIR), 0 outside `footprint`."""
    grid = land.grid
    rng = stream(seed, "imagery")
    cover = land.cover
    h, w = grid.shape
    lut = np.zeros((256, 4), np.float32)
    for code, spectrum in SPECTRA.items():
        lut[code] = spectrum
    img = np.moveaxis(lut[cover], -1, 0).copy()  # (4, H, W)

    def apply(mask: np.ndarray, values: np.ndarray) -> None:
        """Set img[:, mask] from values shaped (4, n) or (4,)."""
        for b in range(4):
            img[b][mask] = values[b] if values.ndim == 2 else values[b]

    # cropland: per-parcel growth stage (soil .. lush), brightness and row stripes
    crop = cover == CROP
    n_par = max(len(land.parcel_angle), 1)
    stage = rng.uniform(0.0, 1.0, n_par).astype(np.float32)
    bright = rng.uniform(0.86, 1.14, n_par).astype(np.float32)
    period = rng.uniform(3.0, 7.0, n_par).astype(np.float32)
    across = rng.integers(0, 2, n_par)
    amp = rng.uniform(0.05, 0.16, n_par).astype(np.float32)
    rows, cols = np.nonzero(crop)
    pid = np.clip(land.parcel_id[rows, cols], 0, n_par - 1)
    theta = land.parcel_angle[pid] + across[pid] * (math.pi / 2)
    u = cols * np.cos(theta) + rows * np.sin(theta)
    stripes = 1.0 + amp[pid] * np.sin(2 * math.pi * u / period[pid]).astype(np.float32)
    g = stage[pid]
    values = (SOIL[:, None] * (1 - g) + LUSH[:, None] * g) * (bright[pid] * stripes)[None, :]
    apply(crop, values)
    del rows, cols, pid, theta, u, stripes, g, values

    # grassland: green .. dry mosaic
    grass = cover == GRASS
    dry = np.clip(0.5 + 0.35 * smooth_noise(rng, grid.shape, scale=45.0, octaves=2), 0, 1)
    gsel = dry[grass]
    green = np.array(SPECTRA[GRASS], np.float32)
    apply(grass, green[:, None] * (1 - gsel) + DRY_GRASS[:, None] * gsel)
    del dry, gsel

    # crowns for trees (large) and shrubs (small), with soil showing between shrubs
    seeds = (rng.random(grid.shape, dtype=np.float32) < 0.035).astype(np.float32)
    crowns = ndimage.gaussian_filter(seeds, sigma=1.7)
    crowns /= max(float(np.percentile(crowns[::8, ::8], 99)), 1e-6)
    tree = cover == TREE
    img[:, tree] *= (0.62 + 0.55 * np.clip(crowns[tree], 0, 1.3))[None, :]
    small = ndimage.gaussian_filter(seeds, sigma=0.9)
    small /= max(float(np.percentile(small[::8, ::8], 99)), 1e-6)
    shrub = cover == SHRUB
    c = np.clip(0.3 + 0.9 * small[shrub], 0, 1)[None, :]  # crown cover 30-100 %
    img[:, shrub] = img[:, shrub] * (0.8 + 0.35 * c) * c + SOIL[:, None] * 0.9 * (1 - c)
    del seeds, crowns, small, c

    # wetland: reeds and open water in a fine mosaic; water: turbidity
    wet = cover == WETLAND
    mix = np.clip(0.5 + 0.6 * smooth_noise(rng, grid.shape, scale=7.0), 0, 1)[wet][None, :]
    water_sp = np.array(SPECTRA[WATER], np.float32)[:, None] * 1.15
    img[:, wet] = REEDS[:, None] * mix + water_sp * (1 - mix)
    water = cover == WATER
    turb = smooth_noise(rng, grid.shape, scale=120.0)[water]
    img[:, water] *= (1.0 + 0.12 * turb)[None, :]
    del mix, turb

    # moss/lichen: patchy with grey rock; bare: coarse brightness variation
    moss = cover == MOSS
    patch = np.clip(0.5 + 0.5 * smooth_noise(rng, grid.shape, scale=9.0), 0, 1)[moss][None, :]
    rock = np.array([152, 146, 134, 136], np.float32)[:, None]
    img[:, moss] = img[:, moss] * patch + rock * (1 - patch)
    bare = cover == BARE
    img[:, bare] *= (1.0 + 0.10 * smooth_noise(rng, grid.shape, scale=30.0)[bare])[None, :]
    del patch

    # roofs per building, roads per highway class
    bid = land.building_id
    if land.buildings:
        roof = np.array([b.roof for b in land.buildings], np.int64)
        shade = rng.uniform(0.85, 1.12, len(land.buildings)).astype(np.float32)
        roof_lut = np.zeros((len(land.buildings) + 1, 4), np.float32)
        roof_lut[1:] = ROOFS[roof] * shade[:, None]
        bsel = bid > 0
        img[:, bsel] = roof_lut[bid[bsel]].T
    road = cover == ROAD
    road_lut = np.zeros((256, 4), np.float32)
    road_lut[:] = SPECTRA[ROAD]
    for kind, spectrum in ROADS.items():
        road_lut[kind] = spectrum
    img[:, road] = road_lut[land.road_kind[road]].T

    # shadows cast to the north-west (up-left): buildings (by height), then tree edges
    if land.buildings:
        heights = np.zeros(len(land.buildings) + 1, np.float32)
        heights[1:] = [b.height for b in land.buildings]
        hb = heights[bid]
        bshadow = np.zeros(grid.shape, bool)
        per_step = math.sqrt(2) * math.tan(math.radians(SUN_ELEVATION_DEG))  # height (m) per diagonal step
        for k in range(1, int(heights.max() / per_step) + 2):
            bshadow |= shift(hb, -k, -k) >= k * per_step  # a building k steps to the south-east is tall enough
        bshadow &= bid == 0
        img[:, bshadow] *= np.array([0.42, 0.45, 0.55, 0.40], np.float32)[:, None]
        del hb, bshadow
    tshadow = np.zeros(grid.shape, bool)
    for k in range(1, 5):
        tshadow |= shift(tree, -k, -k, fill=False)
    tshadow &= ~tree & (cover != WATER)
    img[:, tshadow] *= np.array([0.6, 0.62, 0.7, 0.55], np.float32)[:, None]
    del tshadow

    # terrain shading, broad illumination/moisture variation, sensor noise, optics blur
    relief_m = 0.23 * min(h, w)  # the mountain is about as high as it is wide (700 m by default)
    light = _hillshade(land.elevation, relief_m) * (1.0 + 0.06 * smooth_noise(rng, grid.shape, scale=250.0))
    img *= np.clip(light, 0.35, 1.4)[None, :, :]
    # regional phenology: vegetation vigour (NIR, and red inversely) drifts over ~150 m
    vigour = 0.08 * smooth_noise(rng, grid.shape, scale=150.0)
    veg = np.isin(cover, (TREE, SHRUB, CROP, GRASS, WETLAND))
    img[3][veg] *= 1.0 + vigour[veg]
    img[0][veg] *= 1.0 - 0.5 * vigour[veg]
    del light, vigour, veg
    common = rng.standard_normal(grid.shape, dtype=np.float32) * 4.0
    for b in range(4):
        img[b] += common + rng.standard_normal(grid.shape, dtype=np.float32) * 3.5
        img[b] = ndimage.gaussian_filter(img[b], sigma=0.7)
    del common
    out = np.clip(np.rint(img), 1, 255).astype(np.uint8)
    out[:, ~footprint] = 0
    return out


def write_imagery(path: Path, image: np.ndarray, grid: DemoGrid) -> Path:
    """4-band uint8 GeoTIFF: tiled 512, DEFLATE, nodata 0, band descriptions red/green/blue/nir."""
    profile = dict(
        driver="GTiff", width=grid.width, height=grid.height, count=4, dtype="uint8", crs=grid.crs,
        transform=grid.transform, nodata=0, tiled=True, blockxsize=512, blockysize=512,
        compress="deflate", predictor=2, interleave="pixel", photometric="RGB", alpha="unspecified",
    )
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(image)
            for i, name in enumerate(BAND_NAMES, start=1):
                dst.set_band_description(i, name)
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]
    return path
