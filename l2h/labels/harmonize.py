"""Consensus training labels (docs/method.md §4): every product reprojected (nearest) onto the region's
10 m grid, its codes mapped to sets of our classes, and a pixel labelled with class c only where the
products agree on exactly {c}; 255 (ignore) elsewhere, 0 outside the region.

Beside that hard label, :func:`harmonize_region` can write the **class-set label**: per pixel the
set S of our classes the products leave possible, as a uint16 bitmask (bit c = class code c; 0 =
outside the region or no product has information). Where the hard label has class c, S = {c};
where it is 255, S holds what the ambiguity allows -- a code's own set (NLCD 21 developed open
space -> {grass, tree}), the classes a majority of products support, or, where the products
contradict each other, the union of their sets -- and training can learn from it with a
partial-label loss (:mod:`l2h.model.loss`) instead of ignoring the pixel.

The region is processed window by window, so memory is bounded by the window, not the region.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.errors import RasterioError
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box

from l2h.core.classes import CLASS_CODES, IGNORE, NODATA, ProductCode, colormap
from l2h.core.errors import InputError
from l2h.core.io import atomic_path, class_raster_profile
from l2h.core.windows import iter_windows
from l2h.inputs.fetch_product import ProductFiles

log = logging.getLogger(__name__)

# bitmask (bit c = class c) -> class code when exactly one bit is set, else IGNORE
_SINGLE_CLASS = np.full(1 << 16, IGNORE, np.uint8)
for _c in CLASS_CODES:
    _SINGLE_CLASS[1 << _c] = _c


def code_lookup(codes: dict[int, ProductCode], nodata: Sequence[int] = (0,)) -> tuple[np.ndarray, np.ndarray]:
    """256-entry tables: the class-set bitmask of each code, and whether a code is unknown."""
    masks = np.zeros(256, np.uint16)
    unknown = np.ones(256, bool)
    for code, entry in codes.items():
        masks[code] = sum(1 << c for c in entry.classes)
        unknown[code] = False
    unknown[list(nodata)] = False
    return masks, unknown


def consensus(masks: Sequence[np.ndarray], rule: str = "all") -> np.ndarray:
    """Class where the products agree, IGNORE elsewhere; a zero mask (no data, clouds) abstains.

    `all`: the intersection of every available product's class set is exactly {c}.
    `majority`: c is in the sets of more than half of the available products, and no other class is.
    """
    return _SINGLE_CLASS[consensus_sets(masks, rule)]


def consensus_sets(masks: Sequence[np.ndarray], rule: str = "all") -> np.ndarray:
    """The set of classes the products leave possible (uint16 bitmask, 0 = no product has data).

    `all`: the intersection of the available products' sets, or their union where it is empty (they
    contradict each other); `majority`: the classes in the sets of more than half of the available
    products, or the union where no class has a majority. Where :func:`consensus` gives class c
    this is exactly {c}.
    """
    if rule not in ("all", "majority"):
        raise ValueError(f"agreement rule must be 'all' or 'majority', got {rule!r}")
    union = np.zeros(masks[0].shape, np.uint16)
    for m in masks:
        union |= m
    if rule == "all":
        acc = np.full(masks[0].shape, 0xFFFF, np.uint16)
        for m in masks:
            acc = np.where(m != 0, acc & m, acc)
        agreed = np.where(acc == 0xFFFF, 0, acc).astype(np.uint16)
    else:
        agreed = _majority_winners(masks)
    return np.where(agreed != 0, agreed, union).astype(np.uint16)


def _majority_winners(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Bitmask of the classes in the sets of more than half of the products with data."""
    available = sum((m != 0).astype(np.uint8) for m in masks)
    winners = np.zeros(masks[0].shape, np.uint16)
    for c in CLASS_CODES:
        votes = sum(((m >> c) & 1).astype(np.uint8) for m in masks)
        winners |= np.where(2 * votes > available, 1 << c, 0).astype(np.uint16)
    return winners


def region_label_grid(geometry, resolution: float) -> tuple[rasterio.Affine, int, int]:
    """Transform, width, height of the label grid covering `geometry`, snapped to `resolution`."""
    west, south, east, north = geometry.bounds
    west = math.floor(west / resolution) * resolution
    south = math.floor(south / resolution) * resolution
    east = math.ceil(east / resolution) * resolution
    north = math.ceil(north / resolution) * resolution
    width, height = round((east - west) / resolution), round((north - south) / resolution)
    return from_origin(west, north, resolution, resolution), width, height


NO_FILE = 0xFFFF  # composite value where no file of the product has data (codes are 0..255)


