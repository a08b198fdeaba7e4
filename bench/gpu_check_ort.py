"""The onnxruntime part of bench/gpu_check.py, run in its own process that never imports torch: torch
bundles CUDA libraries that, once loaded, would hide that the `infer` environment (onnxruntime-gpu
alone) lacks them. It opens sessions the way `l2h infer` does (l2h.maps.providers: CUDA or a one-line
reason) and records the providers that really ran.

Usage (by gpu_check.py): python bench/gpu_check_ort.py FOLDER DEVICE SECONDS TILE BATCH FIELD
FOLDER holds l2hnet.onnx, image.npy (a normalised block) and reference.npy (torch's logits of it); prints
one JSON line.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from l2h.core.errors import L2HError  # noqa: E402
from l2h.maps.block_graph import block_graph  # noqa: E402
from l2h.maps.providers import check_active, requested_providers  # noqa: E402

BANDS, CLASSES, CELL = 4, 11, 10


def timed(fn, seconds: float, warmup: int = 2, min_repeat: int = 3) -> float:
    """Median seconds per call of `fn` after `warmup` calls, repeated for about `seconds`."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_repeat or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def session(model: bytes | str, device: str) -> ort.InferenceSession:
    """A session as `l2h infer` opens one: CUDA that does not start is an error (L2HError)."""
    requested = requested_providers(device)
    made = ort.InferenceSession(model, providers=requested)
    check_active(made, requested, device)
    return made


def network_check(folder: Path, device: str, seconds: float) -> dict:
    """The exported network alone: parity with torch, pixels/s, the providers that ran."""
    made = session(str(folder / "l2hnet.onnx"), device)
    x, reference = np.load(folder / "image.npy"), np.load(folder / "reference.npy")
    ours = made.run(None, {"image": x})[0]
    t = timed(lambda: made.run(None, {"image": x}), seconds)
    return {"providers": made.get_providers(), "max_abs_diff_vs_torch": float(np.abs(ours - reference).max()),
            "argmax_agreement": round(float((ours.argmax(1) == reference.argmax(1)).mean()), 6),
            "pixels_per_s": round(x.shape[2] * x.shape[3] / t)}


def prior_feed(tile: int, batch: int, halo: int) -> dict:
    """Inputs of a block graph with the bilinear prior and roads for a batch of random uint8 tiles: cells
    of one class each, 10 px per cell, 5 % of the pixels road."""
    rng = np.random.default_rng(0)
    side, cells = tile + 2 * halo, tile // CELL + 3
    centre = (np.arange(tile) + 0.5) / CELL - 0.5  # pixel centres in cells from the first cell's centre
    index = np.floor(centre).astype(np.int64)
    feed = {"pixels": rng.integers(0, 256, (batch, BANDS, side, side), dtype=np.uint8),
            "cells": (1 << rng.integers(1, CLASSES + 1, (batch, cells, cells))).astype(np.uint16),
            "rows": np.tile(index - index.min(), (batch, 1)),
            "row_weight": np.tile((centre - index).astype(np.float32), (batch, 1)),
            "roads": (rng.random((batch, tile, tile)) < 0.05).astype(np.uint8)}
    feed["cols"], feed["col_weight"] = feed["rows"], feed["row_weight"]
    return feed


def block_graph_check(network: onnx.ModelProto, field: int, device: str, seconds: float, tile: int,
                      batch: int) -> dict:
    """What `l2h infer` runs per batch (l2h.maps.block_graph: uint8 imagery in; normalisation, 4 flips,
    the bilinear label prior with 1 m roads, argmax and confidence on the device; uint8 out) on `device`,
    against the same graph on the CPU: pixels/s of whole tile batches, class agreement, largest
    confidence difference, the providers that ran."""
    halo = math.ceil(field / 2)
    feed = prior_feed(tile, batch, halo)
    graph = block_graph(network, tile=tile, halo=halo, mean=[0.0] * BANDS, std=[255.0] * BANDS,
                        pixel_dtype="uint8", num_classes=CLASSES, flips=4, prior_strength=4.0,
                        roads=True).SerializeToString()
    sessions = {d: session(graph, d) for d in dict.fromkeys((device, "cpu"))}
    ours, reference = (dict(zip(("valid", "classes", "confidence"), sessions[d].run(None, feed)))
                       for d in (device, "cpu"))
    t = timed(lambda: sessions[device].run(None, feed), seconds)
    return {"providers": sessions[device].get_providers(), "tile": tile, "batch": batch, "flips": 4,
            "pixels_per_s": round(batch * tile * tile / t),
            "class_agreement_with_cpu": round(float((ours["classes"] == reference["classes"]).mean()), 6),
            "confidence_max_difference_with_cpu": int(np.abs(ours["confidence"].astype(int)
                                                           - reference["confidence"]).max())}


def main(argv: list[str]) -> dict:
    folder, device, seconds, tile, batch, field = Path(argv[0]), argv[1], float(argv[2]), *map(int, argv[3:6])
    out: dict = {"onnxruntime": ort.__version__, "available_providers": ort.get_available_providers()}
    try:
        out.update(network_check(folder, device, seconds))
        out["block_graph"] = block_graph_check(onnx.load(str(folder / "l2hnet.onnx")), field, device, seconds, tile,
                                               batch)
    except L2HError as exc:  # CUDA asked for and not started: why, in l2h's words
        out["skipped"] = str(exc)
    out["torch_imported"] = "torch" in sys.modules
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
