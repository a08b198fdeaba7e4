"""Measures of 1 m detail (docs/method.md §10) on class arrays: class boundaries within a tolerance, and
the pixels a coarse map cannot get right (those unlike their coarse cell's majority, and those in
mixed cells).

All functions take class *indices* (>= 0) with -1 where a pixel has no class (nodata, outside the
reference), and a ``scored`` mask of the pixels that count (e.g. held out of training). They return
counts, so that windows of a large raster add up (:class:`DetailCounts`); a window must carry a
halo of ``tolerance + 1`` pixels around the part it scores for boundaries to be exact, and its
scored part must hold whole coarse cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def boundaries(classes: np.ndarray) -> np.ndarray:
    """Pixels on a class edge: a 4-neighbour with a class holds another class (both sides of an
    edge are marked; edges against pixels without a class are not edges)."""
    out = np.zeros(classes.shape, bool)
    a, b = classes[:, :-1], classes[:, 1:]
    edge = (a >= 0) & (b >= 0) & (a != b)
    out[:, :-1] |= edge
    out[:, 1:] |= edge
    a, b = classes[:-1, :], classes[1:, :]
    edge = (a >= 0) & (b >= 0) & (a != b)
    out[:-1, :] |= edge
    out[1:, :] |= edge
    return out


def near(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels within ``tolerance`` pixels (Euclidean, centre to centre) of a True pixel of ``mask``."""
    if not mask.any():
        return np.zeros(mask.shape, bool)
    if tolerance <= 0:
        return mask.copy()
    r = int(np.floor(tolerance))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return ndimage.binary_dilation(mask, structure=(yy**2 + xx**2) <= tolerance**2 + 1e-9)


def cell_majority(ref: np.ndarray, cell: int, offset: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """(majority class of each pixel's coarse cell, whether that cell holds more than one class), per
    pixel. Cells are ``cell`` x ``cell`` pixels whose grid starts ``offset`` (row, col) pixels before
    the array's first row and column; pixels without a class (-1) take no part in the vote, and a
    cell without any class has majority -1. Ties go to the smallest class index."""
    h, w = ref.shape
    r0, c0 = offset
    rows = (np.arange(h) + r0) // cell
    cols = (np.arange(w) + c0) // cell
    rows -= rows[0]
    cols -= cols[0]
    n_rows, n_cols = int(rows[-1]) + 1, int(cols[-1]) + 1
    cell_id = rows[:, None] * n_cols + cols[None, :]
    k = int(ref.max()) + 1 if ref.size and ref.max() >= 0 else 1
    valid = ref >= 0
    counts = np.bincount(cell_id[valid] * k + ref[valid], minlength=n_rows * n_cols * k).reshape(-1, k)
    majority = np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), -1)
    mixed = (counts > 0).sum(axis=1) > 1
    return majority[cell_id], mixed[cell_id]


@dataclass
class DetailCounts:
    """Running counts of the detail measures of one source (add windows with :meth:`add`).

    ``boundary_*``: predicted edge pixels (in the scored area) and how many lie within the tolerance of
    a reference edge; reference edge pixels and how many a predicted edge lies near. ``subcell_*``:
    scored pixels whose reference class differs from their cell's majority, and how many are right;
    ``mixed_*``: scored pixels in cells holding more than one reference class, and how many are right.
    """

    pred_edges: int = 0
    pred_edges_matched: int = 0
    ref_edges: int = 0
    ref_edges_matched: int = 0
    subcell: int = 0
    subcell_right: int = 0
    mixed: int = 0
    mixed_right: int = 0

    def add(self, ref: np.ndarray, pred: np.ndarray, scored: np.ndarray, tolerance: float,
            majority: np.ndarray, mixed: np.ndarray) -> None:
        """Count one window: reference and predicted classes (-1 = none), the scored pixels, the
        boundary tolerance in pixels and the cell majority / mixed flags of :func:`cell_majority`."""
        ref_b = boundaries(ref)
        # an edge of the prediction counts only where the reference has classes on both sides
        pred_b = boundaries(np.where(ref >= 0, pred, -1))
        pred_b_scored, ref_b_scored = pred_b & scored, ref_b & scored
        self.pred_edges += int(pred_b_scored.sum())
        self.pred_edges_matched += int((pred_b_scored & near(ref_b, tolerance)).sum())
        self.ref_edges += int(ref_b_scored.sum())
        self.ref_edges_matched += int((ref_b_scored & near(pred_b, tolerance)).sum())
        right = pred == ref
        sub = scored & (ref >= 0) & (majority >= 0) & (ref != majority)
        self.subcell += int(sub.sum())
        self.subcell_right += int((sub & right).sum())
        mix = scored & (ref >= 0) & mixed
        self.mixed += int(mix.sum())
        self.mixed_right += int((mix & right).sum())

    def summary(self) -> dict:
        """Boundary precision, recall and F1 (0 when no edge is found; None when the reference has
        none), sub-cell OA, mixed-cell OA (None where nothing counted) and the pixel counts behind them."""
        precision = _ratio(self.pred_edges_matched, self.pred_edges)
        recall = _ratio(self.ref_edges_matched, self.ref_edges)
        if recall is None:  # no reference edge: nothing to find
            f1 = None
        elif not precision or not recall:  # no predicted edge, or none near a reference edge
            f1 = 0.0
        else:
            f1 = round(2 * precision * recall / (precision + recall), 6)
        return {"boundary_precision": precision, "boundary_recall": recall, "boundary_f1": f1,
                "subcell_oa": _ratio(self.subcell_right, self.subcell),
                "mixed_cell_oa": _ratio(self.mixed_right, self.mixed),
                "pixels": {"reference_edges": self.ref_edges, "predicted_edges": self.pred_edges,
                           "subcell": self.subcell, "mixed_cells": self.mixed}}


def _ratio(a: int, b: int) -> float | None:
    return None if b == 0 else round(a / b, 6)
