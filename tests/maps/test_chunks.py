"""Several blocks per inference job: chunking, the manifest the mosaics read, and a killed job that
keeps the blocks it had finished."""

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import CRS
from rasterio.transform import from_origin
from shapely import union_all

import l2h.maps.infer
from l2h.core.blocks import blocks_for_regions
from l2h.core.errors import InputError
from l2h.core.io import write_class_raster
from l2h.inputs.regions import dissolved_regions, region_geometries
from l2h.maps.chunks import ChunkProgress, chunk_blocks, chunk_key, expand_manifests, read_manifest
from l2h.maps.infer import load_onnx, predict_block, predict_chunk
from l2h.maps.mosaic import merge_blocks


@pytest.fixture(scope="module")
def world(small_demo_world):
    regions = dissolved_regions(small_demo_world / "regions" / "provinces.gpkg", "name")
    geoms = region_geometries(regions, CRS)
    return geoms, blocks_for_regions(geoms, 256), str(small_demo_world / "imagery" / "demo_imagery.tif")


def run_chunk(model, world, region, n, out, key="k", take=None, **kw):
    """Predict chunk `n` of `region` (its first `take` blocks when given)."""
    geoms, blocks, imagery = world
    chunk = chunk_blocks(blocks, 3)[region][n][:take]
    touched = {r: geoms[r] for b in chunk for r in b.touches}
    return predict_chunk(model, imagery, [(b.id, b.bounds) for b in chunk], 1.0, CRS, touched, out,
                         out / f"chunk_{n}.json", key, region, tile=128, progress=False, **kw), chunk


def test_chunks_cut_each_region_in_order(world):
    _, blocks, _ = world
    chunks = chunk_blocks(blocks, 3)
    assert set(chunks) == {b.region for b in blocks}
    for region, runs in chunks.items():
        own = [b for b in blocks if b.region == region]
        assert [b for run in runs for b in run] == own  # every block once, in the grid's order
        assert all(len(run) == 3 for run in runs[:-1]) and 1 <= len(runs[-1]) <= 3
    assert chunk_blocks(blocks, 1000) == {r: [tuple(b for b in blocks if b.region == r)] for r in chunks}
    with pytest.raises(ValueError, match=">= 1"):
        chunk_blocks(blocks, 0)


def test_chunk_job_writes_blocks_and_manifest(tiny_onnx, world, tmp_path):
    geoms, _, imagery = world
    model = load_onnx(tiny_onnx)
    region = sorted(geoms)[0]
    stats, chunk = run_chunk(model, world, region, 0, tmp_path)
    assert stats["blocks"] == len(chunk) and stats["kept"] == 0
    entries = read_manifest(tmp_path / "chunk_0.json")
    assert [e["id"] for e in entries] == [b.id for b in chunk]
    assert [tuple(e["touches"]) for e in entries] == [b.touches for b in chunk]  # as the DAG computed them
    assert not list(tmp_path.glob(".*progress*"))
    # each block equals a single-block prediction
    union = union_all([geoms[r] for b in chunk for r in b.touches])
    for entry, block in zip(entries, chunk):
        predict_block(model, imagery, block.bounds, 1.0, CRS, union, tmp_path / "one.tif", tile=128, progress=False)
        with rasterio.open(entry["classes"]) as a, rasterio.open(tmp_path / "one.tif") as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))
        assert rasterio.open(entry["confidence"]).count == 1


