"""Wall-to-wall accuracy against reference class rasters (e.g. a 1 m land-cover map): our map and
every product scored pixel by pixel in the reference's legend, on the same pixels.

The scored pixels can be restricted to regions (e.g. the regions held out of training) and can
exclude boxes (the training blocks), so that the score measures land no training window touched
-- spatial cross-validation. Each reference raster is read window by window on its own grid; the
map and the products are resampled onto it (nearest). Memory is bounded by the window.

Products are scored like :mod:`l2h.evaluation.evaluate` scores them (a code standing for a set of classes is
right when the reference is one of them), or through an explicit ``crosswalk`` (product code ->
reference class), the usual way to read, e.g., NLCD in a 4-class legend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import rasterio
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.features import geometry_mask
from rasterio.warp import Resampling, reproject
from shapely.geometry import box
from shapely.ops import transform as shapely_transform

from l2h.core.errors import ConfigError, InputError
from l2h.evaluation.evaluate import Legend, norm_label
from l2h.evaluation.metrics import confusion_matrix, scores
from l2h.evaluation.reference_points import class_windows, recode_table, valid_classes
from l2h.inputs.fetch_product import ProductFiles
from l2h.labels.harmonize import NO_FILE, OpenProduct

MAP_NODATA = 0


def _reproject_geoms(geoms: Sequence, src_crs, dst_crs) -> list:
    src, dst = ProjCRS.from_user_input(src_crs), ProjCRS.from_user_input(dst_crs)
    if src == dst:
        return list(geoms)
    t = Transformer.from_crs(src, dst, always_xy=True)
    return [shapely_transform(t.transform, g) for g in geoms]


def _reference_lut(legend: Legend) -> np.ndarray:
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


def score_pixels(map_path: str, references: Sequence[str], legend: Legend, recode: Mapping[int, int] | None = None,
                 products: Sequence[ProductFiles] = (), crosswalks: Mapping[str, Mapping] | None = None,
                 regions: tuple[Sequence, str] | None = None,
                 exclude: tuple[Sequence[tuple[float, float, float, float]], str] | None = None) -> dict:
    """Score the map and the products against the reference rasters on the pixels they all cover.

    ``references``: class rasters (any CRS; values recoded by ``recode``, then read as codes of
    ``legend``; other values and nodata are not scored). ``regions``: (geometries, their CRS) --
    only pixels inside them count; ``exclude``: (boxes (xmin, ymin, xmax, ymax), their CRS) --
    pixels inside them do not count. ``crosswalks``: {product id: {code: reference class}}.

    Returns {"n_pixels", "excluded_pixels", "sources": {"map" | product id: {"oa", "kappa",
    "miou", "iou", "producers", "users" (per reference class), "confusion"}}}.
    """
    if not references:
        raise ConfigError("no reference raster given")
    crosswalks = dict(crosswalks or {})
    unknown = sorted(set(crosswalks) - {p.id for p in products})
    if unknown:
        raise ConfigError(f"crosswalk given for product(s) {', '.join(unknown)}, which are not scored here")
    table = recode_table(recode or {}, ())
    ref_lut = _reference_lut(legend)
    luts = {p.id: _product_lut(p, legend, crosswalks.get(p.id)) for p in products}
    names = ["map", *luts]
    cms = {name: np.zeros((legend.k, legend.k), np.int64) for name in names}
    n_excluded = 0
    try:
        map_src = rasterio.open(map_path)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"map {map_path}: cannot be opened: {exc}") from None
    with map_src:
        for path in references:
            n_excluded += _score_reference(path, map_src, products, luts, table, ref_lut, legend, regions, exclude,
                                           cms)
    n = int(cms["map"].sum())
    if n == 0:
        raise InputError(f"no pixel of the reference raster(s) {', '.join(references)} is covered by the map"
                         f"{' and every product' if products else ''} inside the scored area")
    return {"n_pixels": n, "excluded_pixels": n_excluded, "legend": dict(zip(legend.codes, legend.names)),
            "sources": {name: _summary(cm, legend) for name, cm in cms.items()}}


def _score_reference(path, map_src, products, luts, table, ref_lut, legend, regions, exclude, cms) -> int:
    """Add one reference raster's pixels to the confusion matrices; the pixels excluded."""
    opened: dict[str, OpenProduct] = {}
    n_excluded = 0
    try:
        for src, win, codes in class_windows(path):
            if not opened:
                opened = {p.id: OpenProduct(p, src.crs.to_wkt()) for p in products}
            transform, shape = src.window_transform(win), codes.shape
            valid = valid_classes(src, codes, table, path)
            ref = np.where(valid >= 0, ref_lut[np.clip(valid, 0, 255)], -1)
            if regions is not None:
                geoms = _reproject_geoms(regions[0], regions[1], src.crs)
                ref[geometry_mask(geoms, out_shape=shape, transform=transform)] = -1
            if exclude is not None and exclude[0]:
                boxes = _reproject_geoms([box(*b) for b in exclude[0]], exclude[1], src.crs)
                inside = ~geometry_mask(boxes, out_shape=shape, transform=transform)
                n_excluded += int((inside & (ref >= 0)).sum())
                ref[inside] = -1
            preds = {"map": _map_window(map_src, transform, src.crs, shape, legend)}
            bounds = rasterio.windows.bounds(win, src.transform)
            for pid, product in opened.items():
                pcodes = product.read(transform, src.crs, shape, bounds).astype(np.int64)
                preds[pid] = luts[pid][pcodes, np.clip(ref, 0, None)]
            common = (ref >= 0) & np.logical_and.reduce([p >= 0 for p in preds.values()])
            for name, pred in preds.items():
                cms[name] += confusion_matrix(ref[common], pred[common], legend.k)
    finally:
        for product in opened.values():
            product.close()
    return n_excluded


def _map_window(src, transform, crs, shape, legend: Legend) -> np.ndarray:
    out = np.full(shape, MAP_NODATA, np.uint8)
    reproject(source=rasterio.band(src, 1), destination=out, src_nodata=src.nodata, dst_nodata=MAP_NODATA,
              dst_transform=transform, dst_crs=crs, resampling=Resampling.nearest)
    return np.where(out != MAP_NODATA, legend.ours[out], -1)


def _summary(cm: np.ndarray, legend: Legend) -> dict:
    s = scores(cm)

    def per_class(values):
        return {code: (None if np.isnan(v) else round(float(v), 6)) for code, v in zip(legend.codes, values)}

    return {"oa": round(float(s["oa"]), 6), "kappa": round(float(s["kappa"]), 6), "miou": round(float(s["miou"]), 6),
            "iou": per_class(s["iou"]), "producers": per_class(s["producers"]), "users": per_class(s["users"]),
            "confusion": cm.tolist()}
