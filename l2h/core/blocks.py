"""The block grid: fixed squares of the run's output grid, the unit of training-region sampling and
of inference (an inference job predicts a chunk of them, :mod:`l2h.maps.chunks`). Blocks are anchored
at the CRS origin (edges at multiples of block_size pixels), computed from region geometries at
DAG-parse time (no checkpoint)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import box

_ID = re.compile(r"c(m?\d+)_r(m?\d+)")


@dataclass(frozen=True)
class Block:
    """A square of the run's block grid: its id (``c<col>_r<row>``), the region it belongs to, its bounds."""
    id: str
    region: str
    col: int  # floor(x / block_m)
    row: int  # floor(y / block_m), growing northwards
    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in the run's CRS
    touches: tuple[str, ...] = ()  # every region the block overlaps (its mosaics need it)


def block_id(col: int, row: int) -> str:
    """Wildcard-safe id of a block, e.g. c412_r3310 (a minus sign is written 'm': c412_rm3)."""
    return f"c{col}_r{row}".replace("-", "m")


def parse_block_id(block: str) -> tuple[int, int]:
    """(col, row) of a block id written by `block_id`."""
    match = _ID.fullmatch(block)
    if not match:
        raise ValueError(f"not a block id: {block!r} (expected e.g. c412_r3310)")
    col, row = (int(v.replace("m", "-")) for v in match.groups())
    return col, row


def block_bounds(col: int, row: int, block_m: float) -> tuple[float, float, float, float]:
    """The block's extent in the run's CRS."""
    return col * block_m, row * block_m, (col + 1) * block_m, (row + 1) * block_m


def blocks_for_regions(regions: Mapping[str, object], block_m: float) -> list[Block]:
    """Every block touching a region, each owned by one region; sorted by (region, row desc, col).

    A block belongs to the region holding its centre; a block touching regions without holding
    any centre-region (on a coast or border) goes to the region it overlaps most. Blocks that
    touch no region are not listed.
    """
    touching: dict[tuple[int, int], list[str]] = {}
    for slug, geometry in regions.items():
        shapely.prepare(geometry)
        xmin, ymin, xmax, ymax = geometry.bounds
        cols = np.arange(math.floor(xmin / block_m), math.ceil(xmax / block_m))
        rows = np.arange(math.floor(ymin / block_m), math.ceil(ymax / block_m))
        cc, rr = (a.ravel() for a in np.meshgrid(cols, rows))
        boxes = shapely.box(cc * block_m, rr * block_m, (cc + 1) * block_m, (rr + 1) * block_m)
        hit = _overlaps(boxes, geometry)
        for col, row in zip(cc[hit].tolist(), rr[hit].tolist()):
            touching.setdefault((col, row), []).append(slug)
    blocks = []
    for (col, row), slugs in touching.items():
        bounds = block_bounds(col, row, block_m)
        owner = _owner(slugs, regions, bounds) if len(slugs) > 1 else slugs[0]
        blocks.append(Block(block_id(col, row), owner, col, row, bounds, tuple(sorted(slugs))))
    return sorted(blocks, key=lambda b: (b.region, -b.row, b.col))


def _overlaps(boxes, geometry):
    """Whether each box shares area with the geometry (touching at an edge or a corner is not enough)."""
    return shapely.intersects(boxes, geometry) & ~shapely.touches(boxes, geometry)


def regions_touching(bounds: tuple[float, float, float, float], regions: Mapping[str, object]) -> tuple[str, ...]:
    """The regions (slug -> geometry) a block overlaps, sorted: its ``touches`` as
    :func:`blocks_for_regions` computes it."""
    cell = box(*bounds)
    return tuple(sorted(slug for slug, geometry in regions.items() if bool(_overlaps(cell, geometry))))


def _owner(slugs: list[str], regions: Mapping[str, object], bounds) -> str:
    cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    holding = [s for s in slugs if shapely.contains_xy(regions[s], cx, cy)]
    if holding:
        return holding[0]
    cell = box(*bounds)
    return max(slugs, key=lambda s: (regions[s].intersection(cell).area, s))
