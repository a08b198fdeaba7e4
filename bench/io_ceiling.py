"""The inference pipeline's I/O ceiling: how many pixels/s one CPU core feeds a GPU.

`l2h infer`'s block pipeline (l2h.maps.infer.predict_block: imagery read with the model's halo,
normalised, the label prior added, argmax, confidence, class + confidence GeoTIFFs written) is run
over the demo's imagery with a **no-op model**: an ONNX graph with the l2h metadata of a real
L2HNet (same halo, same band count) whose only operation is a 1x1 convolution to 11 logits (88
FLOPs/pixel, nothing next to L2HNet's 0.14-0.56 MFLOP/pixel). What is left is the work the CPU
cores of a GPU job do around the network. Measured with 1 and 2 threads (onnxruntime and the
pipeline's reader/writer threads share them), with and without the label prior and the confidence
layer. `cpus_per_task` for a GPU = the GPU's inference pixels/s / this per-core rate.

Writes bench/results/io_ceiling.json. Usage: python bench/io_ceiling.py DEMO_WORLD_DIR RESOURCES_LABELS_DIR
(RESOURCES_LABELS_DIR: resources/labels of a run on that demo world, for the class-set labels)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import rasterio
from onnx import TensorProto, helper, numpy_helper
from shapely.geometry import box

from l2h.maps.infer import load_onnx, predict_block
from l2h.maps.label_prior import LabelPrior

BLOCK = 1024


def noop_model(path: Path, bands: int = 4, classes: int = 11, receptive_field: int = 23) -> Path:
    """A 1x1-convolution ONNX model carrying l2h metadata (halo of a 5-block L2HNet)."""
    weight = numpy_helper.from_array(np.zeros((classes, bands, 1, 1), np.float32), "w")
    bias = numpy_helper.from_array(np.linspace(0, 1, classes, dtype=np.float32), "b")
    node = helper.make_node("Conv", ["image", "w", "b"], ["logits"])
    graph = helper.make_graph([node], "noop", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["n", bands, "h", "w"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", classes, "h", "w"])],
                              initializer=[weight, bias])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"in_channels": bands, "num_classes": classes, "receptive_field": receptive_field,
            "bands": [f"b{i}" for i in range(bands)], "normalisation": {"mean": [100.0] * bands, "std": [50.0] * bands}}
    entry = proto.metadata_props.add()
    entry.key, entry.value = "l2h", json.dumps(meta)
    onnx.save(proto, str(path))
    return path


def run(model_path: Path, imagery: str, sets: list[str], threads: int, prior: bool, confidence: bool,
        blocks: list[tuple[float, float, float, float]]) -> dict:
    model = load_onnx(model_path, threads=threads, device="cpu")
    os.sched_setaffinity(0, set(range(threads)))
    with tempfile.TemporaryDirectory() as tmp, LabelPrior(sets if prior else [], 10.0) as label_prior:
        start = time.perf_counter()
        for i, bounds in enumerate(blocks):
            predict_block(model, imagery, bounds, 1.0, "EPSG:32650", box(*bounds), Path(tmp) / f"c{i}.tif",
                          confidence_out=Path(tmp) / f"p{i}.tif" if confidence else None, progress=False,
                          prior=label_prior if prior else None, post_threads=threads)
        seconds = time.perf_counter() - start
    pixels = len(blocks) * BLOCK * BLOCK
    return {"threads": threads, "label_prior": prior, "confidence": confidence, "pixels": pixels,
            "seconds": seconds, "pixels_per_s": pixels / seconds, "pixels_per_s_per_core": pixels / seconds / threads}


def main(demo: Path, labels: Path) -> dict:
    imagery = str(demo / "imagery" / "demo_imagery.tif")
    sets = sorted(str(p) for p in labels.glob("*_sets.tif"))
    if not sets:
        sys.exit(f"no class-set labels (*_sets.tif) in {labels}: run the demo first")
    with rasterio.open(imagery) as src:
        cx, cy = (src.bounds.left + src.bounds.right) // 2, (src.bounds.bottom + src.bounds.top) // 2
    # four blocks around the centre of the country (full of imagery)
    blocks = [(cx + i * BLOCK, cy + j * BLOCK, cx + (i + 1) * BLOCK, cy + (j + 1) * BLOCK)
              for i in (-1, 0) for j in (-1, 0)]
    all_cpus = os.sched_getaffinity(0)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        model = noop_model(Path(tmp) / "noop.onnx")
        for threads in (1, 2):
            for prior, confidence in ((True, True), (False, True), (False, False)):
                runs.append(run(model, imagery, sets, threads, prior, confidence, blocks))
                print(json.dumps(runs[-1]), flush=True)
                os.sched_setaffinity(0, all_cpus)
    full = [r for r in runs if r["label_prior"] and r["confidence"] and r["threads"] == 1][0]
    result = {"benchmark": "io_ceiling", "date": time.strftime("%Y-%m-%d"), "block_px": BLOCK, "tile": 512,
              "runs": runs, "per_core_pixels_per_s": full["pixels_per_s_per_core"],
              "note": "no-op model (1x1 conv): read with halo + normalise + label prior + argmax + confidence "
                      "+ write two GeoTIFFs; cores a GPU needs = its pixels/s / per_core_pixels_per_s"}
    out = Path(__file__).parent / "results" / "io_ceiling.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
