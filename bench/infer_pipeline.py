"""Inference pipeline efficiency and mosaic memory.

1. The whole block pipeline (read -> normalise -> onnxruntime -> write, threads overlapping) vs
   onnxruntime alone on the same tiles already in memory: the ratio of pixels/s (target >= 0.8).
2. Peak memory (VmHWM of a fresh process) of `mosaic` for a region and for one 4x its area.
Writes bench/results/infer_pipeline.json. Usage: python bench/infer_pipeline.py DEMO_WORLD_DIR
(a folder written by `l2h demo-world`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import record
import torch
from rasterio.transform import from_origin
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import export_tiny_model  # noqa: E402  (a randomly initialised L2HNet in ONNX)

from l2h.core.io import write_class_raster  # noqa: E402
from l2h.core.windows import iter_windows  # noqa: E402
from l2h.maps.infer import load_onnx, predict_block  # noqa: E402
from l2h.model.norm import normalise  # noqa: E402

_MOSAIC_CHILD = """
import re, sys
from shapely.geometry import box
from l2h.maps.mosaic import mosaic
paths, side, out = sys.argv[3:], float(sys.argv[1]), sys.argv[2]
mosaic(paths, box(0, 0, side, side), "EPSG:32650", 1.0, out)
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""


def pipeline_ratio(demo: Path, width: int = 32, threads: int = 2, tile: int = 512) -> dict:
    imagery = str(demo / "imagery" / "demo_imagery.tif")
    with rasterio.open(imagery) as src:
        west, north = src.bounds.left, src.bounds.top
    bounds = (west + 1024, north - 2048, west + 2048, north - 1024)  # a 1024 x 1024 block inside the country
    with tempfile.TemporaryDirectory() as tmp:
        model = load_onnx(export_tiny_model(Path(tmp) / "m.onnx", width=width), threads=threads)
        start = time.perf_counter()
        predict_block(model, imagery, bounds, 1.0, "EPSG:32650", box(*bounds), Path(tmp) / "b.tif", tile=tile,
                      progress=False)
        pipeline_s = time.perf_counter() - start
        mean = np.asarray(model.metadata["normalisation"]["mean"], np.float32)
        std = np.asarray(model.metadata["normalisation"]["std"], np.float32)
        halo = model.halo
        with rasterio.open(imagery) as src:
            window = rasterio.windows.from_bounds(*bounds, transform=src.transform)
            tiles = [normalise(src.read(window=rasterio.windows.Window(
                window.col_off + w.col_off - halo, window.row_off + w.row_off - halo, tile + 2 * halo, tile + 2 * halo),
                boundless=True, fill_value=0), mean, std) for w in iter_windows(1024, 1024, tile)]
        batch = np.stack(tiles)
        start = time.perf_counter()
        model.session.run(None, {"image": batch})
        model_s = time.perf_counter() - start
    pixels = 1024 * 1024
    return {"block_px": 1024, "tile": tile, "width": width, "threads": threads,
            "pipeline_pixels_per_s": pixels / pipeline_s, "model_only_pixels_per_s": pixels / model_s,
            "ratio": model_s / pipeline_s}


def mosaic_memory(blocks_per_side: int, block: int = 1024) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        rng = np.random.default_rng(0)
        for i in range(blocks_per_side):
            for j in range(blocks_per_side):
                data = np.kron(rng.integers(1, 12, (block // 64, block // 64), dtype=np.uint8), np.ones((64, 64), np.uint8))
                path = Path(tmp) / f"c{i}_r{j}.tif"
                write_class_raster(path, data, "EPSG:32650", from_origin(i * block, (j + 1) * block, 1, 1))
                paths.append(str(path))
        side = blocks_per_side * block
        out = subprocess.run([sys.executable, "-c", _MOSAIC_CHILD, str(side), str(Path(tmp) / "m.tif"), *paths],
                             capture_output=True, text=True, check=True)
    return {"blocks": blocks_per_side ** 2, "area_px": side * side, "peak_rss_mb": int(out.stdout.split()[-1]) / 1024}


def main(demo: Path) -> dict:
    torch.set_num_threads(2)
    small, large = mosaic_memory(4), mosaic_memory(8)
    result = {"benchmark": "infer_pipeline", "pipeline": pipeline_ratio(demo),
              "mosaic": {"small": small, "large": large, "area_ratio": large["area_px"] / small["area_px"],
                         "rss_ratio": large["peak_rss_mb"] / small["peak_rss_mb"]}}
    out = Path(__file__).parent / "results" / "infer_pipeline.json"
    record.write(out, result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), indent=1))
