"""The run's output grid: one projected, metric CRS and one pixel size for every output."""

from __future__ import annotations

from dataclasses import dataclass

import rasterio
from pyproj import CRS
from pyproj.exceptions import CRSError
from rasterio.errors import RasterioIOError

from l2h.core.errors import ConfigError, InputError


@dataclass(frozen=True)
class Grid:
    """The run's output grid: a projected CRS in metres and the pixel size."""
    crs: str          # as given or as read from the imagery, e.g. "EPSG:32650"
    resolution: float  # metres per pixel


def resolve_grid(crs: str | None, resolution: float | None, imagery_paths: list[str]) -> Grid:
    """The run's grid from config keys `grid.crs`/`grid.resolution`, defaulting to the imagery's.

    Raises ConfigError unless the CRS is projected with metre units (areas and the 10 m label grid
    depend on it), and InputError when the imagery cannot be opened to read the defaults.
    """
    if crs is None or resolution is None:
        if not imagery_paths:
            raise ConfigError("config keys 'grid.crs' and 'grid.resolution' must be set when the imagery is a "
                              "tile service or a catalog (imagery.xyz, imagery.wmts or imagery.stac): there is "
                              "no file to take them from")
        first = imagery_paths[0]
        try:
            with rasterio.open(first) as src:
                image_crs, image_res = src.crs, src.res
        except RasterioIOError as exc:
            raise InputError(f"imagery {first}: cannot be opened to read its grid: {exc}") from None
        if image_crs is None:
            raise InputError(f"imagery {first}: has no CRS; set config key grid.crs or fix the file")
        if crs is None:
            epsg = image_crs.to_epsg()
            crs = f"EPSG:{epsg}" if epsg else image_crs.to_wkt()
        if resolution is None:
            if abs(image_res[0] - image_res[1]) > 1e-9 * max(image_res):
                raise InputError(f"imagery {first}: pixels are not square ({image_res}); set grid.resolution")
            resolution = float(image_res[0])
    metric_crs(crs, "config key 'grid.crs'")
    return Grid(crs=crs, resolution=float(resolution))


def metric_crs(crs: str, what: str) -> CRS:
    """`crs` parsed; ConfigError naming `what` unless it is a projected CRS in metres (the grid's
    pixel sizes, block sizes and areas are all metres)."""
    try:
        parsed = CRS.from_user_input(crs)
    except CRSError as exc:
        raise ConfigError(f"{what}: {crs!r} is not a CRS pyproj understands: {exc}") from None
    units = {axis.unit_name for axis in parsed.axis_info}
    if not parsed.is_projected or not units <= {"metre", "meter"}:
        raise ConfigError(f"{what}: {parsed.name} is not a projected CRS in metres; choose one such as a UTM "
                          f"zone or an equal-area projection")
    return parsed


def check_label_resolution(grid: Grid, label_resolution: float) -> int:
    """The number of output pixels per label pixel; ConfigError unless it is a whole number."""
    ratio = label_resolution / grid.resolution
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
        raise ConfigError(f"config key 'labels.resolution': {label_resolution} m must be a whole multiple of the "
                          f"output pixel size {grid.resolution} m (grid.resolution or the imagery's)")
    return round(ratio)