class OpenProduct:
    """A product's files opened once, with their footprints in the run CRS."""

    def __init__(self, product: ProductFiles, crs: str):
        self.product = product
        self.masks, self.unknown = code_lookup(product.codes, product.nodata)
        self.sources = []
        try:
            for i, path in enumerate(product.paths):
                label = product.labels[i] if product.labels else f"{product.id} file {Path(path).name}"
                try:
                    src = rasterio.open(path)
                except RasterioError as exc:
                    raise self._bad(i, label, str(exc)) from None
                self.sources.append((src, None, label, path))
                self._check_grid(src, path, label, i)
                footprint = box(*transform_bounds(src.crs, crs, *src.bounds, densify_pts=21))
                self.sources[-1] = (src, footprint, label, path)
        except Exception:
            self.close()
            raise

    def _bad(self, i: int, label: str, problem: str) -> _BadFile:
        """A read failure; downloaded copies are removed (with the manifest) so a rerun refetches them."""
        refetch = bool(self.product.refetchable) and self.product.refetchable[i]
        manifest = self.product.manifest
        # only a copy l2h downloaded into the manifest's own folder is its to remove
        refetch = refetch and manifest is not None and Path(manifest).resolve().parent in Path(
            self.product.paths[i]).resolve().parents
        return _BadFile(self.product.paths[i], label, problem, self.product.manifest if refetch else None, refetch)

    def _check_grid(self, src, path: str, label: str, i: int) -> None:
        expected = self.product.expected_crs[i] if self.product.expected_crs else None
        if src.crs is None:
            raise InputError(f"{label} ({path}): has no CRS")
        if expected and CRS.from_user_input(src.crs) != CRS.from_user_input(expected):
            raise InputError(f"{label} ({path}): CRS is {src.crs}, but the {self.product.id} preset "
                             f"says {expected}; is `preset`/`edition` right for this file?")
        res = self.product.expected_resolution[i] if self.product.expected_resolution else None
        if res and not all(math.isclose(r, res, rel_tol=1e-3) for r in src.res):
            raise InputError(f"{label} ({path}): pixel size is {src.res}, but the {self.product.id} "
                             f"preset says {res}")

    def read(self, transform, crs: str, shape: tuple[int, int], bounds) -> np.ndarray:
        """Product codes on the window grid as uint16, NO_FILE where no file has data; tiles composited
        in order (code 0 may be a real class of a custom product)."""
        out = np.full(shape, NO_FILE, np.uint16)
        window_box = box(*bounds)
        for i, (src, footprint, label, _) in enumerate(self.sources):
            if not footprint.intersects(window_box):
                continue
            try:
                reproject(source=rasterio.band(src, 1), destination=out, src_nodata=self.product.nodata[0],
                          dst_nodata=NO_FILE, dst_transform=transform, dst_crs=crs,
                          resampling=Resampling.nearest, init_dest_nodata=False)
            except RasterioError as exc:
                raise self._bad(i, label, str(exc)) from None
        return out

    def close(self) -> None:
        """Close every opened product file."""
        for src, *_ in self.sources:
            src.close()


class _BadFile(InputError):
    """A product file GDAL cannot read; a downloaded copy is removed (with its manifest) so a rerun
    refetches it; the user's own files are never touched."""

    def __init__(self, path: str, label: str, problem: str, manifest: str | None, refetch: bool):
        self.paths = [path, manifest] if refetch and manifest else []
        remedy = ("it was removed so that the next run fetches it again" if self.paths
                  else "fix or replace the file")
        super().__init__(f"{label} ({path}): unreadable or truncated raster ({problem}); {remedy}")


@dataclass
class LabelStats:
    """What harmonize measured over one region."""

    region_pixels: int = 0
    class_pixels: dict[int, int] = field(default_factory=lambda: {c: 0 for c in CLASS_CODES})
    ignored_pixels: int = 0
    product_pixels: dict[str, int] = field(default_factory=dict)  # pixels with data, per product
    unknown_codes: dict[str, dict[int, int]] = field(default_factory=dict)
    pair_agree: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # [agree, both valid]
    road_pixels: int = 0


GDAL_CACHE_MB = 64  # GDAL's block cache; its default (5 % of RAM) would let memory grow with the region


