"""A map of the training-block selection: regions, every block, the chosen ones (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.collections import PatchCollection
from matplotlib.patches import Patch, Rectangle

from l2h.core.figures import new_figure, save_png
from l2h.inputs.regions import read_region_geometry


def plot_selection(region_files: Sequence[str | Path], blocks: pd.DataFrame, selected: Sequence[str],
                   out: str | Path, title: str) -> Path:
    """Write a PNG: region outlines, all blocks (grey outline), selected blocks (filled)."""
    chosen = set(selected)
    fig = new_figure(9, 7)
    ax = fig.add_subplot()
    for block_set, face, edge in ((blocks[~blocks["block_id"].isin(chosen)], "none", "#9a9a9a"),
                                  (blocks[blocks["block_id"].isin(chosen)], "#e8743b", "#a04010")):
        patches = [Rectangle((r.xmin, r.ymin), r.xmax - r.xmin, r.ymax - r.ymin) for r in block_set.itertuples()]
        ax.add_collection(PatchCollection(patches, facecolor=face, edgecolor=edge, linewidth=0.6, alpha=0.75))
    for path in region_files:
        region = read_region_geometry(path)
        polygons = getattr(region.geometry, "geoms", [region.geometry])
        for polygon in polygons:
            x, y = polygon.exterior.xy
            ax.plot(x, y, color="black", linewidth=1.2)
        centre = region.geometry.representative_point()
        ax.annotate(region.name, (centre.x, centre.y), ha="center", fontsize=9, weight="bold",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.7))
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_title(title, parse_math=False)
    ax.legend(handles=[Patch(facecolor="none", edgecolor="#9a9a9a", label=f"block ({len(blocks)})"),
                       Patch(facecolor="#e8743b", edgecolor="#a04010", label=f"training block ({len(chosen)})")],
              loc="lower right", fontsize=8)
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)
    return save_png(fig, out)
