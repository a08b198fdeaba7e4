"""Per-block inference with onnxruntime: tiles read with a halo of at least the model's receptive
field, batched through the network, only each tile's core written, so blocks join without seams.
:func:`predict_chunk` runs one job's blocks (see :mod:`l2h.maps.chunks`), resuming a killed attempt.

Reading, compute and post-processing overlap: a reader thread fills a bounded queue with tiles,
the main thread runs the model on batches, ``post_threads`` threads add the label prior and turn
the cores' logits into classes and confidence (the work that bounds a GPU job's throughput:
bench/results/io_ceiling.json).
"""

from __future__ import annotations

import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import rasterio
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from rasterio.windows import Window, from_bounds
from tqdm import tqdm

from l2h.core.blocks import regions_touching
from l2h.core.classes import NODATA, colormap
from l2h.core.errors import InputError, L2HError
from l2h.core.io import atomic_path, class_raster_profile
from l2h.core.onnx_metadata import onnx_metadata
from l2h.core.windows import iter_windows, read_padded
from l2h.maps.chunks import ChunkProgress, block_paths
from l2h.maps.label_prior import LabelPrior
from l2h.model.norm import normalise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxModel:
    """An exported L2HNet: the onnxruntime session and the metadata it carries."""

    session: ort.InferenceSession
    metadata: dict
    path: str

    @property
    def in_channels(self) -> int:
        """Bands the model expects."""
        return int(self.metadata["in_channels"])

    @property
    def halo(self) -> int:
        """Pixels of context each side of a tile core: half the receptive field, rounded up."""
        return math.ceil(int(self.metadata["receptive_field"]) / 2)


def load_onnx(path: str | Path, threads: int = 1, device: str = "auto") -> OnnxModel:
    """Open an exported model with the CUDA execution provider when present, else the CPU one."""
    metadata = onnx_metadata(path)
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")
    elif device == "cuda":
        raise L2HError(f"device 'cuda' asked for, but onnxruntime offers only {available}; "
                       "install onnxruntime-gpu (pip install 'l2h[gpu]')")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    return OnnxModel(session, metadata, str(path))


def predict_block(model: OnnxModel, imagery: str, bounds: tuple[float, float, float, float], resolution: float,
                  crs: str, mask_geometry, out: str | Path, confidence_out: str | Path | None = None,
                  tile: int = 512, batch: int = 4, strict: bool = False, progress: bool = True,
                  prior: LabelPrior | None = None, post_threads: int = 1,
                  network_out: str | Path | None = None, flips: int = 1) -> dict:
    """Predict one block and write its class GeoTIFF (and optionally a confidence GeoTIFF, and the
    network's own class map without the prior, ``network_out``).

    `bounds` is the block in the run's CRS; pixels outside `mask_geometry` (the mapped area, in
    `crs`) or where the imagery has no data are nodata (0). `prior`: the coarse label's bonus on
    the logits (:mod:`l2h.maps.label_prior`); ``flips``: test-time flips averaged (:func:`run_flipped`).
    Returns counts for the log/benchmark. A block without any imagery is written as nodata with a
    warning, or is an error when `strict`.
    """
    west, south, east, north = bounds
    width, height = round((east - west) / resolution), round((north - south) / resolution)
    transform = from_origin(west, north, resolution, resolution)
    inside = ~geometry_mask([mask_geometry], out_shape=(height, width), transform=transform)
    mean = np.asarray(model.metadata["normalisation"]["mean"], np.float32)
    std = np.asarray(model.metadata["normalisation"]["std"], np.float32)
    halo = model.halo
    classes = np.zeros((height, width), np.uint8)
    confidence = np.zeros((height, width), np.uint8) if confidence_out else None
    network = np.zeros((height, width), np.uint8) if network_out else None
    try:
        src = rasterio.open(imagery)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"imagery {imagery}: cannot be opened: {exc}") from None
    with src:
        if src.count != model.in_channels:
            raise InputError(f"imagery {imagery} has {src.count} band(s) but the model {model.path} was "
                             f"trained on {model.in_channels} ({', '.join(model.metadata.get('bands', []))})")
        if src.crs is None or rasterio.crs.CRS.from_user_input(crs) != src.crs:
            raise InputError(f"imagery {imagery}: CRS {src.crs} is not the run's CRS {crs}; cache it onto the "
                             f"run's grid (imagery.cache: true)")
        if not all(math.isclose(r, resolution, rel_tol=1e-6) for r in src.res):
            raise InputError(f"imagery {imagery}: pixel size {src.res} is not the run's {resolution}; cache it "
                             f"onto the run's grid (imagery.cache: true)")
        cores = list(iter_windows(width, height, tile))
        block_window = from_bounds(west, south, east, north, transform=src.transform)
        bonus = None if prior is None else (
            lambda core: prior.bonus(transform * rasterio.Affine.translation(core.col_off, core.row_off),
                                     (int(core.height), int(core.width))))
        stats = _run_pipeline(model, src, block_window, cores, tile, halo, mean, std, batch, classes, confidence,
                              progress, bonus, post_threads, network, flips)
    valid = inside & stats.pop("valid")
    for layer in (classes, confidence, network):
        if layer is not None:
            layer[~valid] = NODATA
    if not valid.any():
        message = f"block at {bounds}: no imagery inside the mapped area ({imagery})"
        if strict:
            raise InputError(message + " (strict: true)")
        log.warning("%s; written as nodata", message)
    profile = class_raster_profile(width, height, crs, transform)
    for path, layer in ((out, classes), (network_out, network)):
        if path is None:
            continue
        with atomic_path(path) as tmp:
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write_colormap(1, colormap())
                dst.write(layer, 1)
    if confidence_out:
        with atomic_path(confidence_out) as tmp:
            with rasterio.open(tmp, "w", **{**profile, "nodata": 0}) as dst:
                dst.write(confidence, 1)
                dst.set_band_description(1, "confidence: max class probability x 255")
    return dict(pixels=width * height, valid_pixels=int(valid.sum()), **stats)


