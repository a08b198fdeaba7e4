"""Per-band normalisation shared by training and inference (no torch needed)."""

from __future__ import annotations

import numpy as np


def normalise(pixels: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std per band as float32; pixels without imagery (all bands 0) become 0, like the
    network's zero padding (so a tile's edge and the imagery's edge look alike: no seams)."""
    valid = pixels.any(axis=0)
    out = (pixels.astype(np.float32) - mean[:, None, None]) / std[:, None, None]
    out[:, ~valid] = 0
    return out
