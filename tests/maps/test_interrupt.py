"""Ctrl-C (SIGINT) in `l2h infer` and `l2h mosaic`: one line and exit status 130, nothing broken
under a final name, and the same command run again finishes with the outputs of a run never interrupted.

Each interrupted command runs through a small Python wrapper (CHILD) that wraps one function of
the stage so that SIGINT reaches the main thread at a known point of the work, as Ctrl-C would;
when the signal comes from a block's thread, that thread goes on only once the chunk has seen the
interrupt. No sleep or timing decides anything."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import CRS, IMAGERY

from l2h.core.blocks import blocks_for_regions
from l2h.core.io import file_problem
from l2h.inputs.regions import dissolved_regions, region_geometries, write_region_geometry

CHILD = '''
import signal, sys, threading

import l2h.maps.infer as infer
import l2h.maps.mosaic as mosaic
from l2h.cli import main

point, argv = sys.argv[1], sys.argv[2:]
events = []  # the chunk's interrupt event, as predict_chunk hands it to each block


def ctrl_c():
    """SIGINT to the main thread, as Ctrl-C delivers it; from a block's thread, return once the chunk saw it."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() and not events[-1].wait(300):
        raise RuntimeError("the chunk did not see the interrupt")


def hook(module, name, nth=1):
    original, calls = getattr(module, name), []

    def hooked(*args, **kwargs):
        calls.append(name)
        if len(calls) == nth:
            ctrl_c()
        return original(*args, **kwargs)
    setattr(module, name, hooked)


predict_block = infer.predict_block


def keep_event(*args, **kwargs):
    events.append(kwargs["cancel"])
    return predict_block(*args, **kwargs)


infer.predict_block = keep_event
{"infer-compute": lambda: hook(infer, "_run_pipeline", nth=2),  # the 2nd block, before its first batch
 "infer-write": lambda: hook(infer, "atomic_path"),  # the 1st block, as its first file is written
 "mosaic-merge": lambda: hook(mosaic, "iter_windows"),  # the merged GeoTIFF half-written
 "mosaic-cog": lambda: hook(mosaic, "cog_validate"),  # the COG written under its temporary name
 "mosaic-sidecar": lambda: hook(mosaic, "write_category_sidecar"),  # the COG in place, its sidecars not
 }[point]()
