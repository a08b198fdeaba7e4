"""The layers of a run that the viewer shows, found in its folders, and their tiles and point values.

Tiles are cut by rio-tiler from the COGs in Web Mercator (its overviews serve the small zooms, so no
request reads more than a few tiles of the file, whatever the country's size); the imagery, which may
be several files or region VRTs without overviews, is a rio-tiler mosaic shown only from the zooms
where a tile reads a bounded number of its pixels.
"""

from __future__ import annotations

import glob
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import yaml
from rasterio.windows import Window
from rio_tiler.colormap import cmap
from rio_tiler.errors import NoOverviewWarning, PointOutsideBounds, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.mosaic import mosaic_reader
from rio_tiler.mosaic.methods import FirstMethod

from l2h.core.classes import BY_CODE, CLASSES, IGNORE, NODATA, colormap
from l2h.core.errors import InputError
from l2h.core.io import file_problem

MAP = Path("results/maps/national.tif")
CONFIDENCE = Path("results/maps/confidence/national.tif")
REGIONS = Path("resources/regions")
LABELS = Path("resources/labels")
IMAGERY_CACHE = Path("resources/imagery")
DEFAULTS = Path(__file__).resolve().parents[2] / "workflow_config.yaml"  # beside the Snakefile
TILE_SIZE = 256
# zooms below the imagery's native one at which it is still drawn when it has no overviews: a tile
# then reads at most (256 x 2**3)^2 native pixels per file
IMAGERY_ZOOMS_WITHOUT_OVERVIEWS = 3


class NotFound(LookupError):
    """A tile or layer the run does not have (HTTP 404)."""


@dataclass
class RunLayers:
    """What the viewer serves for one run: the national class map, its confidence, the imagery, each
    region's coarse training label and outline."""
    root: Path
    name: str  # the run's name (config key run.name)
    map: Path
    confidence: Path | None
    imagery: list[str]
    labels: dict[str, Path]  # region slug -> consensus label GeoTIFF
    regions: dict[str, Path]  # region slug -> region GeoPackage
    zooms: dict[str, tuple[int, int]] = field(default_factory=dict)  # layer -> (min, native max) zoom
    rgb: tuple[int, int, int] = (1, 2, 3)
    imagery_range: tuple | None = None  # per-band (low, high) stretch of imagery that is not 8-bit


def _run_config(root: Path, configfile: str | None) -> tuple[str, list[str]]:
    """The run's name and imagery paths (globs expanded) from its configuration: ``configfile`` over the
    workflow's defaults (workflow_config.yaml in `root`, else beside the Snakefile of this checkout),
    key by key, as Snakemake merges them."""
    name, paths = root.name, []
    defaults = next((p for p in (root / DEFAULTS.name, DEFAULTS) if p.is_file()), None)
    for path in (defaults, configfile):
        if not path:
            continue
        path = Path(path) if Path(path).is_absolute() else root / path
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"view: cannot read the configuration {path}: {exc}") from None
        name = (config.get("run") or {}).get("name") or name
        paths = (config.get("imagery") or {}).get("paths") or paths
    found: list[str] = []
    for p in paths:
        pattern = p if p.startswith("/vsi") or os.path.isabs(p) else str(root / p)
        found.extend(sorted(glob.glob(pattern)) or [pattern])
    return name, found


def _rgb_bands(path: str) -> tuple[int, int, int]:
    """The band indexes of red, green and blue: named by the band descriptions, else the first three
    (the first band thrice for single-band imagery)."""
    with Reader(path) as src:
        names = [(d or "").lower() for d in src.dataset.descriptions]
    if all(c in names for c in ("red", "green", "blue")):
        return tuple(names.index(c) + 1 for c in ("red", "green", "blue"))  # type: ignore[return-value]
    return (1, 2, 3) if len(names) >= 3 else (1, 1, 1)  # one band: grey


def _zoom_range(path: str, limit_without_overviews: bool) -> tuple[int, int]:
    with warnings.catch_warnings(), Reader(path) as src:
        warnings.simplefilter("ignore", NoOverviewWarning)  # handled: such a layer starts at a larger zoom
        native = src.maxzoom
        lowest = src.minzoom
        if limit_without_overviews and not src.dataset.overviews(1):
            lowest = max(lowest, native - IMAGERY_ZOOMS_WITHOUT_OVERVIEWS)
    return int(lowest), int(native)


def find_layers(root: str | os.PathLike, imagery: list[str] | None = None,
                configfile: str | None = None) -> RunLayers:
    """The run's layers under `root` (the project folder). ``imagery``: GDAL datasets to show; default the
    run's imagery cache (``resources/imagery/<region>.vrt``) or else the configuration's imagery paths."""
    root = Path(root).resolve()
    class_map = root / MAP
    problem = file_problem(class_map)
    if problem is not None:
        raise InputError(f"view: no map to show: {class_map} ({problem}); build it first with "
                         f"`snakemake {MAP}` (or `make demo` for the demo)")
    confidence = root / CONFIDENCE
    regions = {p.stem: p for p in sorted((root / REGIONS).glob("*.gpkg"))}
    labels = {slug: root / LABELS / f"{slug}.tif" for slug in regions if (root / LABELS / f"{slug}.tif").is_file()}
    name, configured = _run_config(root, configfile)
    if imagery is None:
        cached = [str(root / IMAGERY_CACHE / f"{slug}.vrt") for slug in regions]
        imagery = [p for p in cached if Path(p).is_file()] or configured
    for path in imagery:
        if not path.startswith("/vsi") and not Path(path).exists():
            raise InputError(f"view: imagery {path} does not exist; give the imagery with --imagery")
    layers = RunLayers(root, name, class_map, confidence if file_problem(confidence) is None else None,
                       list(imagery), labels, regions)
    layers.zooms["map"] = _zoom_range(str(class_map), False)
    if layers.confidence:
        layers.zooms["confidence"] = _zoom_range(str(layers.confidence), False)
    if layers.imagery:
        ranges = [_zoom_range(p, True) for p in layers.imagery]
        layers.zooms["imagery"] = (max(r[0] for r in ranges), max(r[1] for r in ranges))
        layers.rgb = _rgb_bands(layers.imagery[0])
        layers.imagery_range = _imagery_range(layers.imagery[0], layers.rgb)
    return layers


