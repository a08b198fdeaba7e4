"""Per-block inference with onnxruntime: tiles read with a halo of at least the model's receptive
field, batched through the network, only each tile's core written, so blocks join without seams.
:func:`predict_chunk` runs one job's blocks (see :mod:`l2h.maps.chunks`), resuming a killed attempt.

Reading and compute overlap: a reader thread fills a bounded queue with tiles (the imagery as
stored, and the label prior's coarse cells), the main thread runs batches through one ONNX graph
that normalises, runs the network (with test-time flips), adds the prior and returns uint8 classes
and confidence (:mod:`l2h.maps.block_graph`): on a GPU every per-pixel step runs on the device, on
the CPU onnxruntime's threads share it (bench/results/io_ceiling.json).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import rasterio
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from rasterio.windows import Window, from_bounds
from tqdm import tqdm

from l2h.core.blocks import regions_touching
from l2h.core.classes import NODATA, colormap
from l2h.core.errors import InputError, L2HError
from l2h.core.io import RASTERIZE_LOCK, atomic_path, class_raster_profile
from l2h.core.onnx_metadata import onnx_metadata
from l2h.core.windows import iter_windows, read_padded
from l2h.maps.block_graph import FLIPS, PIXEL_TYPES, block_graph
from l2h.maps.chunks import ChunkProgress, block_paths
from l2h.maps.label_prior import LabelPrior
from l2h.maps.providers import CUDA, check_active, requested_providers

log = logging.getLogger(__name__)

# the blocks' codec: ZSTD level 1 encodes the two uint8 layers ~4x faster than DEFLATE for ~4 % more
# bytes (bench/results/block_stages.json); blocks are intermediates, the region mosaics stay DEFLATE
BLOCK_CODEC = {"compress": "zstd", "zstd_level": 1}


class Cancelled(Exception):
    """A block stopped before it was finished, its ``cancel`` event set (the chunk was interrupted)."""


@dataclass(frozen=True)
class OnnxModel:
    """An exported L2HNet: the onnxruntime session and the metadata it carries; the block graphs
    around it (:meth:`block_session`) are built once per setting. ``providers``: those the sessions
    really run on (CUDA first when it started); ``runs``: how many graph runs may be on the device at
    once (each holds its batch's activations, bench/results/infer_memory.json)."""

    session: ort.InferenceSession
    metadata: dict
    path: str
    options: ort.SessionOptions
    providers: list[str]
    device: str = "auto"
    runs: threading.BoundedSemaphore | None = None
    _blocks: dict = field(default_factory=dict, repr=False, compare=False)
    _building: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def in_channels(self) -> int:
        """Bands the model expects."""
        return int(self.metadata["in_channels"])

    @property
    def halo(self) -> int:
        """Pixels of context each side of a tile core: half the receptive field, rounded up."""
        return math.ceil(int(self.metadata["receptive_field"]) / 2)

    def block_session(self, **settings) -> ort.InferenceSession:
        """The onnxruntime session of :func:`l2h.maps.block_graph.block_graph` for these settings, built
        once however many blocks ask for it at the same time."""
        key = tuple(sorted((k, str(v)) for k, v in settings.items()))
        with self._building:
            if key not in self._blocks:
                norm = self.metadata["normalisation"]
                graph = block_graph(onnx.load(self.path), halo=self.halo, mean=norm["mean"], std=norm["std"],
                                    num_classes=int(self.metadata["num_classes"]), **settings)
                session = ort.InferenceSession(graph.SerializeToString(), sess_options=self.options,
                                               providers=self.providers)
                check_active(session, self.providers, self.device)
                self._blocks[key] = session
            return self._blocks[key]

    def run(self, session: ort.InferenceSession, names: list[str], feed: dict) -> list:
        """``session.run``, at most ``gpu_concurrency`` at once on the GPU (unbounded on the CPU, where the
        blocks in flight share onnxruntime's threads)."""
        if self.runs is None or session.get_providers()[0] != CUDA:
            return session.run(names, feed)
        with self.runs:
            return session.run(names, feed)


def load_onnx(path: str | Path, threads: int = 1, device: str = "auto", gpu_concurrency: int = 1) -> OnnxModel:
    """Open an exported model on the CUDA execution provider (``device`` cuda, or auto where it starts)
    or the CPU one (:mod:`l2h.maps.providers`: cuda that does not start is an error)."""
    if gpu_concurrency < 1:
        raise L2HError(f"infer.gpu_concurrency must be at least 1, got {gpu_concurrency}")
    metadata = onnx_metadata(path)
    requested = requested_providers(device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=requested)
    providers = [p for p in check_active(session, requested, device) if p in requested]
    runs = threading.BoundedSemaphore(gpu_concurrency) if providers[0] == CUDA else None
    return OnnxModel(session, metadata, str(path), options, providers, device, runs)


def predict_block(model: OnnxModel, imagery: str, bounds: tuple[float, float, float, float], resolution: float,
                  crs: str, mask_geometry, out: str | Path, confidence_out: str | Path | None = None,
                  tile: int = 512, batch: int = 4, strict: bool = False, progress: bool = True,
                  prior: LabelPrior | None = None, network_out: str | Path | None = None, flips: int = 1,
                  cancel: threading.Event | None = None) -> dict:
    """Predict one block and write its class GeoTIFF (and optionally a confidence GeoTIFF, and the
    network's own class map without the prior, ``network_out``).

    `bounds` is the block in the run's CRS; pixels outside `mask_geometry` (the mapped area, in
    `crs`) or where the imagery has no data are nodata (0). `prior`: the coarse label's bonus on
    the logits (:mod:`l2h.maps.label_prior`); ``flips``: test-time flips averaged (1, 2 or 4: none,
    left-right, and up-down and both; a pixel still depends only on its neighbourhood, so tiles and
    blocks join without seams). Returns counts for the log/benchmark and the execution provider that ran
    it. A block without any imagery is written as nodata with a warning, or is an error when `strict`.
    ``cancel``: once set, the block stops before its next batch (:class:`Cancelled`), writing nothing.
    """
    if flips not in FLIPS:
        raise ValueError(f"flips must be one of {', '.join(map(str, FLIPS))}, got {flips}")
    west, south, east, north = bounds
    width, height = round((east - west) / resolution), round((north - south) / resolution)
    transform = from_origin(west, north, resolution, resolution)
    with RASTERIZE_LOCK:
        inside = ~geometry_mask([mask_geometry], out_shape=(height, width), transform=transform)
    layers = {"classes": np.zeros((height, width), np.uint8), "valid": np.zeros((height, width), np.uint8)}
    if confidence_out:
        layers["confidence"] = np.zeros((height, width), np.uint8)
    if network_out:
        layers["network"] = np.zeros((height, width), np.uint8)
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
        dtype = np.dtype(src.dtypes[0])
        dtype = dtype if dtype in PIXEL_TYPES else np.dtype(np.float32)
        session = model.block_session(tile=tile, pixel_dtype=dtype.name, flips=flips,
                                      prior_strength=None if prior is None else prior.strength,
                                      roads=prior is not None and prior.roads is not None,
                                      confidence=confidence_out is not None, network=network_out is not None)
        block_window = from_bounds(west, south, east, north, transform=src.transform)
        stats = _run_pipeline(model, session, src, dtype, block_window, transform,
                              list(iter_windows(width, height, tile)), tile, model.halo, batch, layers, prior, progress,
                              cancel)
    valid = inside & layers.pop("valid").astype(bool)
    for layer in layers.values():
        layer[~valid] = NODATA
    if not valid.any():
        message = f"block at {bounds}: no imagery inside the mapped area ({imagery})"
        if strict:
            raise InputError(message + " (strict: true)")
        log.warning("%s; written as nodata", message)
    profile = class_raster_profile(width, height, crs, transform, **BLOCK_CODEC)
    for path, name in ((out, "classes"), (network_out, "network")):
        if path is None:
            continue
        with atomic_path(path) as tmp:
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write_colormap(1, colormap())
                dst.write(layers[name], 1)
    if confidence_out:
        with atomic_path(confidence_out) as tmp:
            with rasterio.open(tmp, "w", **{**profile, "nodata": 0}) as dst:
                dst.write(layers["confidence"], 1)
                dst.set_band_description(1, "confidence: max class probability x 255")
    return dict(pixels=width * height, valid_pixels=int(valid.sum()), provider=session.get_providers()[0], **stats)


def predict_chunk(model: OnnxModel, imagery: str, blocks: Sequence[tuple[str, tuple[float, float, float, float]]],
                  resolution: float, crs: str, regions: Mapping[str, object], out_dir: str | Path,
                  manifest: str | Path, key: str, region: str, confidence: bool = True, tile: int = 512,
                  batch: int = 4, strict: bool = False, progress: bool = True,
                  prior: LabelPrior | None = None, network: bool = False, flips: int = 1, workers: int = 1) -> dict:
    """Predict a chunk's blocks ((id, bounds) pairs) into ``out_dir`` and write its ``manifest``.

    ``regions``: slug -> geometry (in ``crs``) of every region the blocks touch; pixels outside
    all of them are nodata. ``key`` (:func:`l2h.maps.chunks.chunk_key`): blocks a killed attempt with
    the same key finished are kept, not predicted again. ``prior``: the coarse label as a prior
    (:mod:`l2h.maps.label_prior`); ``network``: also write each block's map without the prior (the
    network alone); ``workers``: blocks in flight at once, sharing the model's session (a block's
    reading, writing and serial steps overlap another's compute: bench/results/io_ceiling.json).
    Returns counts for the log.
    """
    from shapely import union_all

    mask = union_all(list(regions.values()))
    state = ChunkProgress(manifest, key)
    kept = [b for b, _ in blocks if b in state.done]
    if kept:
        log.info("chunk %s: %d of %d block(s) kept from the interrupted attempt", manifest, len(kept), len(blocks))
    todo = [(block, bounds) for block, bounds in blocks if block not in state.done]

    recording, failed, interrupted = threading.Lock(), threading.Event(), threading.Event()

    def predict(block: str, bounds) -> dict | None:
        if failed.is_set():  # another block failed: no new block starts
            return None
        paths = block_paths(out_dir, block)
        confidence_out = paths["confidence"] if confidence else None
        network_out = paths["network"] if network else None
        t0 = time.perf_counter()
        try:
            stats = predict_block(model, imagery, bounds, resolution, crs, mask, paths["classes"],
                                  confidence_out=confidence_out, tile=tile, batch=batch, strict=strict,
                                  progress=False, prior=prior, network_out=network_out, flips=flips,
                                  cancel=interrupted)
        except BaseException:
            failed.set()
            raise
        with recording:  # recorded as soon as its files are whole: a kill now keeps it
            state.record({"id": block, "bounds": list(bounds), "touches": list(regions_touching(bounds, regions)),
                          "classes": paths["classes"], "confidence": confidence_out, "network": network_out,
                          "valid_pixels": stats["valid_pixels"], "seconds": round(time.perf_counter() - t0, 3),
                          "provider": stats["provider"]})
        return stats

    pixels = valid = 0
    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(blocks), initial=len(kept), desc="blocks", unit="block", file=sys.stderr,
                 disable=not progress) as bar:
        futures = []
        try:
            for block, bounds in todo:
                futures.append(pool.submit(predict, block, bounds))
            for future in as_completed(futures):
                if (stats := future.result()) is None:
                    continue  # not started: another block failed, and its error follows
                pixels += stats["pixels"]
                valid += stats["valid_pixels"]
                bar.update()
        except BaseException as exc:
            # the others do not start; after an error the blocks in flight finish (and are kept), after
            # Ctrl-C (KeyboardInterrupt) they stop at their next batch, so that leaving the pool (which
            # waits for its threads) is prompt; a block already writing finishes its files (kept)
            for future in futures:
                future.cancel()
            if not isinstance(exc, Exception):
                interrupted.set()
            raise
    state.finish(region, [b for b, _ in blocks])
    return {"blocks": len(blocks), "kept": len(kept), "pixels": pixels, "valid_pixels": valid,
            "seconds": time.perf_counter() - start}