raise SystemExit(main(argv))
'''
# numexpr (through pandas) logs its thread count at INFO the first time it loads, unless told it
ENV = {**os.environ, "NUMEXPR_NUM_THREADS": "1"}
# infer's progress bar on stderr (tqdm: frames separated by carriage returns, one newline at its end)
BAR = re.compile(r"(?:\rblocks: [^\r\n]*)+\n")


def _l2h(*args: str, point: str | None = None) -> subprocess.CompletedProcess:
    prefix = [sys.executable, "-c", CHILD, point] if point else [sys.executable, "-m", "l2h"]
    done = subprocess.run([*prefix, *args], capture_output=True, timeout=300, env=ENV)
    # decoded without universal newlines, which would make the bar's carriage returns newlines
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode()
    return done


@pytest.fixture(scope="module")
def chunk(small_demo_world, tiny_onnx, tmp_path_factory):
    """A region's mask and three of its blocks, and a function giving `l2h infer` and `l2h mosaic`
    arguments writing under a folder."""
    setup = tmp_path_factory.mktemp("interrupt")
    regions_file = small_demo_world / "regions" / "provinces.gpkg"
    region = sorted(dissolved_regions(regions_file, "name").index)[0]
    geometry = region_geometries(dissolved_regions(regions_file, "name"), CRS)[region]
    mask = setup / "region.gpkg"
    write_region_geometry(regions_file, region, mask, CRS, "name")
    blocks = [b.id for b in blocks_for_regions({region: geometry}, 256)][:3]

    def infer(out: Path) -> list[str]:
        return ["infer", "--model", str(tiny_onnx), "--imagery", str(small_demo_world / IMAGERY), "--blocks", *blocks,
                "--block-size", "256", "--resolution", "1", "--crs", CRS, "--mask", str(mask), "--region", region,
                "--out-dir", str(out), "--manifest", str(out / "chunk_0.json"), "--confidence", "--tile", "64",
                "--device", "cpu"]

    def mosaic(manifest: Path, out: Path) -> list[str]:
        return ["mosaic", "--blocks", str(manifest), "--region", str(mask), "--resolution", "1",
                "--out", str(out / "region.tif"), "--quicklook", str(out / "region.png")]

    return blocks, infer, mosaic


@pytest.fixture(scope="module")
def reference(chunk, tmp_path_factory):
    """The chunk's blocks and their mosaic from commands never interrupted: (blocks folder, maps folder)."""
    _, infer, mosaic = chunk
    root = tmp_path_factory.mktemp("reference")
    for args in (infer(root / "pred"), mosaic(root / "pred" / "chunk_0.json", root / "maps")):
        done = _l2h(*args)
        assert done.returncode == 0, done.stderr[-2000:]
    return root / "pred", root / "maps"


def _assert_one_line(done: subprocess.CompletedProcess, command: str, bar: bool) -> None:
    """Exit status 130 and stderr exactly one line (besides infer's progress bar); nothing on stdout."""
    rest, bars = BAR.subn("", done.stderr)
    assert done.returncode == 130, done.stderr[-3000:]
    assert bars == bar and re.fullmatch(rf"\d\d:\d\d:\d\d ERROR l2h: {command}: interrupted\n", rest), done.stderr
    assert done.stdout == ""


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _assert_readable(folder: Path) -> None:
    """Every raster under a final name opens and reads whole (the temporary names start with a dot)."""
    for path in folder.glob("*.tif"):
        assert file_problem(path) is None, (path, file_problem(path))
        with rasterio.open(path) as src:
            src.read()


def _same_rasters(mine: Path, theirs: Path) -> None:
    assert _names(mine) == _names(theirs)
    for path in sorted(theirs.glob("*.tif")):
        with rasterio.open(path) as a, rasterio.open(mine / path.name) as b:
            assert a.profile == b.profile, path.name
            np.testing.assert_array_equal(a.read(), b.read(), err_msg=path.name)


@pytest.mark.parametrize("point", ["compute", "write"])
def test_ctrl_c_in_infer_keeps_whole_blocks_and_the_rerun_finishes(chunk, reference, tmp_path, point):
    """Ctrl-C while the second block computes (it stops before its next batch, writing nothing), or
    while the first writes its files (they are finished and kept): one line, status 130, the first
    block whole and recorded, no manifest; the rerun keeps that block and predicts the other two."""
    blocks, infer, _ = chunk
    out = tmp_path / "pred"
    interrupted = _l2h(*infer(out), point=f"infer-{point}")
    _assert_one_line(interrupted, "infer", bar=True)
    first = blocks[0]
    assert _names(out) == {f"{first}.tif", f"{first}_confidence.tif", ".chunk_0.progress.json"}
    _assert_readable(out)
    assert list(json.loads((out / ".chunk_0.progress.json").read_text())["blocks"]) == [first]

    rerun = _l2h(*infer(out))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"1 of {len(blocks)} block(s) kept from the interrupted attempt" in rerun.stderr
    _same_rasters(out, reference[0])
    assert [b["id"] for b in json.loads((out / "chunk_0.json").read_text())["blocks"]] == blocks


@pytest.mark.parametrize("point, left", [("merge", set()), ("cog", set()), ("sidecar", {"region.tif"})])
def test_ctrl_c_in_mosaic_leaves_nothing_broken_and_the_rerun_finishes(chunk, reference, tmp_path, point, left):
    """Ctrl-C while the merged GeoTIFF is written, once the COG is written under its temporary name,
    or once it has its final name (before its sidecars): one line, status 130, no temporary file left
    and the COG either absent or whole; the rerun writes the mosaic of a run never interrupted."""
    _, _, mosaic = chunk
    out = tmp_path / "maps"
    args = mosaic(reference[0] / "chunk_0.json", out)
    interrupted = _l2h(*args, point=f"mosaic-{point}")
    _assert_one_line(interrupted, "mosaic", bar=False)
    assert _names(out) == left
    _assert_readable(out)

    rerun = _l2h(*args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _same_rasters(out, reference[1])
    assert _names(out) == {"region.tif", "region.tif.aux.xml", "region.qml", "region.png"}


def test_a_block_told_to_stop_writes_nothing(tiny_onnx, small_demo_world, tmp_path):
    """The interrupt reaches a block in flight through its cancel event: it stops before its next
    batch and writes no file."""
    from l2h.maps.infer import Cancelled, load_onnx, predict_block

    regions = dissolved_regions(small_demo_world / "regions" / "provinces.gpkg", "name")
    geoms = region_geometries(regions, CRS)
    block = blocks_for_regions(geoms, 256)[0]
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        predict_block(load_onnx(tiny_onnx), str(small_demo_world / IMAGERY), block.bounds, 1.0, CRS,
                      geoms[block.region], tmp_path / "b.tif", tmp_path / "b_confidence.tif", tile=64,
                      progress=False, cancel=stop)
    assert not list(tmp_path.iterdir())
