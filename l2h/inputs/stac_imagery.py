"""Imagery from a STAC collection of COGs, cached block by block like any other imagery source.

The region's items are searched once (:mod:`l2h.inputs.stac`); each block then reads, window by
window, only the items that meet it, in the search's order: the first item with data at a pixel
gives it (newest first by default). An item on the run's grid (same CRS and pixel size, pixel
edges on the grid's) is read by window, so GDAL fetches only the COG tiles under the block (plus
the file's header); any other item is warped onto the block. Each block file records, in its
``L2H_STAC_ITEMS`` tag, the items that gave it pixels; `write_provenance` gathers them per block.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import rasterio
import shapely.geometry
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from tqdm import tqdm

from l2h.core.errors import InputError
from l2h.core.io import atomic_path, is_readable
from l2h.core.secrets import expand, redact
from l2h.core.windows import clip_window
from l2h.inputs.imagery import (
    NODATA,
    _block_transform,
    _http_env,
    _redacted_gdal_logs,
    _resampling,
    _src_nodata,
    build_vrt,
    region_blocks,
    write_block,
)
from l2h.inputs.stac import Found, StacSearch, gdal_name, overlaps, search

log = logging.getLogger(__name__)

ITEMS_TAG = "L2H_STAC_ITEMS"
OPEN_ITEMS = 32  # item datasets kept open between blocks


class _Item:
    """An open item: its dataset and how it lands on the current block (a window of the item's own
    grid when aligned, else a WarpedVRT onto the block)."""

    def __init__(self, found: Found, src, block_transform, crs: CRS, resolution: float, block_size: int,
                 resampling):
        self.found, self.src = found, src
        self.offset = _grid_offset(src, block_transform, crs, resolution)
        self.vrt = None
        if self.offset is None:
            self.vrt = WarpedVRT(src, crs=crs, transform=block_transform, width=block_size, height=block_size,
                                 resampling=resampling, src_nodata=_src_nodata(src), nodata=NODATA)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray] | None:
        """(bands, valid pixels) of `window` of the block, or None when the item has nothing there."""
        if self.vrt is not None:
            data = self.vrt.read(window=window)
            return data, self.vrt.dataset_mask(window=window) > 0
        inside = clip_window(Window(self.offset[0] + window.col_off, self.offset[1] + window.row_off,
                                    window.width, window.height), self.src.width, self.src.height)
        if inside is None:
            return None
        part, (rows, cols) = inside
        data = np.zeros((self.src.count, window.height, window.width), self.src.dtypes[0])
        valid = np.zeros((window.height, window.width), bool)
        data[:, rows, cols] = self.src.read(window=part)
        fill = _src_nodata(self.src)
        if fill is not None:  # GDAL's rule for a nodata value: a pixel is data where any band is not it
            valid[rows, cols] = (data[:, rows, cols] != fill).any(axis=0)
        else:  # a mask or alpha band
            valid[rows, cols] = self.src.dataset_mask(window=part) > 0
        return data, valid

    def close(self) -> None:
        if self.vrt is not None:
            self.vrt.close()


def _grid_offset(src, block_transform, crs: CRS, resolution: float) -> tuple[int, int] | None:
    """(column, row) of the block's corner in the item's pixels when the item lies on the run's grid."""
    t = src.transform
    if src.crs != crs or t.b or t.d or not math.isclose(t.a, resolution) or not math.isclose(-t.e, resolution):
        return None
    col = (block_transform.c - t.c) / resolution
    row = (t.f - block_transform.f) / resolution
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(col), round(row)


def _open(found: Found, what: str):
    try:
        return rasterio.open(gdal_name(expand(found.href, f"config key '{what}.asset_query'")))
    except RasterioError as exc:
        raise InputError(f"{what}: item {found.id} asset {redact(found.href)}: cannot be opened as a raster "
                         f"(a 404, an HTML page?): {redact(' '.join(str(exc).split()))}") from None


class _OpenItems:
    """The items' datasets for the blocks. An item whose COG tiles straddle block edges (off the grid,
    or tiles not on the blocks' edges) stays open from block to block (at most `limit`, least
    recently used closed first): neighbouring blocks share those tiles, which GDAL's block cache then
    holds instead of fetching them again. An item whose tiles fall inside blocks is opened afresh for
    each block: no tile is shared, and a long-lived handle's read-ahead (GDAL grows its requests on
    consecutive reads) would fetch tiles beyond the block. Each dataset is checked against the first
    item's bands when opened."""

    def __init__(self, template, what: str, block_size: int, limit: int = OPEN_ITEMS):
        self.template, self.what, self.block_size, self.limit = template, what, block_size, limit
        self._open: OrderedDict[str, object] = OrderedDict()
        self._per_block: set[str] = set()  # items whose tiles never straddle a block edge

    def get(self, found: Found, block_transform, crs: CRS, resolution: float):
        """(dataset, whether the caller closes it after the block)."""
        if found.id in self._open:
            self._open.move_to_end(found.id)
            return self._open[found.id], False
        src = _open(found, self.what)
        try:
            _check_like(src, self.template, found, self.what)
        except InputError:
            src.close()
            raise
        if found.id in self._per_block or self._tiles_inside_blocks(src, block_transform, crs, resolution):
            self._per_block.add(found.id)
            return src, True
        self._open[found.id] = src
        while len(self._open) > self.limit:
            self._open.popitem(last=False)[1].close()
        return src, False

    def _tiles_inside_blocks(self, src, block_transform, crs: CRS, resolution: float) -> bool:
        offset = _grid_offset(src, block_transform, crs, resolution)
        rows, cols = src.block_shapes[0]
        return (offset is not None and self.block_size % rows == 0 and self.block_size % cols == 0
                and offset[0] % cols == 0 and offset[1] % rows == 0)

    def close(self) -> None:
        for src in self._open.values():
            src.close()
        self._open.clear()


