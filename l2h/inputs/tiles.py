"""Which tiles of the 10 m products cover a lon/lat bounding box.

Bounds are ``(west, south, east, north)`` in degrees (EPSG:4326). A tile is listed when its
interior overlaps the box: a box that only touches a tile along an edge does not need it. A point
(``west == east``, ``south == north``) gets the tile that contains it; a point on a tile edge goes
to the tile north/east of it, like the lower-left naming. Boxes crossing the antimeridian are not
supported: split them in two. Arithmetic is exact (fractions), so 29.999999999 stays below 30.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from fractions import Fraction

Bounds = Sequence[float]

# MGRS latitude bands from 80°S, 8° each (I and O skipped); X spans 72–84°N.
_BANDS = "CDEFGHJKLMNPQRSTUVWX"
# Grid-zone exceptions: zone -> (west, east) longitudes in band V (Norway) and band X (Svalbard);
# a zone mapped to None does not exist in that band.
_ZONE_EXCEPTIONS = {
    "V": {31: (0, 3), 32: (3, 12)},
    "X": {31: (0, 9), 32: None, 33: (9, 21), 34: None, 35: (21, 33), 36: None, 37: (33, 42)},
}


def _check(bounds: Bounds) -> tuple[float, float, float, float]:
    """Unpack and validate (west, south, east, north)."""
    west, south, east, north = (float(v) for v in bounds)
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise ValueError(f"bounds must be finite numbers, got {tuple(bounds)}")
    if west > east:
        raise ValueError(f"bounds {tuple(bounds)} have west > east: boxes crossing the antimeridian "
                         "are not supported, split them at 180°")
    if south > north:
        raise ValueError(f"bounds {tuple(bounds)} have south > north")
    if west < -180 or east > 180 or south < -90 or north > 90:
        raise ValueError(f"bounds {tuple(bounds)} are outside -180..180 °E, -90..90 °N")
    return west, south, east, north


def _cells(low: float, high: float, size: int, limit: int) -> range:
    """Indices i of the cells [i*size, (i+1)*size) whose interior overlaps [low, high].

    `limit` is the world edge (180 or 90): a point exactly on it belongs to the last cell.
    """
    first = math.floor(Fraction(low) / size)
    last = math.ceil(Fraction(high) / size) - 1 if high > low else first
    top = math.ceil(Fraction(limit, size)) - 1
    return range(min(first, top), min(last, top) + 1)


def _regular_grid(bounds: Bounds, size: int) -> Iterator[tuple[int, int]]:
    """Lower-left (lat, lon) corners of the size°×size° cells a box overlaps."""
    west, south, east, north = _check(bounds)
    for i in _cells(south, north, size, 90):
        for j in _cells(west, east, size, 180):
            yield i * size, j * size


def esa_worldcover_tiles(bounds: Bounds) -> list[str]:
    """ESA WorldCover 3°×3° tiles, named by the lower-left corner, e.g. ``N30E114``, ``S03W063``."""
    return sorted({f"{'N' if lat >= 0 else 'S'}{abs(lat):02d}{'E' if lon >= 0 else 'W'}{abs(lon):03d}"
                   for lat, lon in _regular_grid(bounds, 3)})


def fromglc10_tiles(bounds: Bounds) -> list[str]:
    """FROM-GLC10 2°×2° tiles, named by the lower-left corner, e.g. ``fromglc10v01_30_114``."""
    return sorted({f"fromglc10v01_{lat}_{lon}" for lat, lon in _regular_grid(bounds, 2)})


def _grid_zones() -> Iterator[tuple[str, int, int, int, int]]:
    """Every UTM/MGRS grid zone as (name, west, south, east, north), exceptions applied."""
    for b, band in enumerate(_BANDS):
        south = -80 + 8 * b
        north = 84 if band == "X" else south + 8
        for zone in range(1, 61):
            extent = _ZONE_EXCEPTIONS.get(band, {}).get(zone, (-186 + 6 * zone, -180 + 6 * zone))
            if extent is not None:
                yield f"{zone}{band}", extent[0], south, extent[1], north


def _overlaps(low: float, high: float, cell_low: int, cell_high: int, limit: int) -> bool:
    """Whether [low, high] overlaps the cell's interior (a point: lies in [cell_low, cell_high))."""
    if high > low:
        return cell_low < high and low < cell_high
    return cell_low <= low < cell_high or low == cell_high == limit


def esri_lulc_tiles(bounds: Bounds) -> list[str]:
    """Esri/Impact Observatory 10 m land-cover files: UTM zone + MGRS band, e.g. ``50R``.

    Zones are 6° wide from 180°W, bands 8° tall from 80°S (X: 72–84°N), with the Norway (32V)
    and Svalbard (31X/33X/35X/37X) exceptions. The product stops at 80°S and 84°N.
    """
    west, south, east, north = _check(bounds)
    if south < -80 or north > 84:
        raise ValueError(f"bounds {tuple(bounds)} reach beyond 80°S–84°N, where the UTM grid "
                         "(and the Esri/IO land cover) ends")
    return sorted({name for name, w, s, e, n in _grid_zones()
                   if _overlaps(west, east, w, e, 180) and _overlaps(south, north, s, n, 84)})
