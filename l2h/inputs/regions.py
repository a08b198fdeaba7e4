"""Regions (provinces): read the user's vector file, name them with wildcard-safe slugs, and write
each region's geometry in the run's CRS for the later stages."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from l2h.core.errors import InputError
from l2h.core.grid import metric_crs
from l2h.core.io import atomic_path

_SLUG_INVALID = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """A wildcard-safe identifier `[a-z0-9_]+` from a display name ("Côte Verte" -> "cote_verte")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _SLUG_INVALID.sub("_", ascii_name.lower()).strip("_")


def read_regions(path: str | Path, name_field: str, layer: str | None = None,
                 slug_field: str | None = None) -> gpd.GeoDataFrame:
    """Read the regions file with `name` and `slug` columns added; checks fields, names and slugs."""
    try:
        info = pyogrio.read_info(path, layer=layer)
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(f"regions file {path}: cannot be read as a vector dataset"
                         f"{f' (layer {layer!r})' if layer else ''}: {exc}") from None
    if info.get("features") == 0:
        raise InputError(f"regions file {path}: holds no features")
    fields = list(info["fields"])
    for key, field in (("regions.name_field", name_field), ("regions.slug_field", slug_field)):
        if field is not None and field not in fields:
            raise InputError(f"regions file {path}: has no attribute {field!r} (config key {key}); "
                             f"its attributes are: {', '.join(fields) or 'none'}")
    wanted = [name_field] + ([slug_field] if slug_field and slug_field != name_field else [])
    frame = pyogrio.read_dataframe(path, layer=layer, columns=wanted)
    if len(frame) == 0:
        raise InputError(f"regions file {path}: holds no features")
    if frame[name_field].isna().any():
        raise InputError(f"regions file {path}: {int(frame[name_field].isna().sum())} feature(s) have "
                         f"an empty {name_field!r}; every region needs a name")
    frame["name"] = frame[name_field].astype(str)
    source = frame[slug_field].astype(str) if slug_field else frame["name"]
    frame["slug"] = source.map(slugify)
    bad = sorted(set(frame.loc[frame["slug"] == "", "name"]))
    if bad:
        raise InputError(f"regions file {path}: cannot derive an ASCII identifier from region name(s) "
                         f"{', '.join(map(repr, bad))}; set config key regions.slug_field to an "
                         f"attribute holding ASCII identifiers (e.g. a pinyin or code column)")
    clashes = frame.groupby("slug")["name"].unique()
    clashes = clashes[clashes.map(len) > 1]
    if len(clashes):
        slug, names = next(iter(clashes.items()))
        raise InputError(f"regions file {path}: region names {', '.join(map(repr, names))} all map to "
                         f"the identifier {slug!r}; rename one or set regions.slug_field")
    return frame


def dissolved_regions(path: str | Path, name_field: str, layer: str | None = None,
                      slug_field: str | None = None) -> gpd.GeoDataFrame:
    """One row per region (index: slug; columns: name, geometry), features merged and repaired,
    in the file's CRS."""
    frame = read_regions(path, name_field, layer, slug_field)
    if frame.crs is None:
        raise InputError(f"regions file {path}: has no CRS; assign one (e.g. with ogr2ogr -a_srs)")
    frame["geometry"] = frame.geometry.make_valid()
    merged = frame.dissolve(by="slug", aggfunc={"name": "first"})
    empty = merged.index[shapely.area(merged.geometry.to_numpy()) <= 0].tolist()
    if empty:
        raise InputError(f"regions file {path}: region(s) {', '.join(empty)} have an empty geometry (no area)")
    return merged[["name", "geometry"]]


