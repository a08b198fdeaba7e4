"""Per-block statistics of the training labels: pixels in the regions, labelled pixels and class
counts, the table the training-block sampler chooses from.

A block on a border touches several regions' labels: each region counts its own part
(`block_counts`) and `merge_block_counts` adds the parts up, so border strips are counted once.
Each label pixel is counted in the block holding its centre.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window

from l2h.core.blocks import Block
from l2h.core.classes import CLASS_CODES, IGNORE, NODATA
from l2h.core.errors import InputError
from l2h.core.io import atomic_path

COUNT_COLUMNS = ["block_id", "region", "label_region", "pixel_km2", "pixels", "labelled",
                 *(f"count_{c}" for c in CLASS_CODES), "xmin", "ymin", "xmax", "ymax"]
BLOCK_COLUMNS = ["block_id", "region", "area_km2", "labelled_share", *(f"share_{c}" for c in CLASS_CODES),
                 "xmin", "ymin", "xmax", "ymax"]


def centre_window(bounds: tuple[float, float, float, float], transform) -> Window:
    """The window of the label pixels whose centres lie in `bounds` (each pixel in exactly one block)."""
    res_x, res_y = transform.a, -transform.e
    xmin, ymin, xmax, ymax = bounds
    col0, col1 = (math.ceil((x - transform.c) / res_x - 0.5) for x in (xmin, xmax))
    row0, row1 = (math.ceil((transform.f - y) / res_y - 0.5) for y in (ymax, ymin))
    return Window(col0, row0, col1 - col0, row1 - row0)


def block_counts(label_path: str | Path, region: str, blocks: Sequence[Block]) -> pd.DataFrame:
    """Pixel counts of region `region`'s label in every block touching it (COUNT_COLUMNS).

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
            data = src.read(1, window=centre_window(block.bounds, src.transform), boundless=True, fill_value=NODATA)
            counts = np.bincount(data.ravel(), minlength=256)
            pixels = int(counts.sum() - counts[NODATA])
            rows.append(dict(block_id=block.id, region=block.region, label_region=region, pixel_km2=pixel_km2,
                             pixels=pixels, labelled=pixels - int(counts[IGNORE]),
                             **{f"count_{c}": int(counts[c]) for c in CLASS_CODES},
                             **dict(zip(("xmin", "ymin", "xmax", "ymax"), block.bounds))))
    return pd.DataFrame(rows, columns=COUNT_COLUMNS)


def merge_block_counts(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per block (BLOCK_COLUMNS): area in the regions (km²), labelled share, class shares."""
    counts = pd.concat(parts, ignore_index=True)
    counts["area_km2"] = counts["pixels"] * counts["pixel_km2"]
    summed = ["pixels", "labelled", "area_km2", *(f"count_{c}" for c in CLASS_CODES)]
    first = ["region", "xmin", "ymin", "xmax", "ymax"]
    merged = counts.groupby("block_id", sort=True).agg({**{k: "sum" for k in summed}, **{k: "first" for k in first}})
    merged = merged.reset_index()
    merged["labelled_share"] = (merged["labelled"] / merged["pixels"]).where(merged["pixels"] > 0, 0.0)
    for c in CLASS_CODES:
        merged[f"share_{c}"] = (merged[f"count_{c}"] / merged["labelled"]).where(merged["labelled"] > 0, 0.0)
    return merged[BLOCK_COLUMNS]


def write_table(table: pd.DataFrame, out: str | Path) -> None:
    """Write a block table as CSV, atomically."""
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.12g")


def read_table(path, needed: Sequence[str]) -> list[dict]:
    """The rows of a block-table CSV that has the ``needed`` columns (InputError otherwise)."""
    if not Path(path).is_file():
        raise InputError(f"block table {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: lacks column(s) {', '.join(missing)} (has {reader.fieldnames})")
        return list(reader)


def training_rows(blocks_csv, training_blocks_csv, columns: Sequence[str]) -> list[dict]:
    """The block table's rows (needing ``columns``) of the blocks ``training_blocks_csv`` lists, in
    its order; a listed block missing from the table -> InputError."""
    table = {r["block_id"]: r for r in read_table(blocks_csv, ("block_id", *columns))}
    rows = []
    for chosen in read_table(training_blocks_csv, ("block_id",)):
        if chosen["block_id"] not in table:
            raise InputError(f"{training_blocks_csv}: block {chosen['block_id']} is not in {blocks_csv}")
        rows.append(table[chosen["block_id"]])
    return rows


def training_block_bounds(blocks_csv: str | os.PathLike,
                          training_blocks_csv: str | os.PathLike) -> list[tuple[float, float, float, float]]:
    """(xmin, ymin, xmax, ymax) of every training block, in the run's CRS (from the block table)."""
    rows = training_rows(blocks_csv, training_blocks_csv, ("xmin", "ymin", "xmax", "ymax"))
    try:
        return [tuple(float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")) for r in rows]
    except ValueError as exc:
        raise InputError(f"{blocks_csv}: a training block has non-numeric bounds ({exc})") from None