def _block_id(out) -> str:
    """The block id of a predict_block call's classes output (``<id>.tif``)."""
    return Path(out).stem


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_chunk_keeps_finished_blocks(tiny_onnx, world, tmp_path, monkeypatch, caplog):
    model = load_onnx(tiny_onnx)
    region = sorted(world[0])[0]
    real = l2h.maps.infer.predict_block
    calls = []

    def dies_on_second(*args, **kwargs):
        calls.append(_block_id(args[6]))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job is killed while predicting its second block
        return real(*args, **kwargs)

    monkeypatch.setattr(l2h.maps.infer, "predict_block", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_chunk(model, world, region, 0, tmp_path)
    assert not (tmp_path / "chunk_0.json").exists()  # the declared output appears only at the end
    first = tmp_path / f"{calls[0]}.tif"  # the block finished before the kill
    assert first.is_file() and not (tmp_path / f"{calls[1]}.tif").exists()
    digest = _sha256(first)

    written = []  # block ids predicted (their files written) from here on

    def counting(*args, **kwargs):
        written.append(_block_id(args[6]))
        return real(*args, **kwargs)

    monkeypatch.setattr(l2h.maps.infer, "predict_block", counting)
    caplog.set_level("INFO", logger="l2h.maps.infer")
    stats, chunk = run_chunk(model, world, region, 0, tmp_path)
    assert stats["kept"] == 1 and "1 of 3 block(s) kept" in caplog.text
    assert sorted(written) == sorted(b.id for b in chunk[1:]) and first.stem not in written  # not rewritten
    assert _sha256(first) == digest
    assert [e["id"] for e in read_manifest(tmp_path / "chunk_0.json")] == [b.id for b in chunk]

    # a finished chunk run again (a forced rerun) predicts every block again
    written.clear()
    stats, _ = run_chunk(model, world, region, 0, tmp_path)
    assert stats["kept"] == 0 and sorted(written) == sorted(b.id for b in chunk)
    assert _sha256(first) == digest  # the same prediction, written once more


def test_blocks_in_flight_that_finish_after_another_fails_are_kept(tiny_onnx, world, tmp_path, monkeypatch):
    """Two blocks in flight: the second fails while the first is inside its prediction (held there by
    the test until the failure is raised); the first finishes and is recorded, so the next attempt
    keeps it and predicts only the second. (A chunk of two blocks: with a third, whether a freed
    worker would still reach it before the failure is recorded is the scheduler's choice.)"""
    model = load_onnx(tiny_onnx)
    region = sorted(world[0])[0]
    real = l2h.maps.infer.predict_block
    chunk = chunk_blocks(world[1], 3)[region][0][:2]
    assert len(chunk) == 2
    first_in_flight, second_failing = threading.Event(), threading.Event()
    started = []

    def first_held_until_second_fails(*args, **kwargs):
        block = _block_id(args[6])
        started.append(block)
        if block == chunk[1].id:
            assert first_in_flight.wait(timeout=120), "the first block never started"
            second_failing.set()
            raise InputError("imagery: the second block is unreadable")
        first_in_flight.set()
        assert second_failing.wait(timeout=120), "the second block never failed"
        return real(*args, **kwargs)

    monkeypatch.setattr(l2h.maps.infer, "predict_block", first_held_until_second_fails)
    with pytest.raises(InputError, match="second block"):
        run_chunk(model, world, region, 0, tmp_path, take=2, workers=2)
    assert sorted(started) == sorted(b.id for b in chunk)

    written = []
    monkeypatch.setattr(l2h.maps.infer, "predict_block",
                        lambda *a, **kw: written.append(_block_id(a[6])) or real(*a, **kw))
    stats, _ = run_chunk(model, world, region, 0, tmp_path, take=2, workers=2)
    assert stats["kept"] == 1 and written == [chunk[1].id]


def test_the_block_graph_is_built_once_for_blocks_asking_at_once(tiny_onnx):
    from concurrent.futures import ThreadPoolExecutor

    model = load_onnx(tiny_onnx)
    settings = dict(tile=64, pixel_dtype="uint8", flips=1, prior_strength=None, roads=False, confidence=True,
                    network=False)
    with ThreadPoolExecutor(4) as pool:
        sessions = list(pool.map(lambda _: model.block_session(**settings), range(8)))
    assert all(s is sessions[0] for s in sessions) and len(model._blocks) == 1
    assert model.block_session(**{**settings, "flips": 2}) is not sessions[0]


def test_progress_of_other_inputs_is_not_reused(tmp_path):
    block = tmp_path / "b.tif"
    write_class_raster(block, np.ones((64, 64), np.uint8), "EPSG:32650", from_origin(0, 64, 1, 1))
    progress = ChunkProgress(tmp_path / "chunk_0.json", key="old")
    progress.record({"id": "c0_r0", "classes": str(block), "confidence": None})
    assert ChunkProgress(tmp_path / "chunk_0.json", key="old").done.keys() == {"c0_r0"}
    assert ChunkProgress(tmp_path / "chunk_0.json", key="new").done == {}  # e.g. another model
    whole = block.read_bytes()
    block.write_bytes(whole[:len(whole) - 20])  # a full disk cut its last tile short
    assert ChunkProgress(tmp_path / "chunk_0.json", key="old").done == {}  # it no longer reads back
    block.unlink()
    assert ChunkProgress(tmp_path / "chunk_0.json", key="old").done == {}  # its file is gone


def test_key_follows_settings_and_file_contents(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"weights")
    key = chunk_key({"tile": 512}, [model])
    assert chunk_key({"tile": 512}, [model]) == key
    assert chunk_key({"tile": 256}, [model]) != key
    model.write_bytes(b"other weights")
    assert chunk_key({"tile": 512}, [model]) != key


def test_region_mosaic_from_manifests_reads_only_its_blocks(tiny_onnx, world, tmp_path):
    geoms, blocks, _ = world
    model = load_onnx(tiny_onnx)
    manifests = []
    for region, runs in chunk_blocks(blocks, 3).items():
        for n in range(len(runs)):
            out = tmp_path / region
            run_chunk(model, world, region, n, out)
            manifests.append(out / f"chunk_{n}.json")
    region = sorted(geoms)[1]
    files, origin = expand_manifests(manifests, "classes", region)
    touching = sorted(b.id for b in blocks if region in b.touches)
    assert sorted(f.rsplit("/", 1)[1][:-4] for f in files) == touching
    assert len(touching) < len(blocks)
    assert set(origin) == set(files)
    merge_blocks(manifests, geoms[region], CRS, 1.0, tmp_path / "from_manifests.tif", region=region)
    merge_blocks(files, geoms[region], CRS, 1.0, tmp_path / "from_files.tif")
    with rasterio.open(tmp_path / "from_manifests.tif") as a, rasterio.open(tmp_path / "from_files.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert (a.read(1) > 0).mean() > 0.3
    conf, _ = expand_manifests(manifests, "confidence", region)
    assert all(f.endswith("_confidence.tif") for f in conf) and len(conf) == len(files)


def test_corrupt_block_removes_its_manifest(tiny_onnx, world, tmp_path):
    geoms, _, _ = world
    region = sorted(geoms)[0]
    run_chunk(load_onnx(tiny_onnx), world, region, 0, tmp_path)
    manifest = tmp_path / "chunk_0.json"
    victim = read_manifest(manifest)[1]["classes"]
    with open(victim, "r+b") as f:
        f.truncate(200)
    with pytest.raises(InputError, match="chunk manifest") as err:
        merge_blocks([manifest], geoms[region], CRS, 1.0, tmp_path / "m.tif", region=region)
    assert victim in str(err.value)
    assert not manifest.exists()  # the next run predicts the chunk again


def test_bad_manifests_are_named(tmp_path):
    bad = tmp_path / "chunk_0.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="chunk_0.json"):
        read_manifest(bad)
    bad.write_text(json.dumps({"blocks": []}))
    with pytest.raises(InputError, match="not an l2h chunk manifest"):
        read_manifest(bad)
    no_conf = tmp_path / "chunk_1.json"
    no_conf.write_text(json.dumps({"format": "l2h-block-chunk", "format_version": 1,
                                   "blocks": [{"id": "c0_r0", "classes": "a.tif", "confidence": None}]}))
    with pytest.raises(InputError, match="no confidence layer"):
        expand_manifests([no_conf], "confidence")
