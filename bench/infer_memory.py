"""Device memory of one run of the block graph `l2h infer` sends to onnxruntime: the peak of the tensors
alive at once, computed from the graph (every tensor's size from ONNX shape inference at the job's
tile, batch and width; each freed after its last reader, the nodes in the graph's order), beside the
growth of a CPU process's resident memory over one real run at the small settings (onnxruntime's CPU
arena keeps what the run allocated), which checks the computation. On a GPU each concurrent run
(infer.gpu_concurrency) holds this much of the card's memory, plus the weights and onnxruntime's arena
rounding.

Writes bench/results/infer_memory.json.

Usage: python bench/infer_memory.py [--measure-limit-px 600000]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import record  # noqa: E402
from gpu_check_ort import prior_feed  # noqa: E402
from onnx import TensorProto  # noqa: E402

from l2h.maps.block_graph import block_graph  # noqa: E402

OUT = ROOT / "bench" / "results" / "infer_memory.json"
BANDS, CLASSES = 4, 11
BYTES = {TensorProto.FLOAT: 4, TensorProto.UINT8: 1, TensorProto.UINT16: 2, TensorProto.INT16: 2,
         TensorProto.INT32: 4, TensorProto.INT64: 8, TensorProto.BOOL: 1}
# (name, tile, batch, width, flips): the demo's job, the national configuration (examples/china.yaml)
SETTINGS = [("demo", 512, 4, 16, 4), ("small", 128, 2, 16, 4), ("small_width_64", 128, 2, 64, 4),
            ("national", 1024, 4, 64, 4), ("national_batch_1", 1024, 1, 64, 4)]

# one run of the graph in a fresh process: resident memory before and after (bytes); onnxruntime's CPU
# arena keeps what the run allocated, so the growth is the run's working memory (outputs included)
MEASURE = """
import os, sys, numpy as np, onnxruntime as ort
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
feed = dict(np.load(sys.argv[2]))
options = ort.SessionOptions(); options.intra_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
before = rss()
out = session.run(None, feed)
print(before, rss())
"""


def network(width: int, path: Path) -> onnx.ModelProto:
    from helpers import export_tiny_model  # torch: the export only

    return onnx.load(str(export_tiny_model(path, width=width)))


def graph_and_feed(net: onnx.ModelProto, tile: int, batch: int, flips: int) -> tuple[onnx.ModelProto, dict]:
    """The full block graph (bilinear prior with roads, confidence) and a feed for it."""
    halo = 12  # L2HNet's receptive field is 23 px at every width
    graph = block_graph(net, tile=tile, halo=halo, mean=[0.0] * BANDS, std=[1.0] * BANDS, pixel_dtype="uint8",
                        num_classes=CLASSES, flips=flips, prior_strength=4.0, roads=True, confidence=True)
    return graph, prior_feed(tile, batch, halo)


def live_peak(graph: onnx.ModelProto, feed: dict) -> dict:
    """Peak bytes of the tensors alive at once over one run in node order (each freed after its last
    reader; graph outputs kept), and the weights' bytes."""
    concrete = onnx.ModelProto()
    concrete.CopyFrom(graph)
    for value in concrete.graph.input:
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, feed[value.name].shape):
            dim.ClearField("dim_param")
            dim.dim_value = size
    inferred = onnx.shape_inference.infer_shapes(concrete, strict_mode=True, data_prop=True).graph
    sizes = {}
    cells = max(feed["cells"].shape[1:])  # the one length shape inference leaves open: the prior's cells
    for value in [*inferred.input, *inferred.value_info, *inferred.output]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else cells for d in tensor.shape.dim]
        sizes[value.name] = math.prod(dims) * BYTES[tensor.elem_type]
    weights = {t.name: math.prod(t.dims) * BYTES.get(t.data_type, 8) for t in inferred.initializer}
    last = {}
    for i, node in enumerate(inferred.node):
        for name in node.input:
            last[name] = i
    outputs = {o.name for o in inferred.output}
    live = {name: sizes[name] for name in feed}
    peak = current = sum(live.values())
    unknown = set()
    for i, node in enumerate(inferred.node):
        for name in node.output:
            if name not in sizes:
                unknown.add(name)
            live[name] = sizes.get(name, 0)  # a tensor with no inferred type: the model's own, rare
        current = sum(live.values())
        peak = max(peak, current)
        for name in set(node.input) | set(node.output):
            if name in live and name not in outputs and name not in weights and last.get(name, -1) <= i:
                del live[name]
    return {"peak_bytes": int(peak), "weights_bytes": int(sum(weights.values())), "untyped_tensors": len(unknown)}


def measured(graph: onnx.ModelProto, feed: dict) -> dict:
    """Peak memory growth of one CPU run in a fresh process (ru_maxrss after - before)."""
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(graph, f"{tmp}/g.onnx")
        np.savez(f"{tmp}/feed.npz", **feed)
        done = subprocess.run([sys.executable, "-c", MEASURE, f"{tmp}/g.onnx", f"{tmp}/feed.npz"], capture_output=True,
                              text=True, timeout=1800, check=True)
    before, after = map(int, done.stdout.split())
    return {"cpu_run_rss_growth_bytes": after - before}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure-limit-px", type=int, default=600_000,
                        help="measure a real CPU run only where tile^2 x batch x width / 16 is below this")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, tile, batch, width, flips in SETTINGS:
            graph, feed = graph_and_feed(network(width, Path(tmp) / f"w{width}.onnx"), tile, batch, flips)
            entry = {"setting": name, "tile": tile, "batch": batch, "width": width, "flips": flips,
                     "prior": "bilinear with roads", "confidence": True, **live_peak(graph, feed)}
            if tile * tile * batch * width // 16 <= args.measure_limit_px:
                entry.update(measured(graph, feed))
                entry["computed_over_measured"] = round(entry["peak_bytes"] / entry["cpu_run_rss_growth_bytes"], 3)
            entry["peak_gib"] = round(entry["peak_bytes"] / 2**30, 3)
            runs.append(entry)
            print(json.dumps(entry), flush=True)
    doc = {"benchmark": "infer_memory",
           "method": "computed: tensors alive at once in node order, sizes by ONNX shape inference; measured: "
                     "resident-memory growth of a fresh CPU process over one run (onnxruntime's CPU arena keeps what "
                     "the run allocated; 1 thread)",
           "runs": runs}
    record.write(OUT, doc)
    return doc


if __name__ == "__main__":
    main()