def write_region_geometry(path: str | Path, slug: str, out: str | Path, crs: str, name_field: str,
                          layer: str | None = None, slug_field: str | None = None) -> dict:
    """Write region `slug` (all its features merged, repaired) in `crs` to a GeoPackage.

    Returns the written attributes (slug, name, area_km2). Raises InputError for an unknown region,
    a file without CRS, or a region whose geometry is empty.
    """
    metric_crs(crs, "region geometry CRS (config key 'grid.crs')")
    regions = dissolved_regions(path, name_field, layer, slug_field)
    if slug not in regions.index:
        raise InputError(f"regions file {path}: no region with identifier {slug!r}; "
                         f"known: {', '.join(sorted(regions.index))}")
    geometry = regions.loc[[slug]].to_crs(crs).geometry.make_valid().iloc[0]
    attrs = {"slug": slug, "name": regions.loc[slug, "name"], "area_km2": geometry.area / 1e6}
    out_frame = gpd.GeoDataFrame({k: [v] for k, v in attrs.items()}, geometry=[geometry], crs=crs)
    with atomic_path(out) as tmp:
        out_frame.to_file(tmp, layer="region", driver="GPKG", engine="pyogrio")
    return attrs


@dataclass(frozen=True)
class RegionGeometry:
    """One region as written by `write_region_geometry`: slug, name, CRS and (Multi)Polygon."""
    slug: str
    name: str
    crs: str
    geometry: object  # a shapely (Multi)Polygon in `crs`


def read_region_geometry(path: str | Path) -> RegionGeometry:
    """A region GeoPackage written by `write_region_geometry`."""
    try:
        frame = pyogrio.read_dataframe(path, layer="region")
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(f"region file {path}: unreadable ({exc}); delete it to rebuild") from None
    if len(frame) != 1 or frame.crs is None:
        raise InputError(f"region file {path}: expected one feature with a CRS; delete it to rebuild")
    return RegionGeometry(frame["slug"][0], frame["name"][0], frame.crs.to_string(), frame.geometry[0])


def region_bounds_lonlat(regions: gpd.GeoDataFrame) -> dict[str, tuple[float, float, float, float]]:
    """Each region's bounding box in degrees (west, south, east, north): which product tiles it needs."""
    lonlat = regions.to_crs("EPSG:4326")
    return {slug: tuple(float(v) for v in geom.bounds) for slug, geom in lonlat.geometry.items()}


def region_geometries(regions: gpd.GeoDataFrame, crs: str) -> dict[str, object]:
    """Each region's polygon in the run's CRS (for the block grid)."""
    projected = regions.to_crs(crs).geometry.make_valid()
    return dict(projected.items())


def write_footprint_region(paths: list[str], name: str, out: str | Path) -> dict:
    """Write one region named `name` covering the footprints (extents) of raster files, e.g. the
    imagery of a small study area: the union of their bounding boxes, in the first file's CRS.

    Returns {"name", "files", "area_km2", "crs"}. Raises InputError for an unreadable file, a file
    without CRS, or files in different CRSs.
    """
    import rasterio
    from rasterio.errors import RasterioError

    if not paths:
        raise InputError("footprint: no raster file given")
    boxes, crs = [], None
    for path in paths:
        try:
            with rasterio.open(path) as src:
                if src.crs is None:
                    raise InputError(f"raster {path}: has no CRS")
                if crs is not None and src.crs != crs:
                    raise InputError(f"raster {path}: CRS {src.crs} differs from {crs} of {paths[0]}; "
                                     f"reproject the files to one CRS first")
                crs = src.crs
                boxes.append(shapely.box(*src.bounds))
        except RasterioError as exc:
            raise InputError(f"raster {path}: cannot be opened: {exc}") from None
    geometry = shapely.union_all(boxes)
    frame = gpd.GeoDataFrame({"name": [name]}, geometry=[geometry], crs=crs)
    driver = "GeoJSON" if Path(out).suffix.lower() in (".geojson", ".json") else "GPKG"
    with atomic_path(out) as tmp:
        frame.to_file(tmp, layer=Path(out).stem, driver=driver, engine="pyogrio")
    return {"name": name, "files": len(paths), "area_km2": geometry.area / 1e6, "crs": crs.to_string()}
