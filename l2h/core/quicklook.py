"""Quick-look PNGs of class rasters (truth, labels, maps), optionally beside the RGB imagery.

Large arrays are reduced before plotting: class rasters by block mode (so thin classes do not
alias into noise and no colour is invented), RGB by striding. Matplotlib runs on the Agg canvas
without pyplot, so it is safe in worker processes and threads.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from l2h.core.classes import BY_CODE, IGNORE, NODATA, colormap
from l2h.core.figures import new_figure, save_png

_UNKNOWN_COLOUR = (255, 0, 255, 255)


def block_mode(classes: np.ndarray, factor: int) -> np.ndarray:
    """Reduce a 2-D integer class array by `factor` in both directions, keeping each block's mode.

    Nodata (0) wins a block only when the block holds nothing else. Ties go to the lower code.
    Edges that do not fill a whole block are reduced over the part that exists.
    """
    if factor <= 1:
        return classes
    h, w = classes.shape
    hb, wb = math.ceil(h / factor), math.ceil(w / factor)
    padded = np.zeros((hb * factor, wb * factor), dtype=classes.dtype)
    padded[:h, :w] = classes
    blocks = padded.reshape(hb, factor, wb, factor)
    present = np.flatnonzero(np.bincount(classes.ravel().astype(np.int64)))
    best = np.zeros((hb, wb), dtype=classes.dtype)
    best_count = np.zeros((hb, wb), dtype=np.int32)
    for code in present:
        if code == NODATA:
            continue
        count = (blocks == code).sum(axis=(1, 3), dtype=np.int32)
        better = count > best_count
        best[better] = code
        best_count[better] = count[better]
    return best


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) or band-first (3|4, H, W) -> (H, W, 3) uint8 (a 4th band, e.g. NIR, is dropped)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3:
        raise ValueError(f"rgb must be a 3-D array, got shape {rgb.shape}")
    if rgb.shape[-1] not in (3, 4) and rgb.shape[0] in (3, 4):
        rgb = np.moveaxis(rgb, 0, -1)
    if rgb.shape[-1] not in (3, 4):
        raise ValueError(f"rgb must have 3 or 4 bands, got shape {rgb.shape}")
    rgb = rgb[..., :3]
    if rgb.dtype != np.uint8:
        lo, hi = np.nanpercentile(rgb, [1, 99]) if rgb.size else (0, 1)
        rgb = np.clip((rgb.astype(np.float32) - lo) / max(hi - lo, 1e-9) * 255.0, 0, 255).astype(np.uint8)
    return rgb


def _class_rgba(classes: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 colours of a class array: l2h palette, nodata transparent, unknown magenta."""
    lut = np.zeros((256, 4), dtype=np.uint8)
    lut[:] = _UNKNOWN_COLOUR
    for code, colour in colormap().items():
        lut[code] = colour
    lut[NODATA] = (0, 0, 0, 0)
    return lut[classes.astype(np.uint8)]


def legend_entries(counts: np.ndarray) -> list[tuple[str, str]]:
    """(label, colour) for each code with a non-zero count (nodata excluded), with its share in %.

    `counts`: per-code pixel counts indexed by code (e.g. np.bincount of the class raster).
    """
    counts = np.asarray(counts)
    total = max(int(counts[1:].sum()), 1)
    entries = []
    for code in np.flatnonzero(counts):
        if code == NODATA:
            continue
        share = counts[code] / total * 100
        if code in BY_CODE:
            label, colour = f"{code} {BY_CODE[code].name}", BY_CODE[code].colour
        elif code == IGNORE:
            label, colour = "255 ignore", "#808080"
        else:
            label, colour = f"{code} (unknown code)", "#ff00ff"
        entries.append((f"{label} ({share:.1f}%)", colour))
    return entries


