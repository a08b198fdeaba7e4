"""Processing windows: every stage streams rasters window by window, so memory never grows with
the area."""

from __future__ import annotations

from collections.abc import Iterator

from rasterio.windows import Window


def iter_windows(width: int, height: int, size: int) -> Iterator[Window]:
    """Row-major windows of at most size x size pixels covering a width x height raster."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))
