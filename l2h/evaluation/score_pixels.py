"""Wall-to-wall accuracy against reference class rasters (e.g. a 1 m land-cover map): our map(s),
the coarse training label and every product scored pixel by pixel in the reference's legend, on
the same pixels, with the measures of 1 m detail (docs/method.md §10, :mod:`l2h.evaluation.detail`).

The scored pixels can be restricted to regions (e.g. the regions held out of training) and can
exclude boxes (the training blocks), so that the score measures land no training window touched
-- spatial cross-validation. Each reference raster is read window by window on its own grid
(windows aligned to the coarse cells, with a halo for the boundary tolerance); the maps, labels and
products are resampled onto it (nearest). Memory is bounded by the window.

Two scopes: ``sources`` holds every map and product on the pixels where all of them have a class;
``where_labelled`` adds the coarse label(s) and keeps only the pixels where they have a class too.
Both carry ``perfect_<cell>m``, the reference's own cell majority: a map perfect at the coarse
resolution, which a 1 m map must beat to have used its resolution.

Products are scored like :mod:`l2h.evaluation.evaluate` scores them (a code standing for a set of classes is
right when the reference is one of them), or through an explicit ``crosswalk`` (product code ->
reference class), the usual way to read, e.g., NLCD in a 4-class legend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import rasterio
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.features import geometry_mask
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window
from shapely.geometry import box
from shapely.ops import transform as shapely_transform

from l2h.core.errors import ConfigError, InputError
from l2h.evaluation.detail import DetailCounts, cell_majority
from l2h.evaluation.evaluate import Legend, norm_label
from l2h.evaluation.metrics import confusion_matrix, scores
from l2h.evaluation.reference_points import open_reference, recode_table, valid_classes
from l2h.inputs.fetch_product import ProductFiles
from l2h.labels.harmonize import NO_FILE, OpenProduct

MAP_NODATA = 0
LABEL_IGNORE = 255  # a coarse label's "no class" value (0 = outside its region)
WINDOW_CELLS = 128  # a window is this many coarse cells square (1,280 px for 10 m cells on a 1 m reference)


def reproject_geoms(geoms: Sequence, src_crs, dst_crs) -> list:
    """Shapely geometries from one CRS to another."""
    src, dst = ProjCRS.from_user_input(src_crs), ProjCRS.from_user_input(dst_crs)
    if src == dst:
        return list(geoms)
    t = Transformer.from_crs(src, dst, always_xy=True)
    return [shapely_transform(t.transform, g) for g in geoms]


def reference_lut(legend: Legend) -> np.ndarray:
    """Recoded reference value (0..255) -> legend index, -1 where the legend has no such class."""
    lut = np.full(256, -1, np.int64)
    for value in range(256):
        if norm_label(value) in legend.codes:
            lut[value] = legend.codes.index(norm_label(value))
    return lut


def _product_lut(product: ProductFiles, legend: Legend, crosswalk: Mapping | None) -> np.ndarray:
    """(65536, K) lookup: product code x reference index -> the index the product scores as, -1
    where it has no data or no information there."""
    lut = np.full((NO_FILE + 1, legend.k), -1, np.int64)
    if crosswalk is not None:
        for code, target in crosswalk.items():
            if norm_label(target) not in legend.codes:
                raise ConfigError(f"crosswalk of product {product.id}: {target!r} is not a class of the reference "
                                  f"legend ({', '.join(legend.codes)})")
            lut[int(code), :] = legend.codes.index(norm_label(target))
        return lut
    for code, entry in product.codes.items():
        targets = sorted({int(legend.ours[c]) for c in entry.classes if legend.ours[c] >= 0})
        if not targets:
            continue
        lut[code, :] = int(legend.ours[min(entry.classes)])
        for t in targets:
            lut[code, t] = t  # right when the reference is one of the set's classes
    for nodata in product.nodata:
        lut[nodata, :] = -1
    return lut


def score_pixels(maps: str | Mapping[str, str], references: Sequence[str], legend: Legend,
                 recode: Mapping[int, int] | None = None, products: Sequence[ProductFiles] = (),
                 crosswalks: Mapping[str, Mapping] | None = None, regions: tuple[Sequence, str] | None = None,
                 exclude: tuple[Sequence[tuple[float, float, float, float]], str] | None = None,
                 labels: Mapping[str, Sequence[str]] | None = None, cell_size: float = 10.0,
                 tolerance: float = 2.0) -> dict:
    """Score the maps, labels and products against the reference rasters on the pixels they all cover.

    ``maps``: our class map, or {name: path} of several (e.g. {"map": ..., "network": ...}; our
    class codes, nodata 0). ``labels``: {name: [rasters]} of coarse training labels (our codes,
    255 = no class, 0 = outside; a name's rasters, e.g. one per region, are composited).
    ``references``: class rasters (any CRS; values recoded by ``recode``, then read as codes of
    ``legend``; other values and nodata are not scored). ``regions``: (geometries, their CRS) --
    only pixels inside them count; ``exclude``: (boxes (xmin, ymin, xmax, ymax), their CRS) --
    pixels inside them do not count. ``crosswalks``: {product id: {code: reference class}}.
    ``cell_size``: the coarse cell (reference CRS units, cells at its multiples) of the sub-cell and
    mixed-cell measures and of the perfect coarse map; ``tolerance``: of the boundary F1, in reference
    pixels.

    Returns {"n_pixels", "excluded_pixels", "legend", "cell_size", "boundary_tolerance_px", "sources":
    {name: {"oa", "kappa", "miou", "iou", "producers", "users" (per reference class), "confusion",
    "boundary_precision", "boundary_recall", "boundary_f1", "subcell_oa", "mixed_cell_oa", "pixels"}},
    "where_labelled": {"n_pixels", "sources"} (only with ``labels``)}.
    """
    if not references:
        raise ConfigError("no reference raster given")
    if not cell_size > 0 or not tolerance >= 0:
        raise ConfigError(f"cell size must be > 0 and boundary tolerance >= 0, got {cell_size} and {tolerance}")
    maps = {"map": maps} if isinstance(maps, str) else dict(maps)
    labels = {k: list(v) for k, v in (labels or {}).items()}
    crosswalks = dict(crosswalks or {})
    unknown = sorted(set(crosswalks) - {p.id for p in products})
    if unknown:
        raise ConfigError(f"crosswalk given for product(s) {', '.join(unknown)}, which are not scored here")
    clash = sorted(set(maps) & (set(labels) | {p.id for p in products}) | (set(labels) & {p.id for p in products}))
    if clash:
        raise ConfigError(f"source name(s) {', '.join(clash)} given twice (maps, labels and products need "
                          f"distinct names)")
    perfect = f"perfect_{cell_size:g}m"
    luts = {p.id: _product_lut(p, legend, crosswalks.get(p.id)) for p in products}
    scope = _Scope([*maps, *luts, perfect], legend.k)
    labelled = _Scope([*maps, *labels, *luts, perfect], legend.k) if labels else None
    opened_maps, opened_labels = {}, {}
    try:
        for name, path in maps.items():
            opened_maps[name] = _open(path, "map")
        for name, paths in labels.items():
            opened_labels[name] = [_open(path, f"label {name}") for path in paths]
        ctx = _Context(opened_maps, opened_labels, products, luts, recode_table(recode or {}, ()),
                       reference_lut(legend), legend, regions, exclude, cell_size, tolerance, perfect)
        for path in references:
            _score_reference(path, ctx, scope, labelled)
    finally:
        for src in [*opened_maps.values(), *(s for group in opened_labels.values() for s in group)]:
            src.close()
    if scope.n == 0:
        raise InputError(f"no pixel of the reference raster(s) {', '.join(references)} is covered by the map"
                         f"{' and every product' if products else ''} inside the scored area")
    out = {"n_pixels": scope.n, "excluded_pixels": ctx.excluded, "legend": dict(zip(legend.codes, legend.names)),
           "cell_size": cell_size, "boundary_tolerance_px": tolerance, "sources": scope.summary(legend)}
    if labelled is not None:
        out["where_labelled"] = {"n_pixels": labelled.n, "sources": labelled.summary(legend)}
    return out


def _open(path: str, what: str):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{what} {path}: cannot be opened: {exc}") from None


class _Scope:
    """Confusion matrices and detail counts of a set of sources on the pixels they all cover."""

    def __init__(self, names: Sequence[str], k: int):
        self.names = list(names)
        self.cms = {name: np.zeros((k, k), np.int64) for name in names}
        self.detail = {name: DetailCounts() for name in names}

    @property
    def n(self) -> int:
        """Pixels scored."""
        return int(self.cms[self.names[0]].sum())

    def add(self, ref: np.ndarray, preds: Mapping[str, np.ndarray], core: np.ndarray, ctx: _Context,
            majority: np.ndarray, mixed: np.ndarray) -> None:
        """Add a window: reference and predictions with the halo, ``core`` = the scored pixels
        before the sources' coverage is applied."""
        common = core & (ref >= 0) & np.logical_and.reduce([preds[n] >= 0 for n in self.names])
        if not common.any():
            return
        for name in self.names:
            pred = preds[name]
            self.cms[name] += confusion_matrix(ref[common], pred[common], len(self.cms[name]))
            self.detail[name].add(ref, pred, common, ctx.tolerance, majority, mixed)

    def summary(self, legend: Legend) -> dict:
        """The scores of each source."""
        return {name: {**_summary(self.cms[name], legend), **self.detail[name].summary()} for name in self.names}


class _Context:
    """What every window of every reference needs."""

    def __init__(self, maps, labels, products, luts, table, ref_lut, legend, regions, exclude, cell_size,
                 tolerance, perfect):
        self.maps, self.labels, self.products, self.luts = maps, labels, products, luts
        self.table, self.ref_lut, self.legend = table, ref_lut, legend
        self.regions, self.exclude = regions, exclude
        self.cell_size, self.tolerance, self.perfect = cell_size, tolerance, perfect
        self.excluded = 0


def _cell_grid(src, cell_size: float) -> tuple[int, int, int]:
    """(cell side in reference pixels, pixels from the cell line above the raster to its first row,
    pixels from the cell line left of the raster to its first column); cells at multiples of the cell size."""
    t = src.transform
    if t.b or t.d or t.e >= 0 or not math.isclose(t.a, -t.e, rel_tol=1e-6):
        raise InputError(f"reference raster {src.name}: needs a north-up grid of square pixels")
    cell = cell_size / t.a
    if abs(cell - round(cell)) > 1e-6 or round(cell) < 1:
        raise ConfigError(f"cell size {cell_size:g} is not a whole number of the reference's {t.a:g} pixels "
                          f"({src.name})")
    cell = round(cell)
    col_off = round((t.c - math.floor(t.c / cell_size + 1e-9) * cell_size) / t.a) % cell
    row_off = round((math.ceil(t.f / cell_size - 1e-9) * cell_size - t.f) / t.a) % cell
    return cell, row_off, col_off


def _score_reference(path: str, ctx: _Context, scope: _Scope, labelled: _Scope | None) -> None:
    """Add one reference raster's pixels to the scopes."""
    with open_reference(path) as src:
        cell, row_off, col_off = _cell_grid(src, ctx.cell_size)
        opened = {p.id: OpenProduct(p, src.crs.to_wkt()) for p in ctx.products}
        try:
            geoms = reproject_geoms(ctx.regions[0], ctx.regions[1], src.crs) if ctx.regions is not None else None
            boxes = (reproject_geoms([box(*b) for b in ctx.exclude[0]], ctx.exclude[1], src.crs)
                     if ctx.exclude is not None and ctx.exclude[0] else None)
            halo = int(math.ceil(ctx.tolerance)) + 1
            size = WINDOW_CELLS * cell
            for row in range(-row_off, src.height, size):
                for col in range(-col_off, src.width, size):
                    _score_window(src, path, Window(col - halo, row - halo, size + 2 * halo, size + 2 * halo), halo,
                                  (row_off, col_off), cell, ctx, opened, geoms, boxes, scope, labelled)
        finally:
            for product in opened.values():
                product.close()


def _score_window(src, path, win, halo, offset, cell, ctx, opened, geoms, boxes, scope, labelled) -> None:
    codes = src.read(1, window=win, boundless=True, fill_value=src.nodata if src.nodata is not None else 0)
    outside = np.ones(codes.shape, bool)
    r0, c0 = max(0, -int(win.row_off)), max(0, -int(win.col_off))
    r1 = min(codes.shape[0], src.height - int(win.row_off))
    c1 = min(codes.shape[1], src.width - int(win.col_off))
    if r1 <= r0 or c1 <= c0:
        return
    outside[r0:r1, c0:c1] = False
    valid = valid_classes(src, codes, ctx.table, path)
    ref = np.where((valid >= 0) & ~outside, ctx.ref_lut[np.clip(valid, 0, 255)], -1)
    if not (ref[halo:-halo, halo:-halo] >= 0).any():
        return
    transform, shape = src.window_transform(win), codes.shape
    core = np.zeros(shape, bool)
    core[halo:-halo, halo:-halo] = True
    if geoms is not None:
        core &= ~geometry_mask(geoms, out_shape=shape, transform=transform)
    if boxes is not None:
        inside = ~geometry_mask(boxes, out_shape=shape, transform=transform)
        ctx.excluded += int((inside & core & (ref >= 0)).sum())
        core &= ~inside
    # the window starts `halo` pixels before a cell line
    majority, mixed = cell_majority(ref, cell, ((cell - halo % cell) % cell,) * 2)
    preds = {name: _map_window(m, transform, src.crs, shape, ctx.legend) for name, m in ctx.maps.items()}
    bounds = rasterio.windows.bounds(win, src.transform)
    for pid, product in opened.items():
        pcodes = product.read(transform, src.crs, shape, bounds).astype(np.int64)
        preds[pid] = ctx.luts[pid][pcodes, np.clip(ref, 0, None)]
    preds[ctx.perfect] = majority
    scope.add(ref, preds, core, ctx, majority, mixed)
    if labelled is not None:
        for name, sources in ctx.labels.items():
            preds[name] = _label_window(sources, transform, src.crs, shape, ctx.legend)
        labelled.add(ref, preds, core, ctx, majority, mixed)


def _map_window(src, transform, crs, shape, legend: Legend) -> np.ndarray:
    out = np.full(shape, MAP_NODATA, np.uint8)
    reproject(source=rasterio.band(src, 1), destination=out, src_nodata=src.nodata, dst_nodata=MAP_NODATA,
              dst_transform=transform, dst_crs=crs, resampling=Resampling.nearest)
    return np.where(out != MAP_NODATA, legend.ours[out], -1)


def _label_window(sources, transform, crs, shape, legend: Legend) -> np.ndarray:
    """A coarse label on the window grid, as reference indices (-1 = no class or outside)."""
    out = np.full(shape, MAP_NODATA, np.uint8)
    for src in sources:
        reproject(source=rasterio.band(src, 1), destination=out, src_nodata=MAP_NODATA, dst_nodata=MAP_NODATA,
                  dst_transform=transform, dst_crs=crs, resampling=Resampling.nearest, init_dest_nodata=False)
    return np.where((out != MAP_NODATA) & (out != LABEL_IGNORE), legend.ours[out], -1)


def _summary(cm: np.ndarray, legend: Legend) -> dict:
    s = scores(cm)

    def per_class(values):
        return {code: (None if np.isnan(v) else round(float(v), 6)) for code, v in zip(legend.codes, values)}

    return {"oa": round(float(s["oa"]), 6), "kappa": round(float(s["kappa"]), 6), "miou": round(float(s["miou"]), 6),
            "iou": per_class(s["iou"]), "producers": per_class(s["producers"]), "users": per_class(s["users"]),
            "confusion": cm.tolist()}
