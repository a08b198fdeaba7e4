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

import threading
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.features import rasterize
from rasterio.windows import Window

from l2h.core.classes import ROAD
from l2h.core.errors import InputError
from l2h.core.windows import clip_window

INTERPOLATIONS = ("nearest", "bilinear")


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

    def sets(self, transform, shape: tuple[int, int]) -> np.ndarray:
        """The class-set bitmasks (bit c = class code c) at the centres of a grid's pixels."""
        out = np.zeros(shape, np.uint16)
        height, width = shape
        xs = transform.c + (np.arange(width) + 0.5) * transform.a
        ys = transform.f + (np.arange(height) + 0.5) * transform.e
        for src in self.sources:
            cols = np.floor((xs - src.transform.c) / src.transform.a).astype(np.int64)
            rows = np.floor((ys - src.transform.f) / src.transform.e).astype(np.int64)
            c0, r0 = int(cols.min()), int(rows.min())
            if cols.max() < 0 or rows.max() < 0 or c0 >= src.width or r0 >= src.height:
                continue
            data = self._read(src, r0, c0, int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1)
            out |= data[(rows - r0)[:, None], (cols - c0)[None, :]]
        return out

    def _members(self, sets: np.ndarray) -> np.ndarray:
        """(K, ...) float32 membership of class index k (code k + 1) in class-set bitmasks; a set of
        every class says nothing and counts as empty; without roads the road cells keep their set."""
        bits = sets.astype(np.int64) >> 1
        full = (1 << self.num_classes) - 1
        bits[(bits & full) == full] = 0
        if self.roads is not None:  # the 1 m surfaces stand for the road class
            bits &= ~(1 << (ROAD - 1))
        return ((bits[None] >> np.arange(self.num_classes).reshape(-1, *([1] * bits.ndim))) & 1).astype(np.float32)

    def _bilinear(self, transform, shape: tuple[int, int]) -> np.ndarray:
        """(K, h, w) membership interpolated linearly between the coarse cells' centres."""
        height, width = shape
        xs = transform.c + (np.arange(width) + 0.5) * transform.a
        ys = transform.f + (np.arange(height) + 0.5) * transform.e
        out = np.zeros((self.num_classes, height, width), np.float32)
        for src in self.sources:  # disjoint regions on one grid: their interpolations add up
            u = (xs - src.transform.c) / src.transform.a - 0.5  # in cells, 0 = the first cell's centre
            v = (ys - src.transform.f) / src.transform.e - 0.5
            c0, r0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
            fc, fr = (u - c0).astype(np.float32), (v - r0).astype(np.float32)
            cmin, rmin = int(c0.min()), int(r0.min())
            if c0.max() + 1 < 0 or r0.max() + 1 < 0 or cmin >= src.width or rmin >= src.height:
                continue
            cells = self._members(self._read(src, rmin, cmin, int(r0.max()) - rmin + 2, int(c0.max()) - cmin + 2))
            cc, rr = c0 - cmin, r0 - rmin
            across = cells[:, :, cc] * (1 - fc) + cells[:, :, cc + 1] * fc  # (K, cell rows, width)
            out += across[:, rr, :] * (1 - fr)[:, None] + across[:, rr + 1, :] * fr[:, None]
        return out

    def bonus(self, transform, shape: tuple[int, int]) -> np.ndarray | None:
        """(K, h, w) float32 logit bonus for a grid's pixels (class index k = code k + 1), or None
        when no pixel has a usable set (unknown, or every class)."""
        if self.interpolation == "bilinear":
            members = self._bilinear(transform, shape)
        else:
            members = self._members(self.sets(transform, shape))
        if self.roads is not None:
            members[ROAD - 1] = self.roads.draw(transform, shape)
        if not members.any():
            return None
        return members * np.float32(self.strength)


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
        """1.0 where a pixel's centre lies on a road surface, else 0 (float32, ``shape``)."""
        import shapely
        from shapely.geometry import box

        height, width = shape
        west, north = transform.c, transform.f
        east, south = west + width * transform.a, north + height * transform.e
        hits = self.tree.query(box(west, south, east, north))
        if len(hits) == 0:
            return np.zeros(shape, np.float32)
        # a road surface may run for kilometres: only its part over the grid (a pixel of margin) is drawn
        pad = abs(transform.a)
        parts = shapely.clip_by_rect(self.geometries[hits], west - pad, south - pad, east + pad, north + pad)
        parts = [g for g in parts if not g.is_empty]
        if not parts:
            return np.zeros(shape, np.float32)
        return rasterize(((g, 1) for g in parts), out_shape=shape, transform=transform, fill=0,
                         dtype="uint8").astype(np.float32)
