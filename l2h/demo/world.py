"""Generate the demo world: a small fictional country of three provinces at 114 E / 30 N, with a
hidden 1 m truth and every input l2h needs, in the real formats of the real sources.

Layout of `outdir` (all paths relative, every file written atomically, `manifest.json` last):

    truth/truth_1m.tif              hidden 1 m truth (uint8 classes 1..11, 0 outside the country)
    regions/provinces.gpkg          layer `provinces` (name, code), EPSG:4326
    imagery/demo_imagery.tif        1 m RGBN uint8, nodata 0 outside the footprint
    mirror/...                      ESA WorldCover, FROM-GLC10 and Esri LULC tiles, laid out like their servers
    osm/demo.osm                    OpenStreetMap XML (roads, footpaths, river, lake, buildings)
    reference/points.csv            stratified reference points x,y,crs,class (EPSG:4326)
    reference/strata.csv            stratum,area_km2: the truth's class areas (the points' strata)
    survey/survey.csv               province,class,area_km2 in a land-survey legend
    quicklook.png                   imagery beside the truth, with a legend
    manifest.json                   seed, grid, files with sha256, provinces, product_agreement,
                                    class shares

Same seed and size give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path

import numpy as np

from l2h.core.classes import BY_CODE, CLASS_CODES
from l2h.core.errors import ConfigError
from l2h.core.io import atomic_path, sha256_file, write_class_raster
from l2h.core.quicklook import save_class_quicklook
from l2h.demo.grid import CENTRE_LONLAT, DemoGrid
from l2h.demo.imagery import footprint_mask, render_imagery, write_imagery
from l2h.demo.landscape import build_landscape, rasterize_shapes
from l2h.demo.noise import stream
from l2h.demo.osm import write_osm
from l2h.demo.products import TEMPLATES, make_products
from l2h.demo.regions import Province, country_outline, split_provinces, to_lonlat, write_provinces
from l2h.evaluation.reference_points import allocate

log = logging.getLogger(__name__)

# China's national land survey style legend -> our class codes
SURVEY_LEGEND: dict[str, tuple[int, ...]] = {
    "cropland": (3,),
    "forest": (1, 2),
    "grassland": (4, 10),
    "wetland": (8,),
    "water": (7,),
    "construction": (5,),
    "transport": (11,),
    "other": (6, 9),
}

TRUTH_PATH = "truth/truth_1m.tif"
PROVINCES_PATH = "regions/provinces.gpkg"
IMAGERY_PATH = "imagery/demo_imagery.tif"
OSM_PATH = "osm/demo.osm"
POINTS_PATH = "reference/points.csv"
STRATA_PATH = "reference/strata.csv"
SURVEY_PATH = "survey/survey.csv"
QUICKLOOK_PATH = "quicklook.png"
MANIFEST_PATH = "manifest.json"
N_REFERENCE_POINTS = 2000
MIN_POINTS_PER_CLASS = 60


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def sample_reference_points(truth: np.ndarray, grid: DemoGrid, seed: int) -> list[tuple[float, float, int]]:
    """Stratified random pixel centres inside the country: (lon, lat, class)."""
    rng = stream(seed, "reference")
    counts = {c: int(n) for c, n in enumerate(np.bincount(truth.ravel(), minlength=256)) if c in CLASS_CODES}
    alloc = allocate(counts, N_REFERENCE_POINTS, MIN_POINTS_PER_CLASS)
    points: list[tuple[float, float, int]] = []
    for cls in sorted(alloc):
        idx = np.flatnonzero(truth.ravel() == cls)
        pick = np.sort(idx[rng.choice(len(idx), size=alloc[cls], replace=False)])
        rows, cols = np.divmod(pick, grid.width)
        x, y = grid.pixel_centres(rows, cols)
        lon, lat = grid.to_lonlat.transform(x, y)
        points.extend((float(a), float(b), cls) for a, b in zip(lon, lat))
    return points


def write_points(path: Path, points: list[tuple[float, float, int]]) -> None:
    """Write the reference points CSV (x, y, class) of the demo world."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["x", "y", "crs", "class"])
    for lon, lat, cls in points:
        w.writerow([f"{lon:.9f}", f"{lat:.9f}", "EPSG:4326", cls])
    _write_text(path, buf.getvalue())


def write_strata(path: Path, truth: np.ndarray) -> None:
    """Area (km2, 1 m pixels) of each true class: the strata of the reference points."""
    counts = np.bincount(truth.ravel(), minlength=256)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["stratum", "area_km2"])
    for c in CLASS_CODES:
        if counts[c]:
            w.writerow([c, f"{int(counts[c]) / 1e6:.6f}"])
    _write_text(path, buf.getvalue())


def survey_table(truth: np.ndarray, province_index: np.ndarray,
                 provinces: list[Province]) -> list[tuple[str, str, float]]:
    """Areas (km2, 1 m pixels) per province and survey class."""
    rows = []
    for k, prov in enumerate(provinces, start=1):
        counts = np.bincount(truth[province_index == k], minlength=256)
        for name, codes in SURVEY_LEGEND.items():
            rows.append((prov.name, name, int(sum(counts[c] for c in codes)) / 1e6))
    return rows


