"""Block maps of this checkout against another checkout's (e.g. the commit before a change to
inference): the demo's imagery, block by block (1024 px), predicted by both with the run's model and label prior
(the workflow's defaults: bilinear prior with 1 m roads, 4 test-time flips, confidence), then the
classes compared pixel for pixel and the confidence byte by byte, with each side's time.

Writes JSON (default bench/results/map_parity.json).
Usage: python bench/map_parity.py REFERENCE_CHECKOUT [--run .] [--blocks N] [--threads 2] [--out F]
(--run: a finished demo run: resources/demo, resources/labels, resources/roads, results/model)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import record

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 1024

# run inside each checkout: predict the blocks given as JSON on stdin, print the seconds taken
PREDICT = r"""
import json, sys, time
from pathlib import Path
from shapely.geometry import box
from l2h.maps.infer import load_onnx, predict_block
from l2h.maps.label_prior import LabelPrior
job = json.load(sys.stdin)
model = load_onnx(job["model"], threads=job["threads"], device="cpu")
with LabelPrior(job["sets"], 4.0, interpolation="bilinear", roads=job["roads"]) as prior:
    start = time.perf_counter()
    for i, bounds in enumerate(job["blocks"]):
        predict_block(model, job["imagery"], bounds, 1.0, job["crs"], box(*bounds), Path(job["out"]) / f"{i}.tif",
                      confidence_out=Path(job["out"]) / f"{i}_c.tif", progress=False, prior=prior, flips=4,
                      **job["extra"])
    print(time.perf_counter() - start)
"""


def predict(checkout: Path, job: dict, out: Path) -> float:
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", PREDICT], input=json.dumps({**job, "out": str(out)}), env=env,
                          text=True, capture_output=True, cwd=checkout)
    if done.returncode:
        sys.exit(f"{checkout}: {done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("--run", type=Path, default=ROOT)
    parser.add_argument("--blocks", type=int, default=0, help="the first N blocks only (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "map_parity.json")
    args = parser.parse_args()
    imagery = args.run / "resources" / "demo" / "imagery" / "demo_imagery.tif"
    with rasterio.open(imagery) as src:
        bounds, crs = src.bounds, src.crs.to_string()
    sets = sorted(str(p) for p in (args.run / "resources" / "labels").glob("*_sets.tif"))
    roads = sorted(str(p) for p in (args.run / "resources" / "roads").glob("*.gpkg"))
    # the imagery cut into blocks, the whole country (across the regions' borders)
    columns, rows = int((bounds.right - bounds.left) // BLOCK), int((bounds.top - bounds.bottom) // BLOCK)
    blocks = [(bounds.left + i * BLOCK, bounds.top - (j + 1) * BLOCK, bounds.left + (i + 1) * BLOCK,
               bounds.top - j * BLOCK) for j in range(rows) for i in range(columns)][:args.blocks or None]
    job = {"model": str(args.run / "results" / "model" / "l2hnet.onnx"), "imagery": str(imagery), "crs": crs,
           "sets": sets, "roads": roads, "blocks": blocks, "threads": args.threads, "extra": {}}
    with tempfile.TemporaryDirectory() as tmp:
        seconds = {"reference": predict(args.reference, job, Path(tmp) / "ref"),
                   "this": predict(ROOT, job, Path(tmp) / "this")}
        differing = worst = pixels = 0
        for i in range(len(blocks)):
            read = lambda side, name: rasterio.open(Path(tmp) / side / name).read(1)  # noqa: E731
            a, b = read("ref", f"{i}.tif"), read("this", f"{i}.tif")
            differing += int((a != b).sum())
            pixels += a.size
            ca, cb = read("ref", f"{i}_c.tif").astype(int), read("this", f"{i}_c.tif").astype(int)
            worst = max(worst, int(np.abs(ca - cb).max()))
    result = {"benchmark": "map_parity", "reference": str(args.reference),
              "blocks": len(blocks), "pixels": pixels, "classes_differing": differing,
              "confidence_max_difference_bytes": worst, "threads": args.threads, "seconds": seconds,
              "speedup": seconds["reference"] / seconds["this"],
              "settings": "demo model, bilinear label prior 4 nats with 1 m roads, 4 flips, confidence"}
    record.write(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
