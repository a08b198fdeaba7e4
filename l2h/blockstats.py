"""Per-block statistics of a region's training label: in-region area, labelled share and class
shares, the table the training-block sampler chooses from."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import from_bounds

from l2h.blocks import Block
from l2h.classes import CLASS_CODES, IGNORE, NODATA
from l2h.errors import InputError
from l2h.io import atomic_path

COLUMNS = ["block_id", "region", "area_km2", "labelled_share", *(f"share_{c}" for c in CLASS_CODES),
           "xmin", "ymin", "xmax", "ymax"]


def block_statistics(label_path: str | Path, blocks: Sequence[Block]) -> list[dict]:
    """One row per block: area inside the region (km²), labelled share, share of each class.

    The label is read one block window at a time (memory bounded by the block).
    """
    rows = []
    try:
        src = rasterio.open(label_path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"label {label_path}: unreadable ({exc}); delete it to rebuild") from None
    with src:
        pixel_km2 = abs(src.res[0] * src.res[1]) / 1e6
        for block in blocks:
            window = from_bounds(*block.bounds, transform=src.transform).round_offsets().round_lengths()
            data = src.read(1, window=window, boundless=True, fill_value=NODATA)
            counts = np.bincount(data.ravel(), minlength=256)
            inside = int(counts.sum() - counts[NODATA])
            labelled = inside - int(counts[IGNORE])
            row = dict(block_id=block.id, region=block.region, area_km2=inside * pixel_km2,
                       labelled_share=labelled / inside if inside else 0.0)
            for c in CLASS_CODES:
                row[f"share_{c}"] = counts[c] / labelled if labelled else 0.0
            row.update(zip(("xmin", "ymin", "xmax", "ymax"), block.bounds))
            rows.append(row)
    return rows


def write_block_table(rows: Sequence[dict], out: str | Path) -> None:
    """Write block statistics as CSV (columns COLUMNS), atomically."""
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.12g}" if isinstance(v, float) else v) for k, v in row.items()})
