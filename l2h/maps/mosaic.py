"""Region and national mosaics: block predictions streamed window by window into Cloud-Optimized
GeoTIFFs (tiled 512, DEFLATE, nodata 0), clipped to the region polygon; memory is bounded by the
window, never the region. Layers: ``classes`` (MODE overviews, the class colour table), ``network``
(the network's own map without the label prior, a class map like ``classes``) and ``confidence``
(max class probability x 255; AVERAGE overviews, no colour table)."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.features import geometry_mask
from rasterio.windows import from_bounds
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from l2h.core.classes import NODATA, colormap
from l2h.core.errors import InputError
from l2h.core.io import atomic_path, class_raster_profile, file_problem, verify_written
from l2h.core.windows import iter_windows
from l2h.maps.chunks import PROVIDERS_TAG, discard_broken_block, expand_manifests, provider_counts
from l2h.maps.gis_files import class_name_tags, write_category_sidecar, write_qml

log = logging.getLogger(__name__)
WINDOW = 2048
GDAL_CACHE_MB = 64  # GDAL's block cache; its default (5 % of RAM) would let memory grow with the area


def _footprint(path: str, manifests: dict[str, str]) -> tuple[float, float, float, float]:
    """A block prediction's bounds. A file that does not read back is named; if l2h wrote it and a
    chunk manifest lists it (``manifests``: file -> manifest), it is removed with that manifest so that
    the next run predicts it again; any other file is left as it is."""
    if (problem := file_problem(path)) is None:
        with rasterio.open(path) as src:
            return tuple(src.bounds)
    if discard_broken_block(path, manifests):
        raise InputError(f"block prediction {path}: unreadable or truncated ({problem}); it was removed with "
                         f"its chunk manifest {manifests[str(path)]} so that the next run predicts the block "
                         f"again")
    raise InputError(f"block prediction {path}: unreadable or truncated ({problem}); l2h did not record "
                     f"writing it, so it was left in place: replace or remove it")


LAYERS = {"classes": "mode", "network": "mode", "confidence": "average"}  # layer -> overview resampling
CLASS_LAYERS = ("classes", "network")
CONFIDENCE_TAGS = {"CONFIDENCE": "probability of the mapped class x 255 (0 = no data)"}


def _check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"mosaic layer must be one of {', '.join(LAYERS)}, got {layer!r}")


def merge_blocks(block_paths: Sequence[str | Path], geometry, crs: str, resolution: float, out_tif: str | Path,
                 window: int = WINDOW, layer: str = "classes", region: str | None = None) -> None:
    """Write the blocks into one class GeoTIFF over `geometry`'s extent, clipped to it, window by window.

    ``block_paths``: GeoTIFFs and/or chunk manifests (``.json``, :mod:`l2h.maps.chunks`), whose blocks of
    ``layer`` touching ``region`` (every block when None) are used. Each output window opens only
    the blocks that overlap it (a national run has thousands).
    """
    _check_layer(layer)
    files, manifests = expand_manifests(block_paths, layer, region)
    if not files:
        raise InputError("mosaic: no block predictions to merge")
    footprints = [(p, _footprint(p, manifests)) for p in files]
    res = resolution
    west, south, east, north = geometry.bounds
    west, south = np.floor(west / res) * res, np.floor(south / res) * res
    east, north = np.ceil(east / res) * res, np.ceil(north / res) * res
    width, height = round((east - west) / res), round((north - south) / res)
    transform = rasterio.transform.from_origin(west, north, res, res)
    profile = class_raster_profile(width, height, crs, transform, BIGTIFF="IF_SAFER")
    with atomic_path(out_tif) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        if layer in CLASS_LAYERS:
            dst.write_colormap(1, colormap())
        for win in iter_windows(width, height, window):
            left, bottom, right, top = rasterio.windows.bounds(win, transform)
            data = np.zeros((int(win.height), int(win.width)), np.uint8)
            for path, (b_left, b_bottom, b_right, b_top) in footprints:
                if b_right <= left or b_left >= right or b_top <= bottom or b_bottom >= top:
                    continue
                with rasterio.open(path) as src:
                    part = src.read(1, window=from_bounds(left, bottom, right, top, transform=src.transform),
                                    boundless=True, fill_value=NODATA, out_shape=data.shape)
                data = np.where(part != NODATA, part, data)
            inside = ~geometry_mask([geometry], out_shape=data.shape, transform=dst.window_transform(win))
            data[~inside] = NODATA
            dst.write(data, 1, window=win)


def to_cog(src_tif: str | Path, out_cog: str | Path, layer: str = "classes", tags: dict | None = None) -> None:
    """Translate a merged GeoTIFF into a validated COG (DEFLATE, 512 tiles, overviews down to one
    tile: MODE and the palette for classes, AVERAGE for confidence), with ``tags`` in its metadata."""
    _check_layer(layer)
    profile = {**cog_profiles.get("deflate"), "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER"}
    with rasterio.open(src_tif) as src:
        levels = max(0, math.ceil(math.log2(max(src.width, src.height) / 512)))  # down to one 512 tile
    out_cog = Path(out_cog)
    out_cog.parent.mkdir(parents=True, exist_ok=True)
    # rio-cogeo puts its intermediate file beside its output: both live in a hidden folder, so a
    # killed job leaves nothing under a visible name
    with tempfile.TemporaryDirectory(prefix=f".{out_cog.stem}.cog.", dir=out_cog.parent) as scratch:
        tmp = Path(scratch) / out_cog.name
        try:
            cog_translate(str(src_tif), str(tmp), profile, nodata=NODATA, overview_level=levels,
                          overview_resampling=LAYERS[layer], colormap=colormap() if layer in CLASS_LAYERS else None,
                          additional_cog_metadata={**(class_name_tags() if layer in CLASS_LAYERS
                                                      else CONFIDENCE_TAGS), **(tags or {})},
                          in_memory=False, quiet=True)
        except (OSError, RasterioError) as exc:  # its input was verified when written: writing failed
            raise OSError(getattr(exc, "errno", None) or errno.EIO,
                          f"cannot write the COG: {' '.join(str(exc).split())}", str(out_cog)) from None
        valid, errors, warnings = cog_validate(str(tmp), strict=True, quiet=True)
        if not valid:
            raise InputError(f"mosaic {out_cog}: not a valid COG: {errors + warnings}")
        verify_written(tmp, out_cog)
        os.replace(tmp, out_cog)


def _providers(paths: Sequence[str | Path], region: str | None) -> dict[str, dict[str, int]]:
    """The execution providers that mapped the blocks of a mosaic (:func:`l2h.maps.chunks.provider_counts`):
    from its chunk manifests for a region; for a mosaic of region maps, the sum of what their own chunks
    held (each block once)."""
    if region is not None:
        return provider_counts(paths, region)
    owned: Counter = Counter()
    for path in (p for p in map(str, paths) if not p.endswith(".json")):
        with rasterio.open(path) as src:
            owned.update(json.loads(src.tags().get(PROVIDERS_TAG, "{}")).get("owned", {}))
    return {"touching": dict(sorted(owned.items())), "owned": dict(sorted(owned.items()))}


def mosaic(block_paths: Sequence[str | Path], geometry, crs: str, resolution: float, out_cog: str | Path,
           layer: str = "classes", region: str | None = None) -> None:
    """Blocks (GeoTIFFs or chunk manifests, see :func:`merge_blocks`) -> clipped GeoTIFF -> COG,
    through a temporary file next to `out_cog`; then its GIS sidecars (:mod:`l2h.maps.gis_files`): the
    QGIS style, and for a class map the category names and attribute table."""
    scratch = Path(out_cog).with_name(f".{Path(out_cog).stem}.merge.tif")
    providers = _providers(block_paths, region)
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            merge_blocks(block_paths, geometry, crs, resolution, scratch, layer=layer, region=region)
            to_cog(scratch, out_cog, layer=layer,
                   tags={PROVIDERS_TAG: json.dumps(providers)} if providers["touching"] else None)
    finally:
        scratch.unlink(missing_ok=True)
    if layer in CLASS_LAYERS:
        write_category_sidecar(out_cog)
    write_qml(out_cog, "classes" if layer in CLASS_LAYERS else layer)
