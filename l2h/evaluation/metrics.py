"""Accuracy metrics from reference/predicted class indices (pure numpy): confusion matrix, OA,
Cohen's kappa, per-class producer's/user's accuracy, F1 and IoU, bootstrap confidence intervals,
and the stratified (area-weighted) estimators of Olofsson et al. (2014) / Stehman (2014).

Classes are indices 0..K-1; confusion matrices have the reference in rows, the prediction in
columns (sklearn's convention). Every function accepts a stack of matrices (..., K, K).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def confusion_matrix(ref: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """K x K counts: rows reference, columns prediction."""
    ref, pred = np.asarray(ref, np.int64), np.asarray(pred, np.int64)
    return np.bincount(ref * k + pred, minlength=k * k).reshape(k, k)


def scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """OA, kappa, mIoU (over classes present in the reference) and per-class producer's (recall),
    user's (precision) accuracy, F1 and IoU of one or a stack of confusion matrices; NaN where a
    denominator is zero."""
    cm = np.asarray(cm, float)
    n = cm.sum(axis=(-2, -1))
    diag = np.diagonal(cm, axis1=-2, axis2=-1)
    rows, cols = cm.sum(axis=-1), cm.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        oa = diag.sum(axis=-1) / n
        pe = (rows * cols).sum(axis=-1) / n**2
        kappa = (oa - pe) / (1 - pe)
        producers = diag / rows
        users = diag / cols
        f1 = 2 * diag / (rows + cols)
        iou = diag / (rows + cols - diag)
        present = rows > 0
        miou = np.where(present, np.nan_to_num(iou), 0).sum(axis=-1) / present.sum(axis=-1)
    return dict(oa=oa, kappa=kappa, miou=miou, producers=producers, users=users, f1=f1, iou=iou)


def _resample(n: int, strata: np.ndarray | None, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(iterations, n) indices drawn with replacement (within each stratum when stratified)."""
    if strata is None:
        return rng.integers(0, n, size=(iterations, n))
    out = np.empty((iterations, n), np.int64)
    for h in np.unique(strata):
        members = np.flatnonzero(strata == h)
        out[:, members] = members[rng.integers(0, len(members), size=(iterations, len(members)))]
    return out


def bootstrap_scores(ref: np.ndarray, pred: np.ndarray, k: int, iterations: int, seed: int,
                     strata: np.ndarray | None = None, chunk: int = 200) -> dict[str, np.ndarray]:
    """Percentile 95 % intervals of every `scores` entry: {name: array(..., 2)} (NaN if iterations 0)."""
    ref, pred = np.asarray(ref, np.int64), np.asarray(pred, np.int64)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {}
    done = 0
    while done < iterations:
        b = min(chunk, iterations - done)
        idx = _resample(len(ref), strata, b, rng)
        flat = (np.arange(b)[:, None] * k * k + ref[idx] * k + pred[idx]).ravel()
        cms = np.bincount(flat, minlength=b * k * k).reshape(b, k, k)
        for name, value in scores(cms).items():
            draws.setdefault(name, []).append(value)
        done += b
    if not draws:
        template = scores(confusion_matrix(ref, pred, k))
        return {name: np.full((*np.shape(v), 2), np.nan) for name, v in template.items()}
    out = {}
    for name, parts in draws.items():
        lo, hi = _nanpercentile_safe(np.concatenate(parts, axis=0))
        out[name] = np.stack([lo, hi], axis=-1)
    return out


def _nanpercentile_safe(stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5/97.5 percentiles along axis 0, NaN where every draw is NaN (a class never predicted)."""
    lo = np.full(stacked.shape[1:], np.nan)
    hi = np.full(stacked.shape[1:], np.nan)
    ok = np.isfinite(stacked).any(axis=0)
    if ok.any():
        lo[ok], hi[ok] = np.nanpercentile(stacked[:, ok], [2.5, 97.5], axis=0)
    return lo, hi


def _stratum_moments(y: np.ndarray, x: np.ndarray, strata: np.ndarray, order: Sequence) -> tuple:
    """Per stratum: n, mean y, mean x, var y, var x, cov(x, y) (ddof 1; 0 with one point)."""
    n, my, mx, vy, vx, cxy = (np.zeros(len(order)) for _ in range(6))
    for i, h in enumerate(order):
        sel = strata == h
        n[i] = sel.sum()
        ys, xs = y[sel].astype(float), x[sel].astype(float)
        my[i], mx[i] = ys.mean(), xs.mean()
        if n[i] > 1:
            vy[i], vx[i] = ys.var(ddof=1), xs.var(ddof=1)
            cxy[i] = np.cov(xs, ys, ddof=1)[0, 1]
    return n, my, mx, vy, vx, cxy


def stratified_estimates(ref: np.ndarray, pred: np.ndarray, k: int, strata: np.ndarray,
                         stratum_area: dict) -> dict:
    """Area-weighted accuracy and class areas for a stratified random sample (Olofsson et al. 2014;
    Stehman 2014 for strata that are not the map's classes). Each point of stratum h stands for
    A_h / n_h of the area; no finite-population correction.

    Returns {"oa": (estimate, se), "users"/"producers"/"area_share": arrays (K, 2) of estimate and
    standard error, "area": total area, "strata_without_points": [...]}. Multiply se by Z95 for the
    95 % half-width.
    """
    ref, pred, strata = np.asarray(ref), np.asarray(pred), np.asarray(strata)
    order = [h for h in stratum_area if (strata == h).any()]
    empty = [h for h in stratum_area if h not in order]
    areas = np.array([float(stratum_area[h]) for h in order])
    w = areas / areas.sum()

    def total(y):
        n, my, _, vy, _, _ = _stratum_moments(y, y, strata, order)
        return float((w * my).sum()), float(np.sqrt((w**2 * vy / n).sum()))

    def ratio(y, x):
        n, my, mx, vy, vx, cxy = _stratum_moments(y, x, strata, order)
        xhat = (w * mx).sum()
        if xhat == 0:
            return np.nan, np.nan
        r = (w * my).sum() / xhat
        var = (w**2 * (vy + r**2 * vx - 2 * r * cxy) / n).sum() / xhat**2
        return float(r), float(np.sqrt(max(var, 0.0)))

    correct = ref == pred
    users = np.array([ratio(correct & (pred == c), pred == c) for c in range(k)])
    producers = np.array([ratio(correct & (ref == c), ref == c) for c in range(k)])
    shares = np.array([total(ref == c) for c in range(k)])
    return dict(oa=total(correct), users=users, producers=producers, area_share=shares,
                area=float(areas.sum()), strata_without_points=empty)
