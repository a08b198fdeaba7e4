"""The coarse label as a prior at inference (``infer.label_prior``).

At every pixel the class-set label of :mod:`l2h.labels.harmonize` says which classes the coarse products
leave possible (one class where they agree, a set where a code or a disagreement is ambiguous,
nothing where they have no data). With a prior of strength b (nats), those classes get +b on the
network's logits before the argmax: the map keeps the coarse label where the imagery leaves the
network unsure, and departs from it where the network is confident (odds above e^b : 1). It is
the Bayesian combination p(c | image, coarse) ∝ p(c | image) · π(c | coarse) with π(c) ∝ e^{b [c in S]}.
b = 0 switches it off; a large b reproduces the coarse label wherever it has one class.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from l2h.core.errors import InputError


class LabelPrior:
    """Per-pixel logit bonus from one or more class-set label rasters (e.g. the regions a block
    touches; each is 0 outside its region). Use as a context manager."""

    def __init__(self, paths: Sequence[str], strength: float, num_classes: int = 11):
        if strength < 0:
            raise InputError(f"label prior strength must be >= 0, got {strength}")
        self.strength = float(strength)
        self.num_classes = num_classes
        self.sources = []
        self._read_lock = threading.Lock()  # a rasterio dataset is not safe to read from two threads
        try:
            for path in paths:
                self.sources.append(rasterio.open(path))
        except RasterioError as exc:
            self.close()
            raise InputError(f"class-set label {path}: cannot be opened: {exc}") from None

    def __enter__(self) -> LabelPrior:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the class-set rasters."""
        for src in self.sources:
            src.close()
        self.sources = []

    def sets(self, transform, shape: tuple[int, int]) -> np.ndarray:
        """The class-set bitmasks (bit c = class code c) at the centres of a grid's pixels."""
        out = np.zeros(shape, np.uint16)
        height, width = shape
        xs = transform.c + (np.arange(width) + 0.5) * transform.a
        ys = transform.f + (np.arange(height) + 0.5) * transform.e
        for src in self.sources:
            cols = np.floor((xs - src.transform.c) / src.transform.a).astype(np.int64)
            rows = np.floor((ys - src.transform.f) / src.transform.e).astype(np.int64)
            ok_c, ok_r = (cols >= 0) & (cols < src.width), (rows >= 0) & (rows < src.height)
            if not ok_c.any() or not ok_r.any():
                continue
            c0, c1 = cols[ok_c].min(), cols[ok_c].max() + 1
            r0, r1 = rows[ok_r].min(), rows[ok_r].max() + 1
            try:
                with self._read_lock:
                    data = src.read(1, window=rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0))
            except RasterioError as exc:
                raise InputError(f"class-set label {src.name}: unreadable ({exc})") from None
            part = data[np.clip(rows - r0, 0, r1 - r0 - 1)[:, None], np.clip(cols - c0, 0, c1 - c0 - 1)[None, :]]
            part[~ok_r, :] = 0
            part[:, ~ok_c] = 0
            out |= part
        return out

    def bonus(self, transform, shape: tuple[int, int]) -> np.ndarray | None:
        """(K, h, w) float32 logit bonus for a grid's pixels (class index k = code k + 1), or None
        when no pixel has a usable set (unknown, or every class)."""
        sets = self.sets(transform, shape).astype(np.int64) >> 1  # code bits -> class index bits
        full = (1 << self.num_classes) - 1
        members = (sets[None] >> np.arange(self.num_classes)[:, None, None]) & 1
        members[:, (sets & full) == full] = 0
        if not members.any():
            return None
        return members.astype(np.float32) * self.strength