def _run_pipeline(model, session, src, dtype, block_window, transform, cores, tile, halo, batch, layers, prior,
                  progress, cancel: threading.Event | None = None) -> dict:
    """Reader thread (imagery with its halo, the prior's cells) -> batches through the block graph
    -> each core's part of the uint8 outputs copied into ``layers`` (name -> block array); stops
    (:class:`Cancelled`) before a batch once ``cancel`` is set."""
    tiles: queue.Queue = queue.Queue(maxsize=2 * batch)
    errors: list[BaseException] = []
    stop = threading.Event()  # the main thread failed: the reader stops
    row0, col0 = round(block_window.row_off), round(block_window.col_off)

    def read() -> None:
        try:
            for core in cores:  # every tile read at full size (real imagery past the block edge): one shape
                if stop.is_set():
                    break
                window = Window(col0 + core.col_off - halo, row0 + core.row_off - halo, tile + 2 * halo,
                                tile + 2 * halo)
                pixels = read_padded(src, window).astype(dtype, copy=False)
                cells = None if prior is None else prior.tile(
                    transform * rasterio.Affine.translation(core.col_off, core.row_off), (tile, tile))
                tiles.put((core, pixels, cells))
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            tiles.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    names = [o.name for o in session.get_outputs()]
    pending: list = []
    with tqdm(total=len(cores), desc="tiles", unit="tile", file=sys.stderr, disable=not progress, leave=False) as bar, \
            _stopping(reader, stop, tiles):
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("the block was interrupted")
            item = tiles.get()
            if item is not None:
                pending.append(item)
            if pending and (item is None or len(pending) == batch):
                outputs = dict(zip(names, model.run(session, names, _feed(pending))))
                for i, (core, _, _) in enumerate(pending):
                    h, w = int(core.height), int(core.width)
                    rows = slice(int(core.row_off), int(core.row_off) + h)
                    cols = slice(int(core.col_off), int(core.col_off) + w)
                    for name, layer in layers.items():
                        layer[rows, cols] = outputs[name][i, :h, :w]
                bar.update(len(pending))
                pending = []
            if item is None:
                break
    if errors:
        if isinstance(errors[0], InputError):  # a class-set label or the roads: their own message
            raise errors[0]
        raise InputError(f"imagery: reading failed: {errors[0]}") from errors[0]
    return dict(tiles=len(cores))


