"""The "1 m detail" figure: imagery | coarse label | map | reference, side by side, at held-out
places picked automatically -- the window with the most buildings (a town), the one with the most
road (away from towns) and the one with the most class edges among the rest (a field edge) --
where a 1 m map must show what no 10 m product can.

Candidate windows are the reference raster's ``size`` x ``size`` tiles that lie wholly on valid
reference pixels and outside every excluded box (the training blocks); the reference is scanned
window by window, so memory does not grow with its size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import rasterio
from matplotlib.patches import Patch
from rasterio.features import geometry_mask
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window
from shapely.geometry import box

from l2h.core.classes import BUILDING, BY_CODE, ROAD, colormap
from l2h.core.errors import InputError
from l2h.core.figures import new_figure, save_png
from l2h.evaluation.detail import boundaries
from l2h.evaluation.evaluate import Legend
from l2h.evaluation.reference_points import open_reference, recode_table, valid_classes
from l2h.evaluation.score_pixels import reference_lut, reproject_geoms

SCAN = 16  # tiles per side of a scanning window


def pick_windows(reference: str, legend: Legend, recode: dict | None = None,
                 exclude: tuple[Sequence, str] | None = None, size: int = 160) -> list[tuple[str, Window]]:
    """[(what, window)] of up to three held-out reference tiles: "town" (most building pixels),
    "road" (most road pixels among tiles with buildings on at most 2 % of them) and "class edges" (most
    edge pixels among those tiles without road); tiles with most edges instead where the legend has no
    building or road. Tiles are held out from the training blocks of ``exclude``, not chosen by region."""
    table, lut = recode_table(recode or {}, ()), reference_lut(legend)
    building, road = int(legend.ours[BUILDING]), int(legend.ours[ROAD])
    stats = []  # (row, col, buildings, roads, edges)
    with open_reference(reference) as src:
        boxes = (reproject_geoms([box(*b) for b in exclude[0]], exclude[1], src.crs)
                 if exclude is not None and exclude[0] else None)
        step = size * SCAN
        for row in range(0, src.height - size + 1, step):
            for col in range(0, src.width - size + 1, step):
                h = min(step, (src.height - row) // size * size)
                w = min(step, (src.width - col) // size * size)
                win = Window(col, row, w, h)
                codes = src.read(1, window=win)
                valid = valid_classes(src, codes, table, reference)
                ref = np.where(valid >= 0, lut[np.clip(valid, 0, 255)], -1)
                usable = ref >= 0
                if boxes is not None:
                    usable &= geometry_mask(boxes, out_shape=ref.shape, transform=src.window_transform(win))
                count, buildings, roads, edge_counts = (
                    a.reshape(h // size, size, w // size, size).sum(axis=(1, 3))
                    for a in (usable, ref == building, ref == road, boundaries(ref)))
                for i, j in zip(*np.nonzero(count == size * size)):
                    stats.append((row + i * size, col + j * size, int(buildings[i, j]), int(roads[i, j]),
                                  int(edge_counts[i, j])))
    if not stats:
        return []
    stats = np.array(stats)
    chosen: list[tuple[str, Window]] = []
    taken = np.zeros(len(stats), bool)

    def take(what: str, score: np.ndarray, allowed: np.ndarray) -> None:
        allowed = allowed & ~taken
        if allowed.any() and score[allowed].max() > 0:
            k = int(np.flatnonzero(allowed)[np.argmax(score[allowed])])
            taken[k] = True
            chosen.append((what, Window(int(stats[k, 1]), int(stats[k, 0]), size, size)))

    everywhere = np.ones(len(stats), bool)
    if building >= 0 and road >= 0:
        few_buildings = stats[:, 2] <= 0.02 * size * size
        take("town", stats[:, 2], everywhere)
        take("road", stats[:, 3], few_buildings)
        take("class edges", stats[:, 4], few_buildings & (stats[:, 3] == 0))
    for _ in range(3 - len(chosen)):
        take("class edges", stats[:, 4], everywhere)
    return chosen


def _read_on(path: str, transform, crs, shape, resampling=Resampling.nearest, bands=1) -> np.ndarray:
    with rasterio.open(path) as src:
        out = np.zeros((min(bands, src.count), *shape), src.dtypes[0])
        reproject(source=rasterio.band(src, list(range(1, out.shape[0] + 1))), destination=out, dst_transform=transform,
                  dst_crs=crs, resampling=resampling, src_nodata=src.nodata, dst_nodata=0)
    return out


def _composite(paths: Sequence[str], transform, crs, shape) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for path in paths:
        part = _read_on(path, transform, crs, shape)[0]
        out = np.where(out == 0, part, out)
    return out


def detail_figure(out: str | os.PathLike, imagery: Sequence[str], reference: str, map_path: str,
                  labels: Sequence[str], legend: Legend, recode: dict | None = None,
                  exclude: tuple[Sequence, str] | None = None, size: int = 160) -> list[tuple[str, Window]]:
    """Draw the figure (PNG) at the windows of :func:`pick_windows`; the windows used. ``imagery``:
    one or more files (composited in order); ``labels``: the coarse label rasters (composited)."""
    if not imagery or not labels:
        raise InputError("the detail figure needs the imagery (--imagery) and the coarse label (--coarse-label)")
    windows = pick_windows(reference, legend, recode, exclude, size)
    palette = np.zeros((256, 4), np.uint8)
    for code, colour in colormap().items():
        palette[code] = colour
    # the reference in our colours: each reference class as the first of our classes mapped onto it
    ref_colour = np.zeros((legend.k + 1, 4), np.uint8)
    for code in sorted(BY_CODE, reverse=True):
        if legend.ours[code] >= 0:
            ref_colour[legend.ours[code]] = colormap()[code]
    table, lut = recode_table(recode or {}, ()), reference_lut(legend)
    fig = new_figure(12.5, 3.1 * max(len(windows), 1) + 0.6)
    axes = fig.subplots(max(len(windows), 1), 4, squeeze=False)
    titles = ("imagery", "coarse label (10 m consensus)", "1 m map", "reference (1 m truth)")
    with open_reference(reference) as src:
        for r, (what, win) in enumerate(windows):
            transform, shape, crs = src.window_transform(win), (int(win.height), int(win.width)), src.crs
            codes = src.read(1, window=win)
            valid = valid_classes(src, codes, table, reference)
            ref = np.where(valid >= 0, lut[np.clip(valid, 0, 255)], legend.k)
            rgb = np.zeros((*shape, 3), np.float32)
            for path in imagery:  # the first file with data at a pixel wins
                part = np.moveaxis(_read_on(path, transform, crs, shape, Resampling.bilinear, bands=3), 0, -1)
                rgb = np.where(rgb.any(axis=-1, keepdims=True), rgb, part[..., :3].astype(np.float32))
            lo, hi = np.percentile(rgb[rgb.any(axis=-1)], [1, 99]) if rgb.any() else (0, 1)
            rgb = np.clip((rgb - lo) / max(hi - lo, 1e-9), 0, 1)
            label = _composite(labels, transform, crs, shape)
            label = np.where(label == 255, 0, label)
            mapped = _read_on(map_path, transform, crs, shape)[0]
            x, y = transform * (0, 0)
            for c, image in enumerate((rgb, palette[label], palette[mapped], ref_colour[ref])):
                ax = axes[r, c]
                ax.imshow(image, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(titles[c], fontsize=10)
            axes[r, 0].set_ylabel(f"{what}\n({x:.0f}, {y:.0f})", fontsize=9)
    if not windows:
        axes[0, 0].text(0.5, 0.5, "no held-out reference window", ha="center", va="center")
    handles = [Patch(facecolor=BY_CODE[c].colour, edgecolor="#444444", linewidth=0.5, label=f"{c} {BY_CODE[c].name}")
               for c in sorted(BY_CODE)]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.02))
    save_png(fig, out)
    return windows
