"""Reference points drawn from a reference map (e.g. a 1 m land-cover raster): simple or stratified
random pixel centres written as the CSV the evaluation reads (x, y, crs, class).

The rasters are read window by window twice -- once to count the pixels of every stratum, once to
pick the drawn ones -- so memory does not grow with the map. Stratified draws take
``min_per_class`` points from every class (or all its pixels when it has fewer) and share the rest
in proportion to the classes' areas; the strata areas can be written beside the points for
area-weighted accuracy estimates. The same rasters, options and seed give the same points.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from l2h.core.errors import ConfigError, InputError
from l2h.core.io import atomic_path
from l2h.core.windows import iter_windows

WINDOW = 2048


def allocate(counts: Mapping[int, int], n: int, min_per_class: int) -> dict[int, int]:
    """Points per stratum: `min_per_class` each (or all of a smaller stratum), the rest by area share
    with the largest remainders rounded up, never more than a stratum's pixels."""
    counts = {c: k for c, k in counts.items() if k > 0}
    alloc = {c: min(min_per_class, k, n) for c, k in counts.items()}
    rest = max(n - sum(alloc.values()), 0)
    total = sum(counts.values())
    quota = {c: rest * k / total for c, k in counts.items()}
    for c in counts:
        alloc[c] = min(counts[c], alloc[c] + int(quota[c]))
    for c in sorted(counts, key=lambda c: (-(quota[c] - int(quota[c])), c)):
        if sum(alloc.values()) >= n:
            break
        if alloc[c] < counts[c]:
            alloc[c] += 1
    return alloc


def recode_table(recode: Mapping[int, int], exclude: Sequence[int]) -> np.ndarray:
    """256-entry lookup of a reference raster's codes: `recode` applied, `exclude` -> -1."""
    table = np.arange(256, dtype=np.int16)
    for src, dst in recode.items():
        if not (0 <= int(src) <= 255 and 0 <= int(dst) <= 255):
            raise ConfigError(f"recode {src}={dst}: codes must be within 0..255")
        table[int(src)] = int(dst)
    table[list(exclude)] = -1
    return table


def _crs_name(crs) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


@contextlib.contextmanager
def open_reference(path: str):
    """A single-band class raster, opened and checked (a CRS, one band of integer codes)."""
    try:
        src = rasterio.open(path)
    except RasterioError as exc:
        raise InputError(f"reference raster {path}: cannot be opened: {exc}") from None
    with src:
        if src.crs is None:
            raise InputError(f"reference raster {path}: has no CRS")
        if src.dtypes[0] not in ("uint8", "int8", "uint16", "int16") or src.count != 1:
            raise InputError(f"reference raster {path}: expected one band of integer class codes, got "
                             f"{src.count} band(s) of {src.dtypes[0]}")
        yield src


def class_windows(path: str):
    """(dataset, window, codes) of every window of a single-band class raster."""
    with open_reference(path) as src:
        for win in iter_windows(src.width, src.height, WINDOW):
            yield src, win, src.read(1, window=win)


def valid_classes(src, codes: np.ndarray, table: np.ndarray, path: str) -> np.ndarray:
    """Recoded classes of a window; -1 where excluded or nodata."""
    if codes.size and (codes.min() < 0 or codes.max() > 255):
        raise InputError(f"reference raster {path}: class codes outside 0..255")
    classes = table[codes.astype(np.int64)]
    if src.nodata is not None:
        classes[codes == src.nodata] = -1
    return classes