def write_survey(path: Path, rows: list[tuple[str, str, float]]) -> None:
    """Write the land-survey table CSV (province, class, km²) of the demo world."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["province", "class", "area_km2"])
    for prov, cls, area in rows:
        w.writerow([prov, cls, f"{area:.6f}"])
    _write_text(path, buf.getvalue())


def generate_demo_world(outdir: Path, seed: int = 42, width_m: int = 4096, height_m: int = 3072) -> dict:
    """Write the demo world into `outdir` and return its manifest (also written as manifest.json)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"demo world seed: expected a non-negative integer, got {seed!r}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    grid = DemoGrid.around_centre(int(width_m), int(height_m))
    log.info("demo world: seed %d, %d x %d m, origin (%.0f, %.0f) EPSG:32650 -> %s",
             seed, grid.width, grid.height, grid.x0, grid.y0, outdir)
    written: list[str] = []

    land = build_landscape(grid, seed)
    country = country_outline(grid, seed)
    provinces = split_provinces(grid, country, seed)
    province_index = rasterize_shapes(grid, [(p.geometry, k) for k, p in enumerate(provinces, start=1)])
    inside = province_index > 0  # the country = the union of its provinces, pixel for pixel
    truth = np.where(inside, land.cover, 0).astype(np.uint8)

    write_class_raster(outdir / TRUTH_PATH, truth, grid.crs, grid.transform)
    write_provinces(outdir / PROVINCES_PATH, provinces, grid)
    written += [TRUTH_PATH, PROVINCES_PATH]
    log.info("demo world: truth and provinces written (%.1f s)", time.perf_counter() - start)

    image = render_imagery(land, footprint_mask(grid, country, seed), seed)
    write_imagery(outdir / IMAGERY_PATH, image, grid)
    written.append(IMAGERY_PATH)
    log.info("demo world: imagery written (%.1f s)", time.perf_counter() - start)

    products = make_products(outdir, truth, grid, to_lonlat(country, grid), seed)
    for res in products.values():
        written += res.files
    osm_counts = write_osm(outdir / OSM_PATH, land, seed)
    written.append(OSM_PATH)

    points = sample_reference_points(truth, grid, seed)
    write_points(outdir / POINTS_PATH, points)
    write_strata(outdir / STRATA_PATH, truth)
    survey = survey_table(truth, province_index, provinces)
    write_survey(outdir / SURVEY_PATH, survey)
    written += [POINTS_PATH, STRATA_PATH, SURVEY_PATH]

    save_class_quicklook(outdir / QUICKLOOK_PATH, truth,
                         f"demo world truth (seed {seed}, {grid.width} x {grid.height} m)", rgb=image[:3])
    written.append(QUICKLOOK_PATH)
    log.info("demo world: products, OSM, reference points, survey, quicklook written (%.1f s)",
             time.perf_counter() - start)

    total = int(inside.sum())
    counts = np.bincount(truth.ravel(), minlength=256)
    manifest = {
        "generator": "l2h.demo",
        "seed": int(seed),
        "width_m": grid.width,
        "height_m": grid.height,
        "crs": f"EPSG:{grid.crs.to_epsg()}",
        "transform": [grid.transform.a, grid.transform.b, grid.transform.c,
                      grid.transform.d, grid.transform.e, grid.transform.f],
        "bounds": list(grid.bounds),
        "centre_lonlat": list(CENTRE_LONLAT),
        "country_area_km2": total / 1e6,
        "provinces": [
            {"name": p.name, "code": p.code, "area_km2": int((province_index == k).sum()) / 1e6}
            for k, p in enumerate(provinces, start=1)
        ],
        "class_shares": {BY_CODE[c].key: round(int(counts[c]) / total, 6) for c in CLASS_CODES},
        "product_agreement": {key: round(res.agreement, 4) for key, res in products.items()},
        "products": {
            key: {"template": TEMPLATES[key], "tiles": res.tiles, "files": res.files,
                  "agreement": round(res.agreement, 4), "pixels_scored": res.pixels}
            for key, res in products.items()
        },
        "osm": osm_counts,
        "reference_points": len(points),
        "survey_legend": {k: list(v) for k, v in SURVEY_LEGEND.items()},
        "paths": {"truth": TRUTH_PATH, "provinces": PROVINCES_PATH, "imagery": IMAGERY_PATH, "osm": OSM_PATH,
                  "reference_points": POINTS_PATH, "strata": STRATA_PATH, "survey": SURVEY_PATH,
                  "quicklook": QUICKLOOK_PATH},
        "files": [
            {"path": rel, "bytes": (outdir / rel).stat().st_size, "sha256": sha256_file(outdir / rel)}
            for rel in sorted(written)
        ],
    }
    _write_text(outdir / MANIFEST_PATH, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    log.info("demo world: done in %.1f s (agreement %s)", time.perf_counter() - start,
             ", ".join(f"{k} {v:.3f}" for k, v in manifest["product_agreement"].items()))
    return manifest