@contextlib.contextmanager
def _stopping(reader: threading.Thread, stop: threading.Event, tiles: queue.Queue):
    """On leaving (normally or by an error), stop the reader thread and take what it still puts, so
    it never blocks on a full queue reading a dataset about to be closed."""
    try:
        yield
    finally:
        stop.set()
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                tiles.get(timeout=0.05)
        reader.join()


def _feed(group: list) -> dict:
    """The block graph's inputs for a batch of (core, pixels, PriorTile or None); the tiles' coarse
    cells are padded to the batch's largest window (the indices stay valid)."""
    feed = {"pixels": np.stack([pixels for _, pixels, _ in group])}
    prior = [t for _, _, t in group]
    if prior[0] is not None:
        rows = max(t.cells.shape[0] for t in prior)
        cols = max(t.cells.shape[1] for t in prior)
        cells = np.zeros((len(prior), rows, cols), np.uint16)
        for i, t in enumerate(prior):
            cells[i, :t.cells.shape[0], :t.cells.shape[1]] = t.cells
        feed.update(cells=cells, rows=np.stack([t.rows for t in prior]),
                    row_weight=np.stack([t.row_weight for t in prior]), cols=np.stack([t.cols for t in prior]),
                    col_weight=np.stack([t.col_weight for t in prior]))
        if prior[0].roads is not None:
            feed["roads"] = np.stack([t.roads for t in prior])
    return feed