def _check_like(src, first, found: Found, what: str) -> None:
    if src.crs is None:
        raise InputError(f"{what}: item {found.id} asset {redact(found.href)}: has no CRS")
    if (src.count, src.dtypes[0]) != (first.count, first.dtypes[0]):
        raise InputError(f"{what}: item {found.id} has {src.count} band(s) of {src.dtypes[0]}, but the first "
                         f"item has {first.count} of {first.dtypes[0]}; every item needs the same bands")


def _cache_block(found: list[Found], opened: _OpenItems, block, crs: CRS, resolution: float, block_size: int,
                 path: Path, resampling, what: str) -> list[str]:
    """Compose `block` from the items (in order) and write it to `path` atomically; the ids of the
    items that gave it pixels."""
    transform = _block_transform(block, resolution)
    template = opened.template
    used: list[str] = []

    def compose(window: Window) -> np.ndarray:
        """The window's pixels: each from the first item with data there."""
        out = np.zeros((template.count, window.height, window.width), template.dtypes[0])
        filled = np.zeros((window.height, window.width), bool)
        for item in items:
            try:
                got = item.read(window)
            except RasterioError as exc:
                raise InputError(f"{what}: block {block.id}: cannot read item {item.found.id} "
                                 f"({redact(item.found.href)}): {redact(' '.join(str(exc).split()))}") from None
            if got is None:
                continue
            data, valid = got
            take = valid & ~filled
            if take.any():
                out[:, take] = data[:, take]
                filled |= take
                if item.found.id not in used:
                    used.append(item.found.id)
            if filled.all():
                break
        return out

    with contextlib.ExitStack() as stack:
        items = []
        for f in found:
            src, own = opened.get(f, transform, crs, resolution)
            if own:
                stack.callback(src.close)
            item = _Item(f, src, transform, crs, resolution, block_size, resampling)
            stack.callback(item.close)
            items.append(item)
        write_block(path, template, crs, transform, block_size, compose, tags=lambda: {ITEMS_TAG: json.dumps(used)})
    return used


def cache_stac_imagery(query: StacSearch, region_geometry, crs: str, resolution: float,
                       block_size: int, out_dir: Path, vrt_out: Path, *, resampling: str = "bilinear",
                       progress: bool = True) -> list[Path]:
    """Search `query` over the region, write ``out_dir/<block_id>.tif`` for every block of the region
    (resuming: blocks that read back are kept), then `vrt_out` over them and the provenance file
    beside it (:func:`provenance_path`). Returns the block files."""
    out_dir = Path(out_dir)
    blocks = region_blocks(region_geometry, resolution, block_size)
    crs = CRS.from_user_input(crs)
    rs = _resampling(resampling)
    found = search(query, transform_bounds(crs, "EPSG:4326", *region_geometry.bounds, densify_pts=21))
    todo = [b for b in blocks if not is_readable(out_dir / f"{b.id}.tif")]
    log.info("%s: %d item(s) over the region; %d blocks of %d px, %d already cached", query.describe(),
             len(found), len(blocks), block_size, len(blocks) - len(todo))
    if todo:
        with _redacted_gdal_logs(), rasterio.Env(**_http_env()), _open(found[0], query.what) as template, \
                contextlib.closing(_OpenItems(template, query.what, block_size)) as opened:
            _check_like(template, template, found[0], query.what)
            for block in tqdm(todo, desc="imagery blocks", unit="block", file=sys.stderr, disable=not progress):
                box = shapely.geometry.box(*transform_bounds(crs, "EPSG:4326", *block.bounds, densify_pts=21))
                meeting = [f for f in found if overlaps(f.footprint, box)]
                _cache_block(meeting, opened, block, crs, resolution, block_size, out_dir / f"{block.id}.tif",
                             rs, query.what)
    paths = [out_dir / f"{b.id}.tif" for b in blocks]
    build_vrt([str(p) for p in paths], vrt_out)
    write_provenance(query, found, paths, provenance_path(vrt_out))
    return paths


def provenance_path(vrt_out: str | Path) -> Path:
    """The provenance file of a region's cached STAC imagery: ``<region>.items.json`` beside its VRT."""
    return Path(vrt_out).with_suffix(".items.json")


def write_provenance(query: StacSearch, found: list[Found], paths: list[Path], out: Path) -> dict:
    """Write which items gave each block its pixels (from the blocks' tags), with the items' hrefs."""
    blocks = {}
    for path in paths:
        with rasterio.open(path) as src:
            blocks[path.stem] = json.loads(src.tags().get(ITEMS_TAG, "[]"))
    hrefs = {f.id: {"asset": redact(f.href), "item": redact(f.item.get_self_href() or "") or None} for f in found}
    used = sorted({i for ids in blocks.values() for i in ids})
    record = dict(source=query.describe(), collection=query.collection, asset=query.asset, order=query.order,
                  items={i: hrefs.get(i, {"asset": None, "item": None}) for i in used}, blocks=blocks)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    return record
