"""Does an int8 model draw the same map? The trained demo model (fp32 ONNX) against its static QDQ
int8 quantisation, calibrated on windows of the run's training blocks, both run through
`l2h.maps.infer.predict_block` with the run's label prior over the whole demo country: the share of
pixels where the two maps agree, OA of each at the demo's reference points, and pixels/s of each.

Writes bench/results/quantised_map.json. Usage: python bench/quantised_map.py RUN_DIR
(RUN_DIR: the project folder after `make demo`: results/model/l2hnet.onnx, resources/...)
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import yaml
from rasterio.windows import Window, from_bounds

sys.path.insert(0, str(Path(__file__).parent))
from model_speed import quantise_int8  # noqa: E402
from record import write  # noqa: E402

from l2h.core.blocks import block_bounds, parse_block_id  # noqa: E402
from l2h.core.classes import NODATA  # noqa: E402
from l2h.core.onnx_metadata import onnx_metadata  # noqa: E402
from l2h.evaluation.evaluate import Legend, read_points, sample_map, score_source  # noqa: E402
from l2h.inputs.regions import dissolved_regions  # noqa: E402
from l2h.maps.infer import load_onnx, predict_block  # noqa: E402
from l2h.maps.label_prior import LabelPrior  # noqa: E402
from l2h.model.norm import normalise  # noqa: E402


def calibration(run: Path, imagery: str, mean, std, block_m: float, count: int = 32, side: int = 256) -> list[np.ndarray]:
    """Normalised imagery windows inside the run's training blocks (resources/training_blocks.csv)."""
    with open(run / "resources" / "training_blocks.csv", newline="") as f:
        blocks = [row["block_id"] for row in csv.DictReader(f)]
    rng = np.random.default_rng(0)
    out = []
    with rasterio.open(imagery) as src:
        for i in range(count):
            bounds = block_bounds(*parse_block_id(blocks[i % len(blocks)]), block_m)
            window = from_bounds(*bounds, transform=src.transform)
            col = round(window.col_off) + int(rng.integers(0, max(1, round(window.width) - side)))
            line = round(window.row_off) + int(rng.integers(0, max(1, round(window.height) - side)))
            data = src.read(window=Window(col, line, side, side), boundless=True, fill_value=0)
            out.append(normalise(data, mean, std)[None])
    return out


def predict(model_path: Path, imagery: str, sets: list[str], bounds, crs: str, mask, out: Path) -> float:
    model = load_onnx(model_path, threads=2, device="cpu")
    with LabelPrior(sets, 10.0) as prior:
        start = time.perf_counter()
        predict_block(model, imagery, bounds, 1.0, crs, mask, out, progress=False, prior=prior)
        return time.perf_counter() - start


def main(run: Path) -> dict:
    cfg = yaml.safe_load((run / "workflow_config.yaml").read_text())
    imagery = str(run / cfg["imagery"]["paths"][0])
    onnx_path = run / "results" / "model" / "l2hnet.onnx"
    normalisation = onnx_metadata(onnx_path)["normalisation"]
    mean, std = (np.asarray(normalisation[k], np.float32) for k in ("mean", "std"))
    sets = sorted(str(p) for p in (run / "resources" / "labels").glob("*_sets.tif"))
    with rasterio.open(imagery) as src:
        crs = src.crs.to_string()
        b = src.bounds
    mask = dissolved_regions(run / cfg["regions"]["file"], cfg["regions"]["name_field"]).to_crs(crs).union_all()
    west, south, east, north = (np.floor(b.left), np.ceil(b.bottom), np.floor(b.left) + round(b.right - b.left),
                                np.ceil(b.bottom) + round(b.top - b.bottom))
    bounds = (float(west), float(south), float(east), float(north))
    points_cfg = {**cfg["evaluation"]["points"], "file": str(run / cfg["evaluation"]["points"]["file"])}
    points_cfg["strata"] = None
    legend = Legend.from_config(points_cfg["legend"], points_cfg["mapping"])
    points = read_points(points_cfg, legend)
    with tempfile.TemporaryDirectory() as tmp:
        int8 = Path(tmp) / "int8.onnx"
        t0 = time.perf_counter()
        quantise_int8(onnx_path, int8, calibration(run, imagery, mean, std, float(cfg['grid']['block_size'])))
        quantise_s = time.perf_counter() - t0
        maps, seconds, oa = {}, {}, {}
        for name, path in (("fp32", onnx_path), ("int8", int8)):
            out = Path(tmp) / f"{name}.tif"
            seconds[name] = predict(path, imagery, sets, bounds, crs, mask, out)
            with rasterio.open(out) as src:
                maps[name] = src.read(1)
            pred = sample_map(out, points, legend)
            oa[name] = score_source(name, pred, points, legend, 0, 0, None).scores["oa"]
    valid = maps["fp32"] != NODATA
    pixels = int(valid.sum())
    result = {"benchmark": "quantised_map", "model": str(onnx_path.relative_to(run)),
              "label_prior": 10.0, "pixels": pixels,
              "agreement": float((maps["fp32"][valid] == maps["int8"][valid]).mean()),
              "oa_at_reference_points": oa, "oa_difference_points": (oa["int8"] - oa["fp32"]) * 100,
              "n_points": int(len(points.x)), "seconds": seconds, "quantise_s": quantise_s,
              "pixels_per_s": {k: maps["fp32"].size / v for k, v in seconds.items()}}
    out = Path(__file__).parent / "results" / "quantised_map.json"
    write(out, result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), indent=1))
