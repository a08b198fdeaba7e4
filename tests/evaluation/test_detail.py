"""The measures of 1 m detail on hand-made rasters with known answers."""

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from l2h.evaluation.detail import DetailCounts, boundaries, cell_majority, near
from l2h.evaluation.evaluate import Legend

ELEVEN = {"legend": {i: f"class {i}" for i in range(1, 12)},
          "mapping": {k: i for i, k in enumerate(("tree", "shrub", "crop", "grass", "building", "bare", "water",
                                                   "wetland", "snow", "moss", "road"), start=1)}}


def test_boundaries_mark_both_sides_of_an_edge_and_ignore_edges_against_no_class():
    classes = np.array([[0, 0, 1, 1],
                        [0, 0, 1, 1],
                        [-1, -1, 1, 1]])
    assert boundaries(classes).astype(int).tolist() == [[0, 1, 1, 0],
                                                        [0, 1, 1, 0],
                                                        [0, 0, 0, 0]]


def test_near_is_a_euclidean_disk():
    mask = np.zeros((7, 7), bool)
    mask[3, 3] = True
    grown = near(mask, 2.0)
    assert grown[3, 1] and grown[1, 3] and grown[2, 2]  # distance 2, 2 and 1.41
    assert not grown[1, 1] and not grown[3, 0]  # distance 2.83 and 3
    assert not near(np.zeros((3, 3), bool), 2).any()


def test_cell_majority_and_mixed_cells_follow_the_cell_grid():
    ref = np.array([[1, 1, 2, 2],
                    [1, 2, 2, 2],
                    [3, 3, 3, -1],
                    [3, 3, -1, -1]])
    majority, mixed = cell_majority(ref, 2)
    assert majority.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3], [3, 3, 3, 3]]
    assert mixed.tolist() == [[True, True, False, False]] * 2 + [[False] * 4] * 2
    # a grid starting one pixel before the array: cells are rows/cols {0}, {1, 2}, {3}
    majority, _ = cell_majority(ref, 2, offset=(1, 1))
    assert majority[1:3, 1:3].tolist() == [[2, 2], [2, 2]]  # 2, 2, 3, 3: a tie goes to the smaller class
    assert majority[0, 0] == 1 and majority[3, 3] == -1


def test_detail_counts_of_a_blocky_map_against_a_sharp_reference():
    """A 1 m reference with a diagonal edge inside 2-pixel cells; a map of the cells' majority (what
    a perfect coarse map draws) and the reference itself."""
    ref = np.zeros((8, 8), np.int64)
    ref[np.triu_indices(8, 1)] = 1  # above the diagonal: class 1
    majority, mixed = cell_majority(ref, 2)
    scored = np.ones(ref.shape, bool)
    perfect = DetailCounts()
    perfect.add(ref, ref, scored, 0, majority, mixed)
    s = perfect.summary()
    assert s["boundary_f1"] == 1.0 and s["subcell_oa"] == 1.0 and s["mixed_cell_oa"] == 1.0
    blocky = DetailCounts()
    blocky.add(ref, majority, scored, 0, majority, mixed)
    b = blocky.summary()
    assert b["subcell_oa"] == 0.0  # no coarse map is right where the reference is unlike its cell
    sub = int(((ref != majority)).sum())
    assert b["pixels"]["subcell"] == sub == 4  # the 4 diagonal cells each hold one pixel of class 1 ...
    assert b["mixed_cell_oa"] == pytest.approx((16 - 4) / 16)  # ... in 4 mixed cells of 4 pixels
    # with a tolerance of 1 px every blocky edge pixel is next to a reference edge pixel
    loose = DetailCounts()
    loose.add(ref, majority, scored, 1.0, majority, mixed)
    assert loose.summary()["boundary_precision"] == 1.0
    assert b["boundary_f1"] < loose.summary()["boundary_f1"]


