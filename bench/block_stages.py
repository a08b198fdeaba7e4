"""Where a block job's CPU time went: the block pipeline's steps in numpy, one stage at a time on
one core, over the demo's imagery. These are the steps `l2h infer` ran before they moved into one
ONNX graph (l2h.maps.block_graph; its throughput: bench/io_ceiling.py); the label prior's numpy
form (LabelPrior.bonus) stays the reference the graph is tested against.

Stages per 512 px tile: read with the model's halo (`read_padded`;
rasterio's boundless read, which it replaced, is timed beside it),
normalise, the model (a no-op 1x1 convolution, bench/io_ceiling.py, and the demo's trained model
when results/model/l2hnet.onnx exists), the label prior's bonus (bilinear with 1 m roads when the
run's roads exist, as the workflow's default), argmax, confidence (softmax maximum), and writing the
class and confidence GeoTIFFs. Beside them, the codec limits the pipeline is judged against: decoding
the block's imagery alone (one read of the whole block, on the file's tiles), and encoding the two
uint8 layers alone with each candidate codec (time and bytes).

Writes JSON (default bench/results/block_stages.json): pixels/s of each stage on one core.
Usage: python bench/block_stages.py [--world resources/demo] [--run .] [--blocks 4] [--out F]
(--run: a finished demo run, for resources/labels, resources/roads and results/model)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
import record  # noqa: E402
from io_ceiling import noop_model  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from l2h.core.io import class_raster_profile  # noqa: E402
from l2h.core.windows import iter_windows, read_padded  # noqa: E402
from l2h.maps.infer import load_onnx  # noqa: E402
from l2h.maps.label_prior import LabelPrior  # noqa: E402
from l2h.model.norm import normalise  # noqa: E402

BLOCK = 1024
TILE = 512
CODECS = {  # the block outputs' candidates: GDAL creation options beyond the class profile's
    "deflate (the region mosaics)": {},
    "deflate level 1": {"zlevel": 1},
    "deflate + predictor 2": {"predictor": 2},
    "zstd level 1 (the blocks)": {"compress": "zstd", "zstd_level": 1},
    "zstd level 9": {"compress": "zstd", "zstd_level": 9},
    "lzw": {"compress": "lzw"},
    "packbits": {"compress": "packbits"},
    "lerc_deflate": {"compress": "lerc_deflate", "max_z_error": 0},
    "none": {"compress": None},
}


class Clock:
    """Seconds per stage, summed."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def time(self, stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return out