def draw_reference_points(rasters: Sequence[str], n: int, seed: int = 0, stratified: bool = True,
                          min_per_class: int = 50, recode: Mapping[int, int] | None = None,
                          exclude: Sequence[int] = ()) -> tuple[list[tuple[float, float, str, int]], dict]:
    """Draw `n` random pixel centres from the valid pixels of `rasters` (non-overlapping class rasters).

    Codes in `exclude` and each raster's nodata value are never drawn; `recode` ({code: class})
    merges codes first (e.g. barren and roads into impervious). Returns the points (x, y, crs,
    class), sorted by class then draw order, and per-class statistics {class: {"pixels", "points",
    "area_km2"}} (area in the rasters' CRS units squared / 1e6, i.e. km² for metric CRSs).
    """
    if n < 1:
        raise ConfigError(f"number of points must be >= 1, got {n}")
    if not rasters:
        raise ConfigError("no reference raster given")
    table = recode_table(recode or {}, exclude)
    pixels: dict[int, int] = {}
    area: dict[int, float] = {}
    for path in rasters:
        for src, _, codes in class_windows(path):
            classes = valid_classes(src, codes, table, path)
            counts = np.bincount(classes[classes >= 0].ravel(), minlength=256)
            pixel_area = abs(src.transform.a * src.transform.e) / 1e6
            for c in np.flatnonzero(counts).tolist():
                pixels[c] = pixels.get(c, 0) + int(counts[c])
                area[c] = area.get(c, 0.0) + float(counts[c]) * pixel_area
    if not pixels:
        raise InputError(f"reference raster(s) {', '.join(rasters)}: no valid pixel to draw from")
    rng = np.random.default_rng(seed)
    if stratified:
        alloc = allocate(pixels, n, min_per_class)
        picks = {c: np.sort(rng.choice(pixels[c], size=k, replace=False)) for c, k in sorted(alloc.items())}
    else:
        total = sum(pixels.values())
        ranks = np.sort(rng.choice(total, size=min(n, total), replace=False))
        picks = {None: ranks}
    points: list[tuple[float, float, str, int]] = []
    seen = {key: 0 for key in picks}
    for path in rasters:
        for src, win, codes in class_windows(path):
            classes = valid_classes(src, codes, table, path)
            crs = _crs_name(src.crs)
            for key, ranks in picks.items():
                flat = np.flatnonzero((classes >= 0) if key is None else (classes == key))
                lo, hi = np.searchsorted(ranks, [seen[key], seen[key] + flat.size])
                chosen = flat[ranks[lo:hi] - seen[key]]
                seen[key] += flat.size
                rows, cols = np.divmod(chosen, classes.shape[1])
                xs, ys = rasterio.transform.xy(src.transform, rows + int(win.row_off), cols + int(win.col_off))
                for x, y, r, c in zip(np.atleast_1d(xs), np.atleast_1d(ys), rows, cols):
                    points.append((float(x), float(y), crs, int(classes[r, c])))
    points.sort(key=lambda p: p[3])  # stable: within a class, in raster and window order
    drawn = {c: 0 for c in pixels}
    for p in points:
        drawn[p[3]] += 1
    stats = {c: {"pixels": pixels[c], "points": drawn[c], "area_km2": area[c]} for c in sorted(pixels)}
    return points, stats


def write_points(points: Sequence[tuple[float, float, str, int]], out: str | Path) -> None:
    """The CSV the evaluation reads: x, y, crs, class (metres to the mm, degrees to 1e-9)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["x", "y", "crs", "class"])
    for x, y, crs, cls in points:
        fmt = "{:.9f}" if crs == "EPSG:4326" else "{:.3f}"
        w.writerow([fmt.format(x), fmt.format(y), crs, cls])
    with atomic_path(out) as tmp:
        Path(tmp).write_text(buf.getvalue(), encoding="utf-8")


def write_strata_areas(stats: Mapping[int, Mapping], out: str | Path) -> None:
    """stratum,area_km2 per class: the strata areas of stratified points (evaluation.points.strata)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["stratum", "area_km2"])
    for c, s in sorted(stats.items()):
        w.writerow([c, f"{s['area_km2']:.6f}"])
    with atomic_path(out) as tmp:
        Path(tmp).write_text(buf.getvalue(), encoding="utf-8")