def save_class_quicklook(path: str | os.PathLike, classes: np.ndarray, title: str,
                         rgb: np.ndarray | None = None, max_side: int = 1200) -> Path:
    """Write a PNG of a class raster with a legend of the classes present (nodata transparent).

    `classes`: 2-D integer array of l2h codes (0 nodata, 255 ignore, others shown as "code N").
    `rgb`: optional imagery of the same extent, (H, W, 3|4) or (3|4, H, W); drawn on the left.
    `max_side`: the longest side of each panel in pixels after reduction (mode for classes,
    striding for RGB). Returns the path written (atomically).
    """
    classes = np.asarray(classes)
    if classes.ndim != 2:
        raise ValueError(f"classes must be a 2-D array, got shape {classes.shape}")
    if classes.dtype.kind not in "iu" or (classes.size and (classes.min() < 0 or classes.max() > 255)):
        raise ValueError("classes must hold integer codes in 0..255")
    classes = classes.astype(np.uint8, copy=False)
    counts = np.bincount(classes.ravel(), minlength=256)
    factor = max(1, math.ceil(max(classes.shape) / max_side))
    small = block_mode(classes, factor)
    rgba = _class_rgba(small)

    panels = 2 if rgb is not None else 1
    h, w = small.shape
    panel_w = 6.0
    panel_h = max(panel_w * h / max(w, 1), 1.5)
    fig = new_figure(panel_w * panels + 2.6, panel_h + 0.8, dpi=max(100, min(200, int(max_side / panel_w))))
    axes = fig.subplots(1, panels, squeeze=False)[0]
    extent = (0, classes.shape[1], classes.shape[0], 0)
    if rgb is not None:
        image = _as_rgb(rgb)
        step = max(1, math.ceil(max(image.shape[:2]) / max_side))
        axes[0].imshow(image[::step, ::step], extent=(0, image.shape[1], image.shape[0], 0),
                       interpolation="nearest")
        axes[0].set_title("imagery (RGB)", fontsize=9)
    ax = axes[-1]
    ax.imshow(rgba, extent=extent, interpolation="nearest")
    ax.set_title(title, fontsize=10, parse_math=False)  # a region name may hold "$"
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])

    handles = [Patch(facecolor=colour, edgecolor="#444444", linewidth=0.5, label=label)
               for label, colour in legend_entries(counts)]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                  frameon=False, borderaxespad=0.0)
    return save_png(fig, path)


def _read_decimated(raster: str | os.PathLike, what: str, max_side: int, resampling):
    """Band 1 of `raster` read by GDAL at most `max_side` pixels on a side (memory bounded):
    (array, its transform, CRS); an unreadable file is an InputError naming it."""
    import rasterio
    from rasterio.transform import Affine

    from l2h.core.errors import InputError

    try:
        src = rasterio.open(raster)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"quicklook: cannot read {what} {raster}: {exc}") from exc
    with src:
        factor = max(1, math.ceil(max(src.width, src.height) / max_side))
        out_h, out_w = max(1, math.ceil(src.height / factor)), max(1, math.ceil(src.width / factor))
        data = src.read(1, out_shape=(out_h, out_w), resampling=resampling)
        return data, src.transform * Affine.scale(src.width / out_w, src.height / out_h), src.crs


def quicklook_from_file(path: str | os.PathLike, raster: str | os.PathLike, title: str,
                        rgb: str | os.PathLike | None = None, max_side: int = 1200) -> Path:
    """Write a quick-look PNG (`path`) of a class raster file (band 1), optionally beside imagery.

    Memory stays bounded: a raster larger than `max_side` is read decimated by GDAL with MODE
    resampling (so legend shares are those of the decimated view). `rgb`: an imagery file (bands
    1-3 as R, G, B) warped onto the same decimated grid (average); its nodata shows black.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from l2h.core.errors import InputError

    classes, transform, crs = _read_decimated(raster, "class raster", max_side, Resampling.mode)
    out_h, out_w = classes.shape
    image = None
    if rgb is not None:
        try:
            with rasterio.open(rgb) as isrc:
                if isrc.count < 3:
                    raise InputError(f"quicklook: imagery {rgb} has {isrc.count} band(s), needs at least 3 (R, G, B)")
                with WarpedVRT(isrc, crs=crs or isrc.crs, transform=transform, width=out_w, height=out_h,
                               resampling=Resampling.average) as vrt:
                    image = vrt.read([1, 2, 3])
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"quicklook: cannot read imagery {rgb}: {exc}") from exc
    return save_class_quicklook(path, classes.astype(np.uint8, copy=False), title, rgb=image, max_side=max_side)


def confidence_quicklook_from_file(path: str | os.PathLike, raster: str | os.PathLike, title: str,
                                   max_side: int = 1200) -> Path:
    """Write a PNG of a confidence raster (uint8 = max class probability x 255, 0 nodata) with a
    colour bar in percent; read decimated (average) so memory stays bounded."""
    from rasterio.enums import Resampling

    data, _, _ = _read_decimated(raster, "confidence raster", max_side, Resampling.average)
    out_h, out_w = data.shape
    percent = np.ma.masked_equal(data, NODATA).astype(np.float32) * (100.0 / 255.0)
    panel_w = 6.0
    fig = new_figure(panel_w + 1.6, max(panel_w * out_h / out_w, 1.5) + 0.8,
                     dpi=max(100, min(200, int(max_side / panel_w))))
    ax = fig.subplots()
    shown = ax.imshow(percent, cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
    ax.set_title(title, fontsize=10, parse_math=False)
    ax.set_xticks([])
    ax.set_yticks([])
    bar = fig.colorbar(shown, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("confidence: max class probability (%)", fontsize=8)
    if percent.count():
        ax.set_xlabel(f"median {float(np.ma.median(percent)):.0f} %, below 50 %: "
                      f"{100 * float((percent < 50).sum()) / percent.count():.1f} % of mapped pixels", fontsize=8)
    return save_png(fig, path)
