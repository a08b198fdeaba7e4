"""OpenStreetMap roads: read highway lines with GDAL's OSM driver, buffer them by a width per
highway type in the run's metric CRS, and burn class 11 into the 10 m label where they cover enough
of a cell."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.warp import transform_bounds
from shapely.geometry import box

from l2h.core.classes import NODATA, ROAD
from l2h.core.errors import InputError
from l2h.core.io import atomic_path

log = logging.getLogger(__name__)
OSM_LAYER = "lines"


def extract_roads(osm_path: str | Path, region, crs: str, widths: dict[str, float]) -> gpd.GeoDataFrame:
    """Highway lines of the types in `widths` near `region` (a polygon in `crs`), buffered to polygons.

    Columns: highway, name, width_m; geometry = the road's surface in `crs`.
    """
    if not widths:
        raise InputError("config key 'roads.widths' is empty: list at least one highway type and its width")
    margin = max(widths.values())
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *region.buffer(margin).bounds, densify_pts=21)
    quoted = ", ".join("'" + h.replace("'", "''") + "'" for h in sorted(widths))
    try:
        lines = pyogrio.read_dataframe(osm_path, layer=OSM_LAYER, bbox=(west, south, east, north),
                                       columns=["highway", "name"], where=f"highway IN ({quoted})")
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(f"OSM file {osm_path}: cannot be read by GDAL's OSM driver (layer "
                         f"{OSM_LAYER!r}): {exc}") from None
    if lines.empty:
        return gpd.GeoDataFrame({"highway": [], "name": [], "width_m": []}, geometry=[], crs=crs)
    lines = lines.to_crs(crs)
    lines = lines[lines.intersects(region.buffer(margin))]
    width = lines["highway"].map(widths).astype(float)
    surfaces = lines.geometry.buffer(width / 2, cap_style="flat")
    return gpd.GeoDataFrame({"highway": lines["highway"].to_numpy(), "name": lines["name"].to_numpy(),
                             "width_m": width.to_numpy()}, geometry=surfaces.to_numpy(), crs=crs)


def write_roads(roads: gpd.GeoDataFrame, out: str | Path) -> None:
    """Write the region's road surfaces as a GeoPackage (layer 'roads'), also when there are none."""
    with atomic_path(out) as tmp:
        pyogrio.write_dataframe(roads, tmp, layer="roads", driver="GPKG", geometry_type="MultiPolygon",
                                promote_to_multi=True)


def read_roads(path: str | Path) -> gpd.GeoDataFrame:
    """Road surfaces written by `write_roads`."""
    return pyogrio.read_dataframe(path, layer="roads")


def road_burner(roads: gpd.GeoDataFrame, min_cover: float, oversample: int = 5
                ) -> Callable[[np.ndarray, Affine, tuple], None]:
    """A function that sets label cells to ROAD where road surfaces cover >= `min_cover` of the cell.

    Coverage is measured by rasterizing the surfaces on a grid `oversample` times finer.
    """
    if not 0 < min_cover <= 1:
        raise ValueError(f"min_cover must be in (0, 1], got {min_cover}")
    geometries = roads.geometry.to_numpy()
    index = roads.sindex

    def burn(label: np.ndarray, transform: Affine, bounds: tuple) -> None:
        hits = index.query(box(*bounds))
        if len(hits) == 0:
            return
        height, width = label.shape
        fine = rasterize(((g, 1) for g in geometries[hits]), out_shape=(height * oversample, width * oversample),
                         transform=transform @ Affine.scale(1 / oversample), fill=0, dtype="uint8")
        cover = fine.reshape(height, oversample, width, oversample).mean(axis=(1, 3))
        label[(cover >= min_cover) & (label != NODATA)] = ROAD

    return burn