def test_only_scored_pixels_count_but_edges_next_to_them_do():
    ref = np.array([[0, 0, 1, 1]] * 2)
    pred = np.array([[0, 1, 1, 1]] * 2)  # the edge one pixel to the left
    majority, mixed = cell_majority(ref, 2)
    scored = np.zeros(ref.shape, bool)
    scored[:, 0] = True  # only the first column is scored: its pixels are predicted edges
    d = DetailCounts()
    d.add(ref, pred, scored, 1.0, majority, mixed)
    s = d.summary()
    assert s["pixels"]["predicted_edges"] == 2 and s["pixels"]["reference_edges"] == 0
    assert s["boundary_precision"] == 1.0 and s["boundary_recall"] is None and s["boundary_f1"] is None


def _raster(path, data, origin=(500000.0, 40.0), res=1.0, nodata=0, dtype="uint8"):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=dtype,
                       crs="EPSG:32650", transform=from_origin(*origin, res, res), nodata=nodata) as dst:
        dst.write(data.astype(dtype), 1)
    return str(path)


def test_score_pixels_reports_detail_the_label_and_the_perfect_coarse_map(tmp_path):
    """40 x 40 m at 1 m: grass (4) with a 6 x 6 m building (5) straddling four 10 m cells and a
    road (11) 3 m wide across the middle of a cell row; the label is the 10 m majority with one
    cell unlabelled (255); the map is the reference itself but for a one-pixel-wide strip."""
    from l2h.evaluation.score_pixels import score_pixels

    ref = np.full((40, 40), 4)
    ref[7:13, 7:13] = 5
    ref[24:27, :] = 11
    ref_path = _raster(tmp_path / "ref.tif", ref)
    label = np.full((4, 4), 4)
    label[3, 3] = 255  # the road covers 3 of each cell's 10 rows: its cells' majority is grass
    label_path = _raster(tmp_path / "label.tif", label, res=10.0)
    mapped = ref.copy()
    mapped[:, 39] = 3  # a wrong strip at the east edge
    map_path = _raster(tmp_path / "map.tif", mapped)
    network = np.full((40, 40), 4)  # sees nothing
    net_path = _raster(tmp_path / "net.tif", network)
    legend = Legend.from_config(ELEVEN["legend"], ELEVEN["mapping"])
    out = score_pixels({"map": map_path, "network": net_path}, [ref_path], legend,
                       labels={"consensus_label": [label_path]}, cell_size=10, tolerance=2)
    json.dumps(out)  # serialisable
    assert out["n_pixels"] == 1600
    perfect = out["sources"]["perfect_10m"]
    # the building is 9 pixels of each of 4 cells: every cell's majority is grass, so the perfect
    # 10 m map has no building and no road, and is wrong on exactly the sub-cell pixels
    assert perfect["iou"]["5"] == 0.0 and perfect["iou"]["11"] == 0.0 and perfect["subcell_oa"] == 0.0
    assert perfect["oa"] == pytest.approx((1600 - 36 - 120) / 1600)
    assert perfect["pixels"]["subcell"] == 36 + 120
    m = out["sources"]["map"]
    assert m["oa"] == pytest.approx((1600 - 40) / 1600) and m["iou"]["5"] == 1.0
    assert m["subcell_oa"] == pytest.approx(153 / 156)  # the strip crosses the road's 3 sub-cell pixels
    # the strip draws a false edge (columns 38 and 39), far from most reference edges; those are all found
    assert m["boundary_recall"] == 1.0 and 0.5 < m["boundary_precision"] < 1.0
    network = out["sources"]["network"]
    assert network["pixels"]["predicted_edges"] == 0 and network["boundary_precision"] is None
    assert network["boundary_recall"] == 0.0 and network["boundary_f1"] == 0.0
    wl = out["where_labelled"]
    assert wl["n_pixels"] == 1500  # the unlabelled cell is out
    assert wl["sources"]["consensus_label"]["oa"] == pytest.approx((1500 - 36 - 120) / 1500)
    assert set(wl["sources"]) == {"map", "network", "consensus_label", "perfect_10m"}
