"""Helpers several test modules share: the checkout's paths, Snakemake runs on a demo world, a tiny
exported model, XYZ tiles cut from the demo imagery, a demo training label."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject, transform_bounds

from l2h.model.l2hnet import L2HNet, model_metadata

ROOT = Path(__file__).resolve().parents[1]  # the checkout
SHARED = ROOT.parent / "shared"  # the project's shared fixtures (real geodata), when present
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
CRS = "EPSG:32650"  # the demo world's run CRS
ZOOM = 17
HALF = 20037508.342789244  # half the EPSG:3857 world
IMAGERY = "imagery/demo_imagery.tif"  # in a demo world


def snakemake(workdir: Path, *args: str, configfile: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-d", str(workdir), "--cores", "2", *args]
    if configfile:
        cmd += ["--configfile", str(configfile)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1500)  # a safety stop for a hung run, far above a loaded machine's time


def shell_commands(output: str) -> list[str]:
    """The `l2h` commands a Snakemake dry run with -p printed (stdout and stderr joined)."""
    return re.findall(r"^(?:Shell command:)?\s*(l2h .*)$", output, flags=re.M)


def demo_overrides(demo_world: Path, mirror: str | None = None) -> dict:
    """Config keys pointing the default workflow at a demo world (its mirror: a folder or a URL)."""
    mirror = mirror or str(demo_world / "mirror")
    return {
        "regions": {"file": str(demo_world / "regions" / "provinces.gpkg")},
        "imagery": {"paths": [str(demo_world / "imagery" / "demo_imagery.tif")]},
        "products": {p: {"base_url": f"{mirror}/{p}"} for p in ("esa_worldcover", "esri_lulc", "fromglc10")},
        "roads": {"osm": str(demo_world / "osm" / "demo.osm")},
        # a few steps of a narrow net: the tests check the machinery, not the accuracy
        "train": {"width": 8, "patch_size": 64, "batch_size": 4, "steps": 6, "warmup_steps": 2,
                  "self_training_steps": 2, "checkpoint_every": 3, "stats_samples": 8},
        "infer": {"tile": 256, "threads": 1},
        "evaluation": {
            "points": {"file": str(demo_world / "reference" / "points.csv"), "bootstrap": 100,
                       "strata": {"column": "class", "areas_csv": str(demo_world / "reference" / "strata.csv")}},
            "survey": {"table": str(demo_world / "survey" / "survey.csv")},
            "pixels": {"reference": [str(demo_world / "truth" / "truth_1m.tif")]},
        },
    }


def export_tiny_model(path, in_channels=4, width=8, seed=0):
    """A randomly initialised L2HNet exported to ONNX with l2h metadata (inference needs no training)."""
    torch.manual_seed(seed)
    model = L2HNet(in_channels, width=width).eval()
    bands = ["red", "green", "blue", "nir"][:in_channels] + [f"b{i}" for i in range(4, in_channels)]
    meta = model_metadata(model, bands, {"mean": [110.0] * in_channels, "std": [45.0] * in_channels}, 0.5, 0.1)
    torch.onnx.export(model, torch.zeros(1, in_channels, 64, 64), str(path), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}}, opset_version=17,
                      dynamo=False)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "l2h", json.dumps(meta)
    onnx.save(proto, str(path))
    return path


def sets_raster(path, transform, sets) -> str:
    """A class-set label (uint16 bitmasks, bit c = class code c) on `transform`'s grid; returns its path."""
    with rasterio.open(path, "w", driver="GTiff", width=sets.shape[1], height=sets.shape[0], count=1,
                       dtype="uint16", crs=CRS, transform=transform, nodata=0) as dst:
        dst.write(sets.astype(np.uint16), 1)
    return str(path)


def cut_xyz_tiles(image: Path, out: Path, zoom: int) -> int:
    """Cut the RGB bands of `image` into 256 x 256 Web-Mercator PNG tiles out/{z}/{x}/{y}.png."""
    size = 2 * HALF / 2 ** zoom
    count = 0
    with rasterio.open(image) as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        west, south, east, north = transform_bounds(src.crs, "EPSG:3857", *src.bounds)
        for x in range(math.floor((west + HALF) / size), math.floor((east + HALF) / size) + 1):
            for y in range(math.floor((HALF - north) / size), math.floor((HALF - south) / size) + 1):
                tile = np.zeros((3, 256, 256), np.uint8)
                reproject(rasterio.band(src, [1, 2, 3]), tile, src_nodata=0, dst_nodata=0,
                          dst_transform=from_origin(-HALF + x * size, HALF - y * size, size / 256, size / 256),
                          dst_crs="EPSG:3857", resampling=Resampling.bilinear)
                path = out / str(zoom) / str(x) / f"{y}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                with rasterio.open(path, "w", driver="PNG", width=256, height=256, count=3, dtype="uint8") as dst:
                    dst.write(tile)
                count += 1
    return count


def demo_label(world: Path, out: Path, seed: int = 0) -> str:
    """The demo truth mode-aggregated to 10 m, 20 % of the cells set to 255 (ignore)."""
    with rasterio.open(world / "truth/truth_1m.tif") as src:
        t = src.transform
        dst = np.zeros((src.height // 10, src.width // 10), np.uint8)
        transform = from_origin(t.c, t.f, 10, 10)
        reproject(rasterio.band(src, 1), dst, dst_transform=transform, dst_crs=src.crs,
                  resampling=Resampling.mode, src_nodata=0, dst_nodata=0)
        crs = src.crs
    dst[np.random.default_rng(seed).random(dst.shape) < 0.2] = 255
    with rasterio.open(out, "w", driver="GTiff", width=dst.shape[1], height=dst.shape[0], count=1, dtype="uint8",
                       crs=crs, transform=transform, nodata=0) as f:
        f.write(dst, 1)
    return str(out)
