"""The block grid (ids, ownership) and per-block label statistics."""

import csv

import numpy as np
import pytest
from rasterio.transform import from_origin
from rasterio.windows import Window
from shapely.geometry import Polygon, box

from l2h.core.blocks import block_bounds, block_id, blocks_for_regions, parse_block_id
from l2h.core.io import write_class_raster
from l2h.sampling.block_stats import BLOCK_COLUMNS, block_counts, centre_window, merge_block_counts, write_table


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


def test_block_counts_centre_rule_and_border_merge(tmp_path):
    """512 m blocks on a 10 m label: each label pixel is counted once, in the block holding its centre;
    a border block's parts in two regions' labels add up."""
    label_a = np.zeros((100, 103), np.uint8)  # region a: x 0..1030, a 10 m label (103 columns)
    label_a[:, :100] = 1  # tree west of x = 1000
    label_a[:50, :20] = 255  # some ignored pixels
    label_b = np.zeros((100, 103), np.uint8)  # region b: x 1000..1030 on the same grid
    label_b[:, 100:] = 7
    for name, data in (("a", label_a), ("b", label_b)):
        write_class_raster(tmp_path / f"{name}.tif", data, "EPSG:32650", from_origin(0, 1000, 10, 10))
    regions = {"a": box(0, 0, 1000, 1000), "b": box(1000, 0, 1030, 1000)}
    blocks = blocks_for_regions(regions, 512)
    parts = [block_counts(tmp_path / f"{r}.tif", r, [b for b in blocks if r in b.touches]) for r in regions]
    assert parts[0]["pixels"].sum() == (label_a > 0).sum()  # nothing lost or counted twice
    assert parts[1]["pixels"].sum() == (label_b > 0).sum()
    merged = merge_block_counts(parts).set_index("block_id")
    border = merged.loc["c1_r1"]  # x 512..1024, y 512..1024: label columns 51..101 and rows 0..48 by centres,
    assert border["region"] == "a"  # 49 of those columns in a's label, 2 in b's
    assert border["area_km2"] == pytest.approx(49 * 51 * 1e-4)
    assert border["share_7"] == pytest.approx(2 / 51, rel=0.01)
    assert merged["area_km2"].sum() == pytest.approx(((label_a > 0).sum() + (label_b > 0).sum()) * 1e-4)
    assert merged.loc["c0_r1", "labelled_share"] < 1 and merged.loc["c0_r0", "share_1"] == 1
    write_table(merged.reset_index(), tmp_path / "blocks.csv")
    with open(tmp_path / "blocks.csv") as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == BLOCK_COLUMNS
    assert float(back[0]["ymax"]) == block_bounds(*parse_block_id(back[0]["block_id"]), 512)[3]


def test_centre_window():
    transform = from_origin(0, 1000, 10, 10)
    assert centre_window((0, 488, 512, 1000), transform) == Window(0, 0, 51, 51)
    assert centre_window((512, 0, 1024, 488), transform) == Window(51, 51, 51, 49)
