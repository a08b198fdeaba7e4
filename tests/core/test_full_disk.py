"""A disk that fills up during fetch-imagery, harmonize, infer and mosaic: each stage stops with one
line naming the file, leaves no unreadable file under a final name, and the same command run again
after space is freed finishes with the same outputs as a run that never lacked space.

The small file system is a size-limited tmpfs where this process may mount one (root); elsewhere
each file's size is capped with RLIMIT_FSIZE instead (SIGXFSZ ignored, so writes fail with EFBIG)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import CRS, export_tiny_model

from l2h.core.blocks import blocks_for_regions
from l2h.core.io import file_problem
from l2h.inputs.regions import dissolved_regions, region_bounds_lonlat, region_geometries

L2H = [sys.executable, "-m", "l2h"]
TMPFS_BYTES = 32 << 20


class SmallDisk:
    """A folder with little room: a tmpfs that `fill` nearly fills, or a per-file size cap."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.mounted = False
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(root)],
                                  capture_output=True)
            self.mounted = done.returncode == 0
        self.filler = root / ".filler"
        self.cap: int | None = None

    def fill(self, total: int, largest: int) -> None:
        """Leave room for about half of what a stage writes (`total` bytes; its largest file has
        `largest`): that much free space on the tmpfs, else a cap of half the largest file's size."""
        if self.mounted:
            free = os.statvfs(self.root).f_bavail * os.statvfs(self.root).f_frsize
            with open(self.filler, "wb") as f:
                f.truncate(0)
                f.write(b"\0" * max(0, free - max(4096, total // 2)))
        else:
            self.cap = max(4096, largest // 2)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)
        self.cap = None

    def run(self, args: list[str]) -> subprocess.CompletedProcess:
        cap = self.cap

        def limit():
            if cap is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
        return subprocess.run(L2H + args, capture_output=True, text=True, timeout=300, preexec_fn=limit)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.root)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path / "small")
    yield disk
    disk.close()


def _stages(world: Path, setup: Path, out: Path, region: str, blocks: list[str]) -> list[tuple[str, list[str]]]:
    """The four writing stages, as the workflow's rules call them, writing under `out`."""
    gpkg = str(setup / "region.gpkg")
    return [
        ("fetch-imagery", ["fetch-imagery", "--source", str(world / "imagery" / "demo_imagery.tif"), "--region", gpkg,
                           "--crs", CRS, "--resolution", "1", "--block-size", "256", "--out",
                           str(out / "imagery" / f"{region}.vrt")]),
        ("harmonize", ["harmonize", "--region", gpkg, "--product", str(setup / "raw" / "esa" / "manifest.json"),
                       "--resolution", "10", "--out", str(out / "labels" / f"{region}.tif"),
                       "--sets-out", str(out / "labels" / f"{region}_sets.tif"),
                       "--stats-csv", str(out / "labels" / f"{region}_stats.csv"),
                       "--stats-json", str(out / "labels" / f"{region}_stats.json"),
                       "--quicklook", str(out / "labels" / f"{region}.png")]),
        ("infer", ["infer", "--model", str(setup / "tiny.onnx"), "--imagery",
                   str(out / "imagery" / f"{region}.vrt"), "--blocks", *blocks, "--block-size", "256",
                   "--resolution", "1", "--crs", CRS, "--mask", gpkg, "--region", region,
                   "--out-dir", str(out / "pred"), "--manifest", str(out / "pred" / "chunk_0.json"),
                   "--confidence", "--tile", "256", "--device", "cpu"]),
        ("mosaic", ["mosaic", "--blocks", str(out / "pred" / "chunk_0.json"), "--region", gpkg, "--resolution", "1",
                    "--out", str(out / "maps" / f"{region}.tif"), "--quicklook", str(out / "maps" / f"{region}.png")]),
    ]


def _sizes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def _rasters(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for path in sorted(folder.rglob("*.tif")):
        with rasterio.open(path) as src:
            arrays[str(path.relative_to(folder))] = src.read()
    return arrays


def test_a_full_disk_leaves_no_broken_file_and_the_rerun_finishes_identically(small_demo_world, tmp_path,
                                                                               small_disk):
    world, setup = small_demo_world, tmp_path / "setup"
    regions = dissolved_regions(world / "regions" / "provinces.gpkg", "name")
    region = sorted(regions.index)[0]
    geometry = region_geometries(regions, CRS)[region]
    blocks = [b.id for b in blocks_for_regions({region: geometry}, 256)]
    setup.mkdir()
    export_tiny_model(setup / "tiny.onnx")
    assert subprocess.run(L2H + ["region-geometry", "--regions", str(world / "regions" / "provinces.gpkg"),
                                 "--name-field", "name", "--region", region, "--crs", CRS,
                                 "--out", str(setup / "region.gpkg")]).returncode == 0
    spec = {"preset": "esa_worldcover", "base_url": str(world / "mirror" / "esa_worldcover")}
    assert subprocess.run(L2H + ["download", "--product", "esa", "--spec", json.dumps(spec), "--bounds",
                                 json.dumps([region_bounds_lonlat(regions)[region]]), "--out",
                                 str(setup / "raw" / "esa" / "manifest.json"), "--no-progress"]).returncode == 0

    reference = tmp_path / "reference"
    sizes = {}
    for name, args in _stages(world, setup, reference, region, blocks):
        before = _sizes(reference)
        done = subprocess.run(L2H + args, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        new = [size for path, size in _sizes(reference).items() if path not in before]
        sizes[name] = (sum(new), max(new))

    disk = small_disk
    for name, args in _stages(world, setup, disk.root, region, blocks):
        disk.fill(*sizes[name])
        failed = disk.run(args)
        lines = failed.stderr.strip().splitlines()
        assert failed.returncode == 1, (name, failed.stderr[-2000:])
        assert "Traceback" not in failed.stderr and lines[-1].split(" ", 2)[1] == "ERROR", (name, lines[-3:])
        assert str(disk.root) in lines[-1], (name, lines[-1])  # it names the file
        broken = {str(p): file_problem(p) for p in disk.root.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and file_problem(p)}
        assert not broken, (name, broken)  # nothing unreadable under a final name
        disk.free()
        rerun = disk.run(args)
        assert rerun.returncode == 0, (name, rerun.stderr[-2000:])

    mine, theirs = _rasters(disk.root), _rasters(reference)
    assert mine.keys() == theirs.keys() and len(mine) > 2 * len(blocks)
    for key in theirs:
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)
