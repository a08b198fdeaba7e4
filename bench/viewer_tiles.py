"""Does `l2h view` stay fast and small on a national map? Time and memory per map tile, zoom by zoom,
on a large synthetic class COG written by l2h's own mosaic path (`to_cog`: 512 tiles, DEFLATE, MODE
overviews down to one tile), and on the demo's national map when it exists.

A tile at any zoom should cost about the same (rio-tiler reads the overview level nearest the tile's
resolution), and the process's peak memory should not grow with the map's size.

Writes JSON (default bench/results/viewer_tiles.json): per map its size and per zoom the median and
the worst milliseconds of a tile over a ring of tiles around the centre, and the peak RSS.

Usage:
  python bench/viewer_tiles.py [--side 65536] [--tiles 12] [--work DIR] [--out bench/results/viewer_tiles.json]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import morecantile
import numpy as np
import rasterio
import record
from rasterio.transform import from_origin

from l2h.core.io import class_raster_profile
from l2h.core.windows import iter_windows
from l2h.maps.gis_files import write_category_sidecar
from l2h.maps.mosaic import to_cog
from l2h.view.layers import RunLayers, render_tile

TMS = morecantile.tms.get("WebMercatorQuad")


def synthetic_map(path: Path, side: int) -> Path:
    """A side x side 1 m class COG in UTM 50N: 64 m parcels of the 11 classes, written window by window."""
    if path.exists():
        return path
    scratch = path.with_suffix(".merge.tif")
    transform = from_origin(300000, 3400000, 1.0, 1.0)
    profile = class_raster_profile(side, side, "EPSG:32650", transform, BIGTIFF="YES")
    with rasterio.open(scratch, "w", **profile) as dst:
        for win in iter_windows(side, side, 4096):
            rows = (np.arange(win.row_off, win.row_off + win.height) // 64)[:, None]
            cols = (np.arange(win.col_off, win.col_off + win.width) // 64)[None, :]
            dst.write(((rows * 7 + cols * 3) % 11 + 1).astype(np.uint8), 1, window=win)
    to_cog(scratch, path)
    scratch.unlink()
    write_category_sidecar(path)
    return path


def time_zooms(path: Path, n_tiles: int) -> dict:
    layers = RunLayers(root=path.parent, name="bench", map=path, confidence=None, imagery=[], labels={},
                       regions={})
    from rio_tiler.io import Reader

    with Reader(str(path)) as src:
        low, high = src.minzoom, src.maxzoom
        west, south, east, north = src.get_geographic_bounds("EPSG:4326")
    layers.zooms["map"] = (low, high)
    lon, lat = (west + east) / 2, (south + north) / 2
    zooms = {}
    for z in range(low, high + 1):
        centre = TMS.tile(lon, lat, z)
        ring = [(centre.x + dx, centre.y + dy) for dy in range(-1, 2) for dx in range(-2, 2)][:n_tiles]
        times = []
        for x, y in ring:
            start = time.perf_counter()
            try:
                render_tile(layers, "map", z, x, y)
            except LookupError:
                continue
            times.append((time.perf_counter() - start) * 1000)
        zooms[z] = {"tiles": len(times), "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
        print(path.name, z, zooms[z], flush=True)
    with rasterio.open(path) as src:
        size = {"width": src.width, "height": src.height, "overviews": src.overviews(1),
                "file_mb": round(path.stat().st_size / 2**20, 1)}
    return {"map": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name, **size, "zooms": zooms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=65536, help="side of the synthetic map in 1 m pixels")
    parser.add_argument("--tiles", type=int, default=12, help="tiles timed per zoom")
    parser.add_argument("--work", type=Path, default=None, help="folder for the synthetic COG (kept)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/viewer_tiles.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="l2h-viewer-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    big = work / f"synthetic_{args.side}.tif"
    start, reused = time.perf_counter(), big.exists()
    synthetic_map(big, args.side)
    written_s = None if reused else round(time.perf_counter() - start, 1)
    # peak RSS is the process's: run again on the kept COG (--work) for the tiles' memory alone
    results = {"synthetic": {**time_zooms(big, args.tiles), "cog_written_s": written_s}}
    demo = ROOT / "results/maps/national.tif"
    if demo.exists():
        results["demo_national"] = time_zooms(demo, args.tiles)
    record.write(args.out, results)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
