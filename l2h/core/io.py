"""Atomic, verified file writes and the house style for class rasters (uint8, nodata 0, palette,
DEFLATE).

GDAL reports some write errors (a full disk while flushing) only when a dataset is closed, and
rasterio logs them without raising; so every GeoTIFF and GeoPackage written through
:func:`atomic_path` is read back (:func:`file_problem`) before it takes its final name, and resume
checks ask the same question of files a killed run left behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from l2h.core.classes import NODATA, colormap


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB parts."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while part := f.read(1 << 20):
            digest.update(part)
    return digest.hexdigest()


def _open_level(path: Path, level: int | None):
    """The GeoTIFF at `path`, or its overview `level` as a dataset of its own."""
    return rasterio.open(path, **({} if level is None else {"overview_level": level}))


def _geotiff_problem(path: Path) -> str | None:
    """Why the GeoTIFF at `path` would not read back whole: every tile of every band and overview
    must have been written inside the file, and the tile stored last must decode."""
    size = path.stat().st_size
    last = None  # (end offset, overview level or None, band, window) of the tile stored last
    with rasterio.open(path) as src:
        pixel_interleaved = src.count == 1 or (src.interleaving is not None and src.interleaving.name == "PIXEL")
        bands = (1,) if pixel_interleaved else range(1, src.count + 1)
        for level in (None, *range(len(src.overviews(1)))):
            if level is None:
                height, width, (bh, bw) = src.height, src.width, src.block_shapes[0]
            else:
                with _open_level(path, level) as grid:
                    height, width, (bh, bw) = grid.height, grid.width, grid.block_shapes[0]
            for band in bands:
                for row in range(-(-height // bh)):
                    for col in range(-(-width // bw)):
                        offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band, ovr=level)
                        length = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band, ovr=level)
                        written = bool(offset) and bool(length) and int(offset) != 0
                        if not written or int(offset) + int(length) > size:
                            overview = "" if level is None else f", overview {level}"
                            where = f"tile {col},{row} of band {band}{overview}"
                            return f"{where} {'lies beyond the end of the file' if written else 'was never written'}"
                        end = int(offset) + int(length)
                        if last is None or end > last[0]:
                            window = Window(col * bw, row * bh, min(bw, width - col * bw), min(bh, height - row * bh))
                            last = (end, level, band, window)
    if last is not None:
        _, level, band, window = last
        with _open_level(path, level) as src:
            src.read(band, window=window)
    return None


def file_problem(path: str | os.PathLike) -> str | None:
    """Why the file at `path` does not read back, or None: missing; or, for the kinds GDAL writes, empty,
    a GeoTIFF with a tile missing, truncated or undecodable, a GeoPackage GDAL cannot open. (Files
    Python writes itself raise on a failed write, so for them existence is the test.)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix not in (".tif", ".tiff", ".gpkg"):
            path.stat()
            return None
        if path.stat().st_size == 0:
            return "the file is empty"
        if suffix == ".gpkg":
            import pyogrio  # lazy: only GeoPackage writers pay for it

            pyogrio.read_info(path)
            return None
        return _geotiff_problem(path)
    except FileNotFoundError:
        return "the file does not exist"
    except Exception as exc:  # rasterio's, pyogrio's and the OS's errors alike: the answer is "no"
        return " ".join(str(exc).split()) or type(exc).__name__


def is_readable(path: str | os.PathLike) -> bool:
    """Whether the file at `path` reads back (see :func:`file_problem`): the resume test."""
    return file_problem(path) is None


def verify_written(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Raise OSError naming `final` if the just-written `tmp` does not read back (see `file_problem`)."""
    if (problem := file_problem(tmp)) is not None:
        raise OSError(errno.EIO, f"the file just written does not read back ({problem}); is the disk full?",
                      str(final))


# rasterio's rasterize (and geometry_mask) from several threads at once was seen to warn that its
# in-memory raster had no geotransform (the masks still matched): the callers that run in threads
# (block workers, tile readers) take this lock around it
RASTERIZE_LOCK = threading.Lock()

_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}


def _write_failure(exc: OSError) -> bool:
    """Whether `exc`, raised while a file was being written, is the write failing without naming the
    file: an unnamed disk-full/too-big/read-only error, or GDAL's (rasterio's) write error."""
    if exc.filename is not None:
        return False
    if exc.errno in _WRITE_ERRNOS:
        return True
    text = str(exc).lower()
    return isinstance(exc, RasterioIOError) and ("write" in text or "disk space" in text or "no space" in text)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, verify: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `final`; verify what was written there (`verify_written`) and
    rename it onto `final` only if the block succeeds and the file reads back. `verify=False` is for
    byte copies, which Python writes (a failed write raises) and whose content is the source's.

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
        try:
            yield tmp_path
        except OSError as exc:
            if not _write_failure(exc):
                raise
            detail = exc.strerror if exc.errno and exc.strerror else " ".join(str(exc).split())
            raise OSError(exc.errno or errno.EIO, f"cannot write: {detail}", str(final)) from None
        if verify:
            verify_written(tmp_path, final)
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
