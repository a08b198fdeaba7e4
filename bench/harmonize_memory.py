"""Peak memory of `l2h harmonize` for a region and for one 4x its area: bounded by the window.

Writes bench/results/harmonize_memory.json. Usage: python bench/harmonize_memory.py [side_km ...]
Each measurement runs in a fresh process and reads its peak resident memory (VmHWM in
/proc/self/status: unlike ru_maxrss it does not inherit the parent's high-water mark across exec).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import rasterio
import record
from rasterio.transform import from_origin

ORIGIN = (300000.0, 3400000.0)  # UTM 50N
CRS = "EPSG:32650"
_CHILD = """
import re, sys, time
from shapely.geometry import box
from l2h.inputs.fetch_product import ProductFiles
from l2h.labels.harmonize import harmonize_region
from l2h.core.classes import ESRI_LULC_ANNUAL, FROM_GLC10
side, a, b, out, window = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
x0, y0 = %r
region = box(x0, y0 - side, x0 + side, y0)
start = time.perf_counter()
harmonize_region(region, %r, [ProductFiles("esri", ESRI_LULC_ANNUAL, [a]), ProductFiles("from", FROM_GLC10, [b])],
                 out, resolution=10, window=window)
hwm_kb = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(hwm_kb, time.perf_counter() - start)
""" % (ORIGIN, CRS)


def _product(path: Path, side_m: float, codes: list[int], seed: int) -> str:
    """A 10 m product over the region: 500 m patches of random codes (compresses well)."""
    n = int(side_m / 10)
    rng = np.random.default_rng(seed)
    patches = rng.choice(np.array(codes, np.uint8), size=(n // 50 + 1, n // 50 + 1))
    data = np.kron(patches, np.ones((50, 50), np.uint8))[:n, :n]
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype="uint8", crs=CRS, nodata=0,
                       transform=from_origin(*ORIGIN, 10, 10), tiled=True, compress="deflate") as dst:
        dst.write(data, 1)
    return str(path)


def measure(side_km: float, window: int = 1024) -> dict:
    """Peak RSS (MB) and seconds of harmonizing a side_km x side_km region with two products."""
    with TemporaryDirectory() as tmp:
        side_m = side_km * 1000
        a = _product(Path(tmp) / "a.tif", side_m, [1, 2, 5, 11], 1)
        b = _product(Path(tmp) / "b.tif", side_m, [10, 20, 30, 40], 2)
        out = subprocess.run([sys.executable, "-c", _CHILD, str(side_m), a, b, str(Path(tmp) / "l.tif"), str(window)],
                             capture_output=True, text=True, check=True)
        rss_kb, seconds = out.stdout.split()
    return {"side_km": side_km, "area_km2": side_km ** 2, "label_pixels": int(side_m / 10) ** 2,
            "peak_rss_mb": int(rss_kb) / 1024, "seconds": float(seconds)}


def main(sides: list[float]) -> dict:
    runs = [measure(s) for s in sides]
    result = {"benchmark": "harmonize_memory", "window": 1024,
              "runs": runs, "rss_ratio_largest_to_smallest": runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"],
              "area_ratio": runs[-1]["area_km2"] / runs[0]["area_km2"]}
    out = Path(__file__).parent / "results" / "harmonize_memory.json"
    out.parent.mkdir(exist_ok=True)
    record.write(out, result)
    return result


if __name__ == "__main__":
    print(json.dumps(main([float(s) for s in sys.argv[1:]] or [20.0, 40.0, 80.0]), indent=1))