def predict_chunk(model: OnnxModel, imagery: str, blocks: Sequence[tuple[str, tuple[float, float, float, float]]],
                  resolution: float, crs: str, regions: Mapping[str, object], out_dir: str | Path,
                  manifest: str | Path, key: str, region: str, confidence: bool = True, tile: int = 512,
                  batch: int = 4, strict: bool = False, progress: bool = True,
                  prior: LabelPrior | None = None, post_threads: int = 1, network: bool = False,
                  flips: int = 1) -> dict:
    """Predict a chunk's blocks ((id, bounds) pairs) into ``out_dir`` and write its ``manifest``.

    ``regions``: slug -> geometry (in ``crs``) of every region the blocks touch; pixels outside
    all of them are nodata. ``key`` (:func:`l2h.maps.chunks.chunk_key`): blocks a killed attempt with
    the same key finished are kept, not predicted again. ``prior``: the coarse label as a prior
    (:mod:`l2h.maps.label_prior`); ``post_threads``: threads turning logits into classes and confidence;
    ``network``: also write each block's map without the prior (the network alone). Returns counts for the log.
    """
    from shapely import union_all

    mask = union_all(list(regions.values()))
    state = ChunkProgress(manifest, key)
    kept = [b for b, _ in blocks if b in state.done]
    if kept:
        log.info("chunk %s: %d of %d block(s) kept from the interrupted attempt", manifest, len(kept), len(blocks))
    pixels = valid = 0
    start = time.perf_counter()
    for block, bounds in tqdm(blocks, desc="blocks", unit="block", file=sys.stderr, disable=not progress):
        if block in state.done:
            continue
        paths = block_paths(out_dir, block)
        confidence_out = paths["confidence"] if confidence else None
        network_out = paths["network"] if network else None
        t0 = time.perf_counter()
        stats = predict_block(model, imagery, bounds, resolution, crs, mask, paths["classes"],
                              confidence_out=confidence_out, tile=tile, batch=batch, strict=strict, progress=False,
                              prior=prior, post_threads=post_threads, network_out=network_out, flips=flips)
        state.record({"id": block, "bounds": list(bounds), "touches": list(regions_touching(bounds, regions)),
                      "classes": paths["classes"], "confidence": confidence_out, "network": network_out,
                      "valid_pixels": stats["valid_pixels"], "seconds": round(time.perf_counter() - t0, 3)})
        pixels += stats["pixels"]
        valid += stats["valid_pixels"]
    state.finish(region, [b for b, _ in blocks])
    return {"blocks": len(blocks), "kept": len(kept), "pixels": pixels, "valid_pixels": valid,
            "seconds": time.perf_counter() - start}