def harmonize_region(geometry, crs: str, products: Sequence[ProductFiles], out: str | Path,
                     resolution: float = 10.0, rule: str = "all", window: int = 1024,
                     burn=None, region_name: str = "region", sets_out: str | Path | None = None) -> LabelStats:
    """Write the consensus label of one region (uint8 GeoTIFF, palette) and return its statistics.

    `geometry` is the region polygon in `crs`. `burn(label, transform, bounds)`, if given, edits each
    window in place after the consensus (used to burn roads as class 11; a burnt pixel's class set
    becomes {road}). `sets_out`: also write the class-set label there (uint16 bitmask on the same
    grid, see the module doc).
    """
    if not products:
        raise InputError(f"region {region_name}: no product configured (config key 'products')")
    transform, width, height = region_label_grid(geometry, resolution)
    stats = LabelStats(product_pixels={p.id: 0 for p in products},
                       unknown_codes={p.id: {} for p in products})
    opened: list[OpenProduct] = []
    try:
        for product in products:
            opened.append(OpenProduct(product, crs))
        profile = class_raster_profile(width, height, crs, transform)
        with contextlib.ExitStack() as stack:
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
            dst = stack.enter_context(rasterio.open(stack.enter_context(atomic_path(out)), "w", **profile))
            dst.write_colormap(1, colormap())
            sets_dst = None
            if sets_out is not None:
                sets_dst = stack.enter_context(rasterio.open(stack.enter_context(atomic_path(sets_out)), "w",
                                                             **dict(profile, dtype="uint16")))
                sets_dst.update_tags(ns="l2h", content="class-set label: bit c = class code c possible")
            for win in iter_windows(width, height, window):
                label, sets = _label_window(win, dst.window_transform(win), crs, geometry, opened, rule, stats,
                                            window_bounds(win, transform))
                if burn is not None:
                    before = label == 11
                    burn(label, dst.window_transform(win), window_bounds(win, transform))
                    burnt = (label == 11) & ~before
                    stats.road_pixels += int(burnt.sum())
                    sets[burnt] = 1 << 11
                _count(label, stats)
                dst.write(label, 1, window=win)
                if sets_dst is not None:
                    sets_dst.write(sets, 1, window=win)
    except _BadFile as exc:
        for path in exc.paths:
            Path(path).unlink(missing_ok=True)
        raise
    finally:
        for o in opened:
            o.close()
    if stats.region_pixels == 0:
        raise InputError(f"region {region_name}: its polygon covers no pixel of the {resolution} m grid")
    uncovered = [p for p, n in stats.product_pixels.items() if n == 0]
    if len(uncovered) == len(products):
        for written in (out, sets_out):
            if written is not None:
                Path(written).unlink(missing_ok=True)
        raise InputError(f"region {region_name}: no product covers it ({', '.join(uncovered)} have no "
                         f"data inside the region); check the products' tiles or base_url")
    for p in uncovered:
        log.warning("region %s: product %s has no data inside the region; it abstains", region_name, p)
    for p, counts in stats.unknown_codes.items():
        if counts:
            log.warning("region %s: product %s has %d pixel(s) with codes outside its legend %s; treated "
                        "as no data", region_name, p, sum(counts.values()), sorted(counts))
    return stats


def _label_window(win, transform, crs, geometry, opened, rule, stats: LabelStats,
                  bounds) -> tuple[np.ndarray, np.ndarray]:
    shape = (int(win.height), int(win.width))
    inside = ~geometry_mask([geometry], out_shape=shape, transform=transform, all_touched=False)
    masks = {}
    for o in opened:
        composite = o.read(transform, crs, shape, bounds)
        covered = composite != NO_FILE
        codes = np.where(covered, composite, 0).astype(np.uint8)
        unknown = o.unknown[codes] & inside & covered
        if unknown.any():
            values, counts = np.unique(codes[unknown], return_counts=True)
            seen = stats.unknown_codes[o.product.id]
            for v, n in zip(values.tolist(), counts.tolist()):
                seen[v] = seen.get(v, 0) + n
        mask = np.where(inside & covered, o.masks[codes], 0).astype(np.uint16)
        stats.product_pixels[o.product.id] += int((mask != 0).sum())
        masks[o.product.id] = mask
    ids = list(masks)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            both = (masks[a] != 0) & (masks[b] != 0)
            agree = both & ((masks[a] & masks[b]) != 0)
            pair = stats.pair_agree.setdefault((a, b), [0, 0])
            pair[0] += int(agree.sum())
            pair[1] += int(both.sum())
    sets = consensus_sets(list(masks.values()), rule)
    label = _SINGLE_CLASS[sets]
    label[~inside] = NODATA
    return label, sets


def _count(label: np.ndarray, stats: LabelStats) -> None:
    counts = np.bincount(label.ravel(), minlength=256)
    stats.region_pixels += int(counts.sum() - counts[NODATA])
    stats.ignored_pixels += int(counts[IGNORE])
    for c in CLASS_CODES:
        stats.class_pixels[c] += int(counts[c])