def _blocks(src, count: int) -> list[Window]:
    """`count` blocks on the file's tile grid, around the imagery's centre (full of data)."""
    cols, rows = src.width // BLOCK, src.height // BLOCK
    c0, r0 = cols // 2 - 1, rows // 2 - 1
    cells = [(c0 + i % 2, r0 + i // 2) for i in range(count)]
    return [Window(c * BLOCK, r * BLOCK, BLOCK, BLOCK) for c, r in cells]


def _softmax_top(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    return np.clip(np.round(255.0 / shifted.sum(axis=0)), 1, 255).astype(np.uint8)


def stages(imagery: str, model_path: Path, label_prior: LabelPrior | None, blocks: list[Window],
           clock: Clock) -> tuple[np.ndarray, np.ndarray]:
    """Run the block pipeline's stages one after another (no threads); the last block's layers."""
    model = load_onnx(model_path, threads=1, device="cpu")
    mean = np.asarray(model.metadata["normalisation"]["mean"], np.float32)
    std = np.asarray(model.metadata["normalisation"]["std"], np.float32)
    halo, name = model.halo, model.session.get_inputs()[0].name
    classes = confidence = None
    with rasterio.open(imagery) as src:
        for block in blocks:
            classes = np.zeros((BLOCK, BLOCK), np.uint8)
            confidence = np.zeros((BLOCK, BLOCK), np.uint8)
            for core in iter_windows(BLOCK, BLOCK, TILE):
                window = Window(block.col_off + core.col_off - halo, block.row_off + core.row_off - halo,
                                TILE + 2 * halo, TILE + 2 * halo)
                pixels = clock.time("read with halo", read_padded, src, window)
                clock.time("(before: rasterio boundless read)", src.read, window=window, boundless=True, fill_value=0)
                x = clock.time("normalise", normalise, pixels, mean, std)
                logits = clock.time("model", model.session.run, None, {name: x[None]})[0][0]
                h, w = int(core.height), int(core.width)
                core_logits = logits[:, halo:halo + h, halo:halo + w]
                if label_prior is not None:
                    transform = src.window_transform(block) * rasterio.Affine.translation(core.col_off, core.row_off)
                    bonus = clock.time("label prior", label_prior.bonus, transform, (h, w))
                    if bonus is not None:
                        core_logits = clock.time("label prior", np.add, core_logits, bonus)
                rows = slice(int(core.row_off), int(core.row_off) + h)
                cols = slice(int(core.col_off), int(core.col_off) + w)
                classes[rows, cols] = clock.time("argmax", lambda z: z.argmax(axis=0).astype(np.uint8) + 1,
                                                 core_logits)
                confidence[rows, cols] = clock.time("confidence", _softmax_top, core_logits)
    return classes, confidence


def write_layers(classes: np.ndarray, confidence: np.ndarray, folder: Path, options: dict) -> int:
    """Write the two layers as a block job does (class profile + `options`); their bytes."""
    profile = class_raster_profile(BLOCK, BLOCK, "EPSG:32650", from_origin(0, BLOCK, 1, 1), **options)
    size = 0
    for name, layer in (("classes", classes), ("confidence", confidence)):
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(layer, 1)
        size += path.stat().st_size
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=ROOT / "resources/demo")
    parser.add_argument("--run", type=Path, default=ROOT, help="a finished demo run (labels, roads, model)")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/block_stages.json")
    args = parser.parse_args()
    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(all_cpus)})  # one core
    imagery = str(args.world / "imagery" / "demo_imagery.tif")
    sets = sorted(str(p) for p in (args.run / "resources/labels").glob("*_sets.tif"))
    roads = sorted(str(p) for p in (args.run / "resources/roads").glob("*.gpkg"))
    trained = args.run / "results/model/l2hnet.onnx"
    with rasterio.open(imagery) as src:
        blocks = _blocks(src, args.blocks)
        bands = src.count
    pixels = len(blocks) * BLOCK * BLOCK
    result = {"benchmark": "block_stages", "cores": 1,
              "block_px": BLOCK, "tile_px": TILE, "blocks": len(blocks), "bands": bands,
              "label_prior": ("bilinear, 4 nats, 1 m roads" if roads else "bilinear, 4 nats") if sets else None,
              "models": {}, "codec_limits": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {"no-op (1x1 conv)": noop_model(tmp / "noop.onnx", bands=bands)}
        if trained.exists():
            models["demo L2HNet"] = trained
        for label, path in models.items():
            clock = Clock()
            with LabelPrior(sets, 4.0, interpolation="bilinear", roads=roads) as prior:
                classes, confidence = stages(imagery, path, prior if sets else None, blocks, clock)
            clock.seconds["write two GeoTIFFs"] = 0.0
            for _ in blocks:
                clock.time("write two GeoTIFFs", write_layers, classes, confidence, tmp, {})
            before = clock.seconds.pop("(before: rasterio boundless read)")
            total = sum(clock.seconds.values())
            result["models"][label] = {
                "stages": {k: {"seconds": round(v, 3), "share": round(v / total, 3),
                               "pixels_per_s": round(pixels / v) if v else None} for k, v in clock.seconds.items()},
                "pixels_per_s_all_stages": round(pixels / total),
                "read_with_halo_before": {"what": "rasterio's boundless read (a VRT per call), replaced by read_padded",
                                          "seconds": round(before, 3), "pixels_per_s": round(pixels / before)}}
            print(label, json.dumps(result["models"][label]), flush=True)
        start = time.perf_counter()
        with rasterio.open(imagery) as src:
            for block in blocks:
                src.read(window=block)
        seconds = time.perf_counter() - start
        result["codec_limits"]["decode imagery (whole block, file tiles, DEFLATE)"] = {
            "seconds": round(seconds, 3), "pixels_per_s": round(pixels / seconds)}
        for name, options in CODECS.items():
            start = time.perf_counter()
            for _ in blocks:
                size = write_layers(classes, confidence, tmp, options)
            seconds = time.perf_counter() - start
            result["codec_limits"][f"encode classes + confidence: {name}"] = {
                "seconds": round(seconds, 3), "pixels_per_s": round(pixels / seconds),
                "bytes_per_block": size}
            print(name, result["codec_limits"][f"encode classes + confidence: {name}"], flush=True)
    os.sched_setaffinity(0, all_cpus)  # the machine's cores in `recorded`; the stages ran on one
    record.write(args.out, result)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
