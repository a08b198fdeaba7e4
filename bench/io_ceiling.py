"""The inference pipeline's I/O ceiling: how many pixels/s one CPU core feeds a GPU.

`l2h infer`'s block pipeline (l2h.maps.infer.predict_block: imagery read with the model's halo,
normalised, the label prior added, argmax, confidence, class + confidence GeoTIFFs written) is run
over the demo's imagery with a **no-op model**: an ONNX graph with the l2h metadata of a real
L2HNet (same halo, same band count) whose only operation is a 1x1 convolution to 11 logits (88
FLOPs/pixel, nothing next to L2HNet's 0.14-0.56 MFLOP/pixel). What is left is the work the CPU
cores of a GPU job do around the network. Measured with 1 and 2 threads (onnxruntime and the
pipeline's reader/writer threads share them), with and without the label prior and the confidence
layer. `cpus_per_task` for a GPU = the GPU's inference pixels/s / this per-core rate.

With the demo's trained network (results/model/l2hnet.onnx of the run), 4 flips: the block job's
pixels/s beside the network's alone on the same tiles (normalised tiles in memory, no prior, no I/O).

Writes bench/results/io_ceiling.json. Usage: python bench/io_ceiling.py DEMO_WORLD_DIR [RUN_DIR]
(RUN_DIR, default .: a finished run on that demo world, for resources/labels (class sets),
resources/roads and results/model)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import rasterio
import record
from onnx import TensorProto, helper, numpy_helper
from rasterio.windows import Window, from_bounds
from shapely.geometry import box

from l2h.core.windows import read_padded
from l2h.maps.block_graph import FLIPS
from l2h.maps.infer import load_onnx, predict_chunk
from l2h.maps.label_prior import LabelPrior
from l2h.model.norm import normalise

BLOCK = 1024
TILE = 512
REPEATS = 3  # this shared machine is noisy: the median of three runs


def noop_model(path: Path, bands: int = 4, classes: int = 11, receptive_field: int = 23) -> Path:
    """A 1x1-convolution ONNX model carrying l2h metadata (halo of a 5-block L2HNet)."""
    weight = numpy_helper.from_array(np.zeros((classes, bands, 1, 1), np.float32), "w")
    bias = numpy_helper.from_array(np.linspace(0, 1, classes, dtype=np.float32), "b")
    node = helper.make_node("Conv", ["image", "w", "b"], ["logits"])
    graph = helper.make_graph([node], "noop", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["n", bands, "h", "w"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", classes, "h", "w"])],
                              initializer=[weight, bias])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = {"in_channels": bands, "num_classes": classes, "receptive_field": receptive_field,
            "bands": [f"b{i}" for i in range(bands)], "normalisation": {"mean": [100.0] * bands, "std": [50.0] * bands}}
    entry = proto.metadata_props.add()
    entry.key, entry.value = "l2h", json.dumps(meta)
    onnx.save(proto, str(path))
    return path


def run(model_path: Path, imagery: str, sets: list[str], roads: list[str], threads: int, prior: bool,
        confidence: bool, blocks: list[tuple[float, float, float, float]], flips: int = 1) -> dict:
    """One chunk of ``blocks`` as `l2h infer --threads` runs it: as many blocks in flight as threads,
    one onnxruntime thread each; a first block before the clock starts (the job's start-up)."""
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    workers = min(threads, len(blocks))
    model = load_onnx(model_path, threads=max(1, threads // workers), device="cpu")
    with tempfile.TemporaryDirectory() as tmp, \
            LabelPrior(sets if prior else [], 4.0, interpolation="bilinear", roads=roads if prior else []) as label_prior:
        def predict(name: str, chunk) -> None:
            region = box(*blocks[0]).union(box(*blocks[-1])).envelope
            predict_chunk(model, imagery, [(f"{name}{i}", b) for i, b in enumerate(chunk)], 1.0, "EPSG:32650",
                          {"r": region}, Path(tmp) / name, Path(tmp) / f"{name}.json", "bench", "r",
                          confidence=confidence, progress=False, prior=label_prior if prior else None, flips=flips,
                          workers=workers)

        start = time.perf_counter()
        predict("first", blocks[:workers])  # a job's start: the block graph built, onnxruntime's first runs
        first = time.perf_counter() - start
        times, cpu = [], []
        for repeat in range(REPEATS):
            start, used = time.perf_counter(), _cpu_seconds()
            predict(f"b{repeat}_", blocks)
            times.append(time.perf_counter() - start)
            cpu.append(_cpu_seconds() - used)
    pixels = len(blocks) * BLOCK * BLOCK
    seconds = float(np.median(times))
    return {"threads": threads, "label_prior": prior, "confidence": confidence, "pixels": pixels,
            "first_blocks_seconds": first, "seconds": seconds, "seconds_each": times,
            "cpu_seconds_each": cpu,  # user + system time of the process: at most threads x seconds
            "pixels_per_s": pixels / seconds, "pixels_per_s_per_core": pixels / seconds / threads}


def model_alone(model_path: Path, imagery: str, threads: int, blocks, flips: int = 4, batch: int = 4) -> dict:
    """The network by itself (onnxruntime on normalised tiles held in memory, each flip a run) over
    the same tiles as the pipeline: what a block job's throughput is judged against."""
    model = load_onnx(model_path, threads=threads, device="cpu")
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    side = TILE + 2 * model.halo
    name = model.session.get_inputs()[0].name
    norm = model.metadata["normalisation"]
    mean, std = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
    stacks = []
    with rasterio.open(imagery) as src:
        for west, south, east, north in blocks:
            window = from_bounds(west, south, east, north, transform=src.transform)
            for r in range(0, BLOCK, TILE):
                for c in range(0, BLOCK, TILE):
                    w = Window(window.col_off + c - model.halo, window.row_off + r - model.halo, side, side)
                    stacks.append(normalise(read_padded(src, w), mean, std))
    batches = [np.stack(stacks[i:i + batch]) for i in range(0, len(stacks), batch)]
    start = time.perf_counter()
    for x in batches:
        for axes in FLIPS[flips]:
            model.session.run(None, {name: np.ascontiguousarray(np.flip(x, axes)) if axes else x})
    seconds = time.perf_counter() - start
    pixels = len(blocks) * BLOCK * BLOCK
    return {"threads": threads, "flips": flips, "pixels": pixels, "seconds": seconds, "pixels_per_s": pixels / seconds}


def main(demo: Path, run_dir: Path) -> dict:
    imagery = str(demo / "imagery" / "demo_imagery.tif")
    sets = sorted(str(p) for p in (run_dir / "resources" / "labels").glob("*_sets.tif"))
    roads = sorted(str(p) for p in (run_dir / "resources" / "roads").glob("*.gpkg"))
    if not sets:
        sys.exit(f"no class-set labels (*_sets.tif) in {run_dir / 'resources' / 'labels'}: run the demo first")
    with rasterio.open(imagery) as src:
        cx, cy = (src.bounds.left + src.bounds.right) // 2, (src.bounds.bottom + src.bounds.top) // 2
    # 16 blocks around the centre of the country (full of imagery, across the regions' borders)
    blocks = [(cx + i * BLOCK, cy + j * BLOCK, cx + (i + 1) * BLOCK, cy + (j + 1) * BLOCK)
              for i in (-2, -1, 0, 1) for j in (-2, -1, 0, 1)]
    all_cpus = os.sched_getaffinity(0)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        model = noop_model(Path(tmp) / "noop.onnx")
        for threads in (1, 2):
            for prior, confidence in ((True, True), (False, True), (False, False)):
                runs.append(run(model, imagery, sets, roads, threads, prior, confidence, blocks))
                print(json.dumps(runs[-1]), flush=True)
                os.sched_setaffinity(0, all_cpus)
    full = {r["threads"]: r for r in runs if r["label_prior"] and r["confidence"]}
    result = {"benchmark": "io_ceiling", "block_px": BLOCK,
              "tile": TILE, "runs": runs, "per_core_pixels_per_s": full[1]["pixels_per_s_per_core"],
              "two_core_speedup": full[2]["pixels_per_s"] / full[1]["pixels_per_s"],
              "note": "no-op model (1x1 conv) through the block graph: read with halo + normalise + label prior "
                      "(bilinear, 1 m roads) + argmax + confidence + write two GeoTIFFs; cores a GPU needs = its "
                      "pixels/s / per_core_pixels_per_s"}
    trained = run_dir / "results" / "model" / "l2hnet.onnx"
    if trained.exists():  # the demo's own network: the whole block job against the network alone
        real = []
        for threads in (1, 2):
            alone = model_alone(trained, imagery, threads, blocks[:4])
            os.sched_setaffinity(0, all_cpus)
            job = run(trained, imagery, sets, roads, threads, True, True, blocks[:4], flips=4)
            os.sched_setaffinity(0, all_cpus)
            real.append({"threads": threads, "model_alone_pixels_per_s": alone["pixels_per_s"],
                         "block_job_pixels_per_s": job["pixels_per_s"],
                         "block_job_share_of_model_alone": job["pixels_per_s"] / alone["pixels_per_s"]})
            print(json.dumps(real[-1]), flush=True)
        result["demo_model"] = {"flips": 4, "blocks": 4, "runs": real}
    out = Path(__file__).parent / "results" / "io_ceiling.json"
    record.write(out, result)
    return result


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path("."))
