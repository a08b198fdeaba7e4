"""The demo world's run grid: EPSG:32650 (UTM 50N), 1 m pixels, origin snapped to 512 m."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import Affine

from l2h.core.errors import ConfigError

CENTRE_LONLAT = (114.0, 30.0)  # ESA 3° / FROM-GLC10 2° tile corner and the UTM 49/50 boundary
RUN_EPSG = 32650
SNAP_M = 512


@dataclass(frozen=True)
class DemoGrid:
    """The demo country's 1 m grid: its north-west corner, size and scale in the run CRS."""
    x0: float  # west edge (easting, m)
    y0: float  # north edge (northing, m)
    width: int  # pixels (= metres)
    height: int

    @classmethod
    def around_centre(cls, width_m: int, height_m: int) -> DemoGrid:
        """The grid of `width_m` x `height_m` 1 m pixels centred (to within 256 m) on CENTRE_LONLAT."""
        if width_m < 512 or height_m < 512:
            raise ConfigError(f"demo world size: must be at least 512 x 512 m, got {width_m} x {height_m}")
        to_utm = Transformer.from_crs(4326, RUN_EPSG, always_xy=True)
        cx, cy = to_utm.transform(*CENTRE_LONLAT)
        x0 = round((cx - width_m / 2) / SNAP_M) * SNAP_M
        y0 = round((cy + height_m / 2) / SNAP_M) * SNAP_M
        return cls(float(x0), float(y0), int(width_m), int(height_m))

    @property
    def crs(self) -> CRS:
        """The run CRS (UTM 50N)."""
        return CRS.from_epsg(RUN_EPSG)

    @property
    def transform(self) -> Affine:
        """The affine transform of the 1 m grid."""
        return Affine(1.0, 0.0, self.x0, 0.0, -1.0, self.y0)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the 1 m grid."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in the run CRS."""
        return (self.x0, self.y0 - self.height, self.x0 + self.width, self.y0)

    @property
    def scale(self) -> float:
        """Size factor relative to the default 4096 x 3072 world (by the shorter side)."""
        return min(self.width, self.height) / 3072.0

    def xy(self, fx: float, fy: float) -> tuple[float, float]:
        """Map coordinates of a point given as fractions of the extent (fx east, fy south)."""
        return (self.x0 + fx * self.width, self.y0 - fy * self.height)

    def pixel_centres(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates of the centres of the given pixels."""
        return self.x0 + cols + 0.5, self.y0 - rows - 0.5

    @cached_property
    def to_lonlat(self) -> Transformer:
        """Run CRS -> longitude/latitude."""
        return Transformer.from_crs(RUN_EPSG, 4326, always_xy=True)

    @cached_property
    def from_lonlat(self) -> Transformer:
        """Longitude/latitude -> run CRS."""
        return Transformer.from_crs(4326, RUN_EPSG, always_xy=True)
