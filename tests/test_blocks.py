"""The block grid (ids, ownership) and per-block label statistics."""

import csv

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from l2h.blocks import block_bounds, block_id, blocks_for_regions, parse_block_id
from l2h.blockstats import block_statistics, write_block_table
from l2h.io import write_class_raster
from rasterio.transform import from_origin


@pytest.mark.parametrize("col, row", [(0, 0), (412, 3310), (-3, 7), (5, -12)])
def test_block_id_round_trip(col, row):
    assert parse_block_id(block_id(col, row)) == (col, row)
    assert "-" not in block_id(col, row)


def test_bad_block_id():
    with pytest.raises(ValueError, match="not a block id"):
        parse_block_id("r1_c2")


def test_owner_is_the_region_holding_the_centre():
    # a holds x < 700, b x >= 700; block size 512: block c1 (512-1024) has its centre 768 in b
    regions = {"a": box(0, 0, 700, 500), "b": box(700, 0, 1500, 500)}
    blocks = {b.id: b.region for b in blocks_for_regions(regions, 512)}
    assert blocks == {"c0_r0": "a", "c1_r0": "b", "c2_r0": "b"}


def test_edge_block_goes_to_the_largest_overlap_and_untouched_blocks_are_dropped():
    # a thin coastal strip: block c1's centre (768, 256) lies in no region
    a = box(0, 0, 600, 512)
    b = Polygon([(600, 0), (1100, 0), (1100, 200), (600, 200)])
    blocks = {x.id: x.region for x in blocks_for_regions({"a": a, "b": b}, 512)}
    assert blocks["c1_r0"] == "b"  # b covers 424x200 of it, a only 88x512
    assert "c0_r1" not in blocks  # touches a only along its edge y = 512
    assert set(blocks) == {"c0_r0", "c1_r0", "c2_r0"}


def test_every_pixel_of_every_region_is_in_exactly_one_block():
    regions = {"a": box(10, 10, 1500, 900), "b": box(1500, 10, 2900, 1700)}
    blocks = blocks_for_regions(regions, 256)
    ids = [b.id for b in blocks]
    assert len(ids) == len(set(ids))
    covered = sum(box(*b.bounds).intersection(regions["a"].union(regions["b"])).area for b in blocks)
    assert covered == pytest.approx(regions["a"].area + regions["b"].area)


def test_block_statistics_counts(tmp_path):
    label = np.zeros((100, 100), np.uint8)  # 10 m label, 1 km x 1 km, blocks of 500 m
    label[:50, :50] = 1  # block c0_r1 (top-left): all tree
    label[:50, 50:] = 255  # top-right: ignored
    label[50:, :50] = 3
    label[50:75, 50:] = 7  # bottom-right: half water, half outside the region
    path = tmp_path / "label.tif"
    write_class_raster(path, label, "EPSG:32650", from_origin(0, 1000, 10, 10))
    blocks = blocks_for_regions({"r": box(0, 0, 1000, 1000)}, 500)
    rows = {r["block_id"]: r for r in block_statistics(path, blocks)}
    assert rows["c0_r1"]["labelled_share"] == 1 and rows["c0_r1"]["share_1"] == 1
    assert rows["c1_r1"]["labelled_share"] == 0 and rows["c1_r1"]["area_km2"] == pytest.approx(0.25)
    assert rows["c1_r0"]["area_km2"] == pytest.approx(0.125) and rows["c1_r0"]["share_7"] == 1
    assert rows["c0_r0"]["share_3"] == 1
    write_block_table(list(rows.values()), tmp_path / "blocks.csv")
    with open(tmp_path / "blocks.csv") as f:
        back = list(csv.DictReader(f))
    assert {"block_id", "region", "area_km2", "labelled_share", "share_11", "xmin"} <= set(back[0])
    assert float(back[0]["ymax"]) == block_bounds(*parse_block_id(back[0]["block_id"]), 500)[3]
