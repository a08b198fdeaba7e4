"""Deterministic random fields for the demo world (numpy + scipy.ndimage only).

Every component draws from its own stream, ``stream(seed, "name")``, so changing one part of the
generator never shifts the random numbers of another.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import ndimage


def stream(seed: int, name: str) -> np.random.Generator:
    """A numpy Generator for component `name` of the world with `seed` (stable across runs)."""
    key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([int(seed), key])


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float,
                 octaves: int = 1, persistence: float = 0.5) -> np.ndarray:
    """A smooth random field of `shape` (float32, ~zero mean, unit std) with features ~`scale` px.

    Built on a coarse grid (one node per scale/2 px), blurred there and upsampled bilinearly,
    which keeps a 4096 x 3072 field well under a second.
    """
    h, w = shape
    total = np.zeros(shape, dtype=np.float32)
    amp = 1.0
    for octave in range(octaves):
        s = max(scale / (2 ** octave), 2.0)
        step = max(s / 2.0, 1.0)
        ch, cw = int(np.ceil(h / step)) + 3, int(np.ceil(w / step)) + 3
        coarse = rng.standard_normal((ch, cw)).astype(np.float32)
        coarse = ndimage.gaussian_filter(coarse, sigma=1.0, mode="wrap")
        total += amp * upsample(coarse, step, shape)
        amp *= persistence
    total -= total.mean()
    std = float(total.std())
    return total / std if std > 0 else total


def upsample(coarse: np.ndarray, step: float, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of a coarse grid with node spacing `step` px onto `shape` (separable)."""
    h, w = shape
    rows = (np.arange(h, dtype=np.float64) + 0.5) / step + 1.0
    cols = (np.arange(w, dtype=np.float64) + 0.5) / step + 1.0
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    fr = (rows - r0).astype(np.float32)[:, None]
    fc = (cols - c0).astype(np.float32)[None, :]
    across = coarse[:, c0] * (1.0 - fc) + coarse[:, c0 + 1] * fc  # (coarse rows, w)
    out = across[r0]
    out *= 1.0 - fr
    out += across[r0 + 1] * fr
    return out.astype(np.float32, copy=False)


def noise_1d(rng: np.random.Generator, n: int, scale: float, wrap: bool = False) -> np.ndarray:
    """A smooth 1-D random sequence of length `n` (zero mean, unit std), features ~`scale` samples."""
    raw = rng.standard_normal(n)
    smooth = ndimage.gaussian_filter1d(raw, sigma=max(scale / 2.0, 0.5), mode="wrap" if wrap else "reflect")
    smooth = smooth - smooth.mean()
    std = smooth.std()
    return smooth / std if std > 0 else smooth


def quantile_threshold(field: np.ndarray, share: float, mask: np.ndarray | None = None) -> float:
    """The value above which `share` of the (masked) field lies, estimated on a 1-in-16 subsample."""
    sub = field[::4, ::4]
    if mask is not None:
        sub = sub[mask[::4, ::4]]
    if sub.size == 0:
        return float("inf")
    return float(np.quantile(sub, 1.0 - share))


def shift(arr: np.ndarray, dy: int, dx: int, fill=0) -> np.ndarray:
    """`arr` moved by (dy, dx) pixels (down/right positive), vacated cells set to `fill`."""
    out = np.full_like(arr, fill)
    h, w = arr.shape[:2]
    ys_dst = slice(max(dy, 0), h + min(dy, 0))
    ys_src = slice(max(-dy, 0), h + min(-dy, 0))
    xs_dst = slice(max(dx, 0), w + min(dx, 0))
    xs_src = slice(max(-dx, 0), w + min(-dx, 0))
    out[ys_dst, xs_dst] = arr[ys_src, xs_src]
    return out
