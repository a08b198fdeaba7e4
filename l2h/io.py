"""Atomic file writes and the house style for class rasters (uint8, nodata 0, palette, DEFLATE)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from l2h.classes import NODATA, colormap


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB parts."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while part := f.read(1 << 20):
            digest.update(part)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `final`; rename it onto `final` only if the block succeeds.

    The temporary name keeps the final suffix (GDAL picks drivers by it) and starts with a dot and
    ends in `.tmp<suffix>`, so a crash never leaves a half-written file under the final name.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent)
    os.close(fd)
    os.unlink(tmp)  # drivers such as GPKG refuse to write over an existing empty file
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        for leftover in (tmp_path, tmp_path.with_name(tmp_path.name + ".aux.xml")):
            if leftover.exists():
                leftover.unlink()


def class_raster_profile(width: int, height: int, crs: CRS | str, transform: Affine, **extra) -> dict:
    """GeoTIFF profile of a class raster: one uint8 band, nodata 0, tiled 512, DEFLATE."""
    profile = dict(
        driver="GTiff", width=width, height=height, count=1, dtype="uint8", crs=crs,
        transform=transform, nodata=NODATA, tiled=True, blockxsize=512, blockysize=512,
        compress="deflate", predictor=1, interleave="band",
    )
    profile.update(extra)
    return profile


def write_class_raster(path: str | os.PathLike, data: np.ndarray, crs: CRS | str, transform: Affine,
                       **profile_extra) -> Path:
    """Write a 2-D uint8 class array atomically as a tiled GeoTIFF with the l2h colour table."""
    if data.ndim != 2 or data.dtype != np.uint8:
        raise ValueError(f"class raster must be 2-D uint8, got {data.ndim}-D {data.dtype}")
    profile = class_raster_profile(data.shape[1], data.shape[0], crs, transform, **profile_extra)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write_colormap(1, colormap())  # before the pixels: GDAL fixes the photometric tag then
            dst.write(data, 1)
    return Path(path)
