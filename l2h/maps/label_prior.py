"""The coarse label as a prior at inference (``infer.label_prior``).

At every pixel the class-set label of :mod:`l2h.labels.harmonize` says which classes the coarse products
leave possible (one class where they agree, a set where a code or a disagreement is ambiguous,
nothing where they have no data). With a prior of strength b (nats), those classes get +b on the
network's logits before the argmax: the map keeps the coarse label where the imagery leaves the
network unsure, and departs from it where the network is confident (odds above e^b : 1). It is
the Bayesian combination p(c | image, coarse) ∝ p(c | image) · π(c | coarse) with π(c) ∝ e^{b [c in S]}.
b = 0 switches it off; a large b reproduces the coarse label wherever it has one class.

A coarse cell says what it holds most of, not where its edge lies. With ``interpolation="bilinear"``
each class's membership (1 in the cells that allow it, 0 elsewhere) is interpolated linearly between
the cells' centres, so the bonus is b inside a run of like cells and fades across the edge between
two unlike ones: there the two classes get about b/2 each and the network decides where, within the
cell, the 1 m edge lies. ``"nearest"`` gives every pixel its own cell's set (10 m steps).

``roads``: OSM road surfaces (the polygons of :mod:`l2h.labels.roads`, drawn at 1 m with rasterio)
stand for the road class instead of the label's road cells, whose other classes are then unknown;
a road is thus a bonus along its surface, not a 10 m staircase.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.features import rasterize
from rasterio.windows import Window

from l2h.core.classes import ROAD
from l2h.core.errors import InputError
from l2h.core.io import RASTERIZE_LOCK
from l2h.core.windows import clip_window

INTERPOLATIONS = ("nearest", "bilinear")


@dataclass(frozen=True)
class PriorTile:
    """What the prior needs for one grid of pixels (h, w): ``cells`` (R, S) uint16, the class-set
    bits of the coarse cells around it (all labels joined); pixel (i, j) takes the cell rows
    ``rows[i]`` and ``rows[i] + 1`` weighted ``1 - row_weight[i]`` and ``row_weight[i]``, the same across
    the columns (``cols``, ``col_weight``); weights are 0 with nearest sampling. ``roads`` (h, w) uint8:
    the 1 m road surfaces, or None."""

    cells: np.ndarray
    rows: np.ndarray
    row_weight: np.ndarray
    cols: np.ndarray
    col_weight: np.ndarray
    roads: np.ndarray | None


class LabelPrior:
    """Per-pixel logit bonus from one or more class-set label rasters (e.g. the regions a block
    touches; each is 0 outside its region, all on one coarse grid). Use as a context manager."""

    def __init__(self, paths: Sequence[str], strength: float, num_classes: int = 11,
                 interpolation: str = "nearest", roads: Sequence[str] = ()):
        if strength < 0:
            raise InputError(f"label prior strength must be >= 0, got {strength}")
        if interpolation not in INTERPOLATIONS:
            raise InputError(f"label prior interpolation must be one of {', '.join(INTERPOLATIONS)}, got "
                             f"{interpolation!r}")
        self.strength = float(strength)
        self.num_classes = num_classes
        self.interpolation = interpolation
        self.sources = []
        self._read_lock = threading.Lock()  # a rasterio dataset is not safe to read from two threads
        try:
            for path in paths:
                self.sources.append(rasterio.open(path))
        except RasterioError as exc:
            self.close()
            raise InputError(f"class-set label {path}: cannot be opened: {exc}") from None
        try:
            self._offsets = [_offset(src, self.sources[0]) for src in self.sources]
            self.roads = _RoadSurfaces(roads) if roads else None
        except InputError:
            self.close()
            raise

    def __enter__(self) -> LabelPrior:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the class-set rasters."""
        for src in self.sources:
            src.close()
        self.sources = []

    def _read(self, src, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        """Cells [r0, r0 + h) x [c0, c0 + w) of a class-set raster (0 outside it)."""
        out = np.zeros((h, w), np.uint16)
        if inside := clip_window(Window(c0, r0, w, h), src.width, src.height):
            part, (rows, cols) = inside
            try:
                with self._read_lock:
                    data = src.read(1, window=part)
            except RasterioError as exc:
                raise InputError(f"class-set label {src.name}: unreadable ({exc})") from None
            out[rows, cols] = data
        return out

    def tile(self, transform, shape: tuple[int, int]) -> PriorTile:
        """The class-set cells around a grid's pixels and where each pixel samples them."""
        height, width = shape
        grid = self.sources[0].transform if self.sources else transform
        u = (transform.c + (np.arange(width) + 0.5) * transform.a - grid.c) / grid.a  # in cells of the first label
        v = (transform.f + (np.arange(height) + 0.5) * transform.e - grid.f) / grid.e
        if self.interpolation == "bilinear":  # 0 = the first cell's centre
            u, v = u - 0.5, v - 0.5
        cols, rows = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        if self.interpolation == "bilinear":
            col_weight, row_weight = (u - cols).astype(np.float32), (v - rows).astype(np.float32)
        else:
            col_weight, row_weight = np.zeros(width, np.float32), np.zeros(height, np.float32)
        c0, r0 = int(cols.min()), int(rows.min())
        cells = np.zeros((int(rows.max()) - r0 + 2, int(cols.max()) - c0 + 2), np.uint16)
        for src, (dr, dc) in zip(self.sources, self._offsets):
            cells |= self._read(src, r0 - dr, c0 - dc, *cells.shape)
        roads = self.roads.draw(transform, shape) if self.roads is not None else None
        return PriorTile(cells, rows - r0, row_weight, cols - c0, col_weight, roads)

    def _members(self, sets: np.ndarray) -> np.ndarray:
        """(K, ...) float32 membership of class index k (code k + 1) in class-set bitmasks; a set of
        every class says nothing and counts as empty; with 1 m roads the road class is left to them."""
        bits = sets.astype(np.int64) >> 1
        full = (1 << self.num_classes) - 1
        bits[(bits & full) == full] = 0
        if self.roads is not None:  # the 1 m surfaces stand for the road class
            bits &= ~(1 << (ROAD - 1))
        return ((bits[None] >> np.arange(self.num_classes).reshape(-1, *([1] * bits.ndim))) & 1).astype(np.float32)

    def bonus(self, transform, shape: tuple[int, int]) -> np.ndarray | None:
        """(K, h, w) float32 logit bonus for a grid's pixels (class index k = code k + 1), or None
        when no pixel has a usable set (unknown, or every class). The block graph
        (:mod:`l2h.maps.block_graph`) computes the same to float32 rounding."""
        t = self.tile(transform, shape)
        cells = self._members(t.cells)
        across = cells[:, :, t.cols] * (1 - t.col_weight) + cells[:, :, t.cols + 1] * t.col_weight
        members = (across[:, t.rows, :] * (1 - t.row_weight)[:, None]
                   + across[:, t.rows + 1, :] * t.row_weight[:, None])
        if t.roads is not None:
            members[ROAD - 1] = t.roads
        if not members.any():
            return None
        return members * np.float32(self.strength)


def _offset(src, first) -> tuple[int, int]:
    """(rows, columns) of ``src``'s first cell in the cells of ``first``: the class-set labels of a
    block's regions must lie on one grid."""
    a, b = src.transform, first.transform
    rows, cols = (a.f - b.f) / b.e, (a.c - b.c) / b.a
    if (a.a, a.e, a.b, a.d) != (b.a, b.e, b.b, b.d) or not all(
            math.isclose(x, round(x), abs_tol=1e-6) for x in (rows, cols)):
        raise InputError(f"class-set label {src.name}: its cells ({a.a:g} x {-a.e:g} from {a.c:g}, {a.f:g}) are not "
                         f"on the grid of {first.name} ({b.a:g} x {-b.e:g} from {b.c:g}, {b.f:g})")
    return round(rows), round(cols)


class _RoadSurfaces:
    """Road surface polygons (GeoPackages of :func:`l2h.labels.roads.write_roads`), drawn on request."""

    def __init__(self, paths: Sequence[str]):
        import shapely

        from l2h.labels.roads import read_roads

        geometries = []
        for path in paths:
            try:
                geometries.extend(g for g in read_roads(path).geometry if g is not None and not g.is_empty)
            except Exception as exc:  # pyogrio's errors differ by driver and version
                raise InputError(f"road surfaces {path}: cannot be read: {exc}") from None
        self.geometries = np.asarray(geometries, dtype=object)
        self.tree = shapely.STRtree(self.geometries)

    def draw(self, transform, shape: tuple[int, int]) -> np.ndarray:
        """1 where a pixel's centre lies on a road surface, else 0 (uint8, ``shape``)."""
        import shapely
        from shapely.geometry import box

        height, width = shape
        west, north = transform.c, transform.f
        east, south = west + width * transform.a, north + height * transform.e
        hits = self.tree.query(box(west, south, east, north))
        if len(hits) == 0:
            return np.zeros(shape, np.uint8)
        # a road surface may run for kilometres: only its part over the grid (a pixel of margin) is drawn
        pad = abs(transform.a)
        parts = shapely.clip_by_rect(self.geometries[hits], west - pad, south - pad, east + pad, north + pad)
        parts = [g for g in parts if not g.is_empty]
        if not parts:
            return np.zeros(shape, np.uint8)
        with RASTERIZE_LOCK:
            return rasterize(((g, 1) for g in parts), out_shape=shape, transform=transform, fill=0, dtype="uint8")