def _confidence_colormap() -> dict:
    colours = dict(cmap.get("viridis"))
    colours[NODATA] = (0, 0, 0, 0)
    return colours


def render_tile(layers: RunLayers, layer: str, z: int, x: int, y: int) -> bytes:
    """A 256 px PNG map tile (Web Mercator) of `layer`: ``map``, ``confidence`` or ``imagery``."""
    if layer not in layers.zooms:
        raise NotFound(f"no layer {layer!r}")
    if z < layers.zooms[layer][0]:  # the page never asks: such a tile would read too many pixels
        raise NotFound(f"the {layer} layer starts at zoom {layers.zooms[layer][0]}")
    try:
        if layer == "imagery":
            def read(path: str, *args, **kwargs):
                with Reader(path) as src:
                    return src.tile(*args, indexes=layers.rgb, tilesize=TILE_SIZE, **kwargs)

            image, _ = mosaic_reader(layers.imagery, read, x, y, z, pixel_selection=FirstMethod(),
                                     resampling_method="bilinear", reproject_method="bilinear")
            if layers.imagery_range:
                image = image.rescale(in_range=layers.imagery_range)
            return image.render(img_format="PNG")
        path = layers.map if layer == "map" else layers.confidence
        with Reader(str(path)) as src:
            image = src.tile(x, y, z, tilesize=TILE_SIZE, resampling_method="nearest")
        colours = colormap() if layer == "map" else _confidence_colormap()
        return image.render(img_format="PNG", colormap=colours)
    except TileOutsideBounds:
        raise NotFound(f"tile {z}/{x}/{y} is outside the {layer} layer") from None
    except Exception as exc:  # rio-tiler's "no asset" when no imagery file covers the tile
        if type(exc).__name__ == "EmptyMosaicError":
            raise NotFound(f"tile {z}/{x}/{y}: no imagery there") from None
        raise


def _imagery_range(path: str, bands: tuple[int, int, int], side: int = 1024) -> tuple | None:
    """The 2-98 % range of each band of `path` when it is not 8-bit, else None: from a window of at most
    `side` pixels at its centre, read at full resolution (imagery without overviews is never read whole)."""
    with rasterio.open(path) as src:
        if src.dtypes[0] == "uint8":
            return None
        width, height = min(side, src.width), min(side, src.height)
        window = Window((src.width - width) // 2, (src.height - height) // 2, width, height)
        data = src.read(list(bands), window=window, masked=True)
    ranges = []
    for band in data:
        values = band.compressed()
        low, high = np.percentile(values, (2, 98)) if values.size else (0.0, 1.0)
        ranges.append((float(low), float(max(high, low + 1))))
    return tuple(ranges)


def _value_at(path: Path, lon: float, lat: float) -> int | None:
    try:
        with Reader(str(path)) as src:
            point = src.point(lon, lat)
    except PointOutsideBounds:
        return None
    value = int(point.data[0])
    return None if bool(point.mask[0] == 0) and value == NODATA else value


def _class_entry(code: int | None) -> dict:
    if code is None or code == NODATA:
        return {"code": NODATA, "name": "no data"}
    if code == IGNORE:
        return {"code": IGNORE, "name": "no agreement (not used in training)"}
    cls = BY_CODE.get(code)
    return {"code": code, "name": cls.name if cls else f"code {code}", "colour": cls.colour if cls else None}


def point_info(layers: RunLayers, lon: float, lat: float) -> dict:
    """What the run says at (lon, lat): the 1 m class, its confidence (0-1) and the coarse label."""
    code = _value_at(layers.map, lon, lat)
    info = {"lon": lon, "lat": lat, "class": _class_entry(code), "confidence": None, "coarse_label": None,
            "region": None}
    if layers.confidence and (value := _value_at(layers.confidence, lon, lat)):
        info["confidence"] = round(value / 255, 3)
    for slug, label in layers.labels.items():
        coarse = _value_at(label, lon, lat)
        if coarse not in (None, NODATA):
            info["coarse_label"], info["region"] = _class_entry(coarse), slug
            break
    return info


def regions_geojson(layers: RunLayers, tolerance_m: float = 20.0) -> str:
    """The regions' outlines as GeoJSON in longitude/latitude, simplified to ``tolerance_m``."""
    import geopandas as gpd
    import pandas as pd
    import pyogrio

    frames = []
    for slug, path in layers.regions.items():
        frame = pyogrio.read_dataframe(path, layer="region", columns=["name"])
        frame["slug"] = slug
        frame["geometry"] = frame.geometry.simplify(tolerance_m).boundary
        frames.append(frame.to_crs("EPSG:4326"))
    if not frames:
        return json.dumps({"type": "FeatureCollection", "features": []})
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True)).to_json()


def legend() -> list[dict]:
    """The classes of the map legend: code, name, colour."""
    return [{"code": c.code, "name": c.name, "colour": c.colour} for c in CLASSES]


def bounds_lonlat(layers: RunLayers) -> list[float]:
    """The class map's bounds in degrees (west, south, east, north)."""
    with Reader(str(layers.map)) as src:
        return [float(v) for v in src.get_geographic_bounds("EPSG:4326")]
