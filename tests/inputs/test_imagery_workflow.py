"""Imagery in the workflow: several files joined by a mosaic VRT, then cached block by block."""

import numpy as np
import pytest
import rasterio
import yaml
from helpers import demo_overrides, snakemake
from rasterio.windows import Window, from_bounds

pytestmark = pytest.mark.workflow


def test_split_imagery_is_joined_and_cached_per_block(demo_world, tmp_path):
    source = demo_world / "imagery" / "demo_imagery.tif"
    parts = tmp_path / "parts"
    parts.mkdir()
    with rasterio.open(source) as src:
        profile = src.profile
        half = src.width // 2
        for name, window in (("west.tif", Window(0, 0, half - 64, src.height)),  # a 64 px gap between
                             ("east.tif", Window(half, 0, src.width - half, src.height))):
            with rasterio.open(parts / name, "w", **{**profile, "width": window.width, "height": window.height,
                                                     "transform": src.window_transform(window)}) as dst:
                dst.write(src.read(window=window))
    config = demo_overrides(demo_world)
    config["imagery"] = {"paths": [str(parts / "*.tif")], "cache": True, "resampling": "nearest"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "resources/imagery/riverside.vrt", configfile=tmp_path / "c.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "resources/imagery/mosaic.vrt").exists()
    blocks = sorted((tmp_path / "resources/imagery/riverside").glob("*.tif"))
    assert len(blocks) >= 10
    with rasterio.open(tmp_path / "resources/imagery/riverside.vrt") as mosaic:
        assert mosaic.count == 4 and mosaic.crs.to_epsg() == 32650
    gap_west = profile["transform"].c + (half - 64)  # the gap between the two files, in metres
    with rasterio.open(source) as src:
        for block in blocks:  # nearest on the same grid: identical to the source, 0 in the gap
            with rasterio.open(block) as cached:
                window = from_bounds(*cached.bounds, transform=src.transform).round_offsets().round_lengths()
                original = src.read(window=window, boundless=True, fill_value=0)
                got = cached.read()
                x = cached.bounds.left + np.arange(cached.width) + 0.5
            in_gap = (x > gap_west) & (x < gap_west + 64)
            np.testing.assert_array_equal(got[:, :, ~in_gap], original[:, :, ~in_gap])
            assert (got[:, :, in_gap] == 0).all()