def _run_pipeline(model, src, block_window, cores, tile, halo, mean, std, batch, classes, confidence,
                  progress, bonus=None, post_threads: int = 1, network=None, flips: int = 1) -> dict:
    """Reader thread -> batched onnxruntime -> ``post_threads`` post-processing threads (each core
    goes to one of them and fills its own slice of the outputs); returns the valid mask and timings.
    ``bonus(core)``: a (K, h, w) addition to the core's logits (the label prior), or None;
    ``network``: filled with the classes of the logits before the bonus; ``flips``: test-time flips
    (:func:`run_flipped`)."""
    tiles: queue.Queue = queue.Queue(maxsize=2 * batch)
    results: queue.Queue = queue.Queue(maxsize=2 * batch)
    valid = np.zeros(classes.shape, bool)
    errors: list[BaseException] = []
    failed: list[BaseException] = []
    row0, col0 = round(block_window.row_off), round(block_window.col_off)

    def read() -> None:
        try:
            for core in cores:  # every tile read at full size (real imagery past the block edge): one shape
                window = Window(col0 + core.col_off - halo, row0 + core.row_off - halo, tile + 2 * halo,
                                tile + 2 * halo)
                pixels = read_padded(src, window)
                tiles.put((core, normalise(pixels, mean, std), pixels.any(axis=0)))
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            tiles.put(None)

    def write() -> None:
        while (item := results.get()) is not None:
            if failed:
                continue  # keep draining the queue so the model thread never blocks on it
            try:
                post_process(*item)
            except BaseException as exc:  # surfaced by the main thread
                failed.append(exc)

    def post_process(core, logits, has_data) -> None:
        h, w = int(core.height), int(core.width)
        core_logits = logits[:, halo:halo + h, halo:halo + w]
        rows, cols = slice(int(core.row_off), int(core.row_off) + h), slice(int(core.col_off), int(core.col_off) + w)
        if network is not None:
            network[rows, cols] = core_logits.argmax(axis=0).astype(np.uint8) + 1
        extra = bonus(core) if bonus is not None else None
        if extra is not None:
            core_logits = core_logits + extra
        classes[rows, cols] = core_logits.argmax(axis=0).astype(np.uint8) + 1
        valid[rows, cols] = has_data[halo:halo + h, halo:halo + w]
        if confidence is not None:
            shifted = np.exp(core_logits - core_logits.max(axis=0, keepdims=True))
            top = 1.0 / shifted.sum(axis=0)
            confidence[rows, cols] = np.clip(np.round(top * 255), 1, 255).astype(np.uint8)

    reader = threading.Thread(target=read, daemon=True)
    writers = [threading.Thread(target=write, daemon=True) for _ in range(max(1, post_threads))]
    reader.start()
    for writer in writers:
        writer.start()
    input_name = model.session.get_inputs()[0].name
    pending: list = []
    with tqdm(total=len(cores), desc="tiles", unit="tile", file=sys.stderr, disable=not progress, leave=False) as bar:
        while (item := tiles.get()) is not None:
            pending.append(item)
            if len(pending) == batch:
                _infer(model.session, input_name, pending, results, flips)
                bar.update(len(pending))
                pending = []
        if pending:
            _infer(model.session, input_name, pending, results, flips)
            bar.update(len(pending))
    for _ in writers:
        results.put(None)
    reader.join()
    for writer in writers:
        writer.join()
    if errors:
        raise InputError(f"imagery: reading failed: {errors[0]}") from errors[0]
    if failed:
        raise failed[0]
    return dict(valid=valid, tiles=len(cores))


# test-time flips: the array axes (of N, C, H, W) each pass flips; the logits are flipped back and averaged
FLIPS = {1: ((),), 2: ((), (3,)), 4: ((), (3,), (2,), (2, 3))}


def run_flipped(session, input_name: str, stack: np.ndarray, flips: int = 1) -> np.ndarray:
    """Logits of a tile stack (N, C, H, W), averaged over ``flips`` mirrored copies (1, 2 or 4: none,
    left-right, and up-down and both). A pixel's logits still depend only on its neighbourhood,
    mirrored, so tiles and blocks join without seams as without flips."""
    if flips not in FLIPS:
        raise ValueError(f"flips must be one of {', '.join(map(str, FLIPS))}, got {flips}")
    total = None
    for axes in FLIPS[flips]:
        x = np.ascontiguousarray(np.flip(stack, axes)) if axes else stack
        y = session.run(None, {input_name: x})[0]
        y = np.flip(y, axes) if axes else y
        total = y if total is None else total + y
    return total / np.float32(len(FLIPS[flips])) if flips > 1 else total


def _infer(session, input_name: str, group: list, results: queue.Queue, flips: int = 1) -> None:
    stack = np.stack([g[1] for g in group])
    logits = run_flipped(session, input_name, stack, flips)
    for (core, _, has_data), out in zip(group, logits):
        results.put((core, out, has_data))
