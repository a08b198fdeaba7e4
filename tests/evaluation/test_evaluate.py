"""Accuracy metrics, the stratified estimator, reference points and product sampling, and the survey
comparison (l2h.evaluation.metrics, l2h.evaluation.evaluate, l2h.evaluation.survey)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin

from l2h.core.errors import InputError
from l2h.core.io import write_class_raster
from l2h.evaluation.evaluate import NODATA, OUTSIDE, Legend, read_points, sample_map, sample_product, score_source
from l2h.evaluation.metrics import Z95, bootstrap_scores, confusion_matrix, scores, stratified_estimates
from l2h.evaluation.survey import compare_survey, weighted_error

OUR_KEYS = ("tree", "shrub", "crop", "grass", "building", "bare", "water", "wetland", "snow", "moss", "road")
IDENTITY = {"legend": {i: k for i, k in enumerate(OUR_KEYS, start=1)},
            "mapping": {k: i for i, k in enumerate(OUR_KEYS, start=1)}}
# a 4-class reference (Chesapeake-like): 1 water, 2 tree, 3 low vegetation, 4 barren/impervious
FOUR = {"legend": {1: "water", 2: "tree canopy", 3: "low vegetation", 4: "barren / impervious"},
        "mapping": {"tree": 2, "shrub": 3, "crop": 3, "grass": 3, "building": 4, "bare": 4, "water": 1,
                    "wetland": 3, "snow": 4, "moss": 3, "road": 4}}


# --------------------------------------------------------------------------- metrics
def test_scores_hand_computed():
    cm = confusion_matrix([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0, 1, 1, 1, 1], 3)
    assert cm.tolist() == [[3, 1, 0], [2, 4, 0], [0, 0, 0]]
    s = scores(cm)
    assert s["oa"] == pytest.approx(0.7)
    assert s["kappa"] == pytest.approx((0.7 - (4 * 5 + 6 * 5) / 100) / (1 - 0.5))  # 0.4
    assert s["producers"][:2] == pytest.approx([3 / 4, 4 / 6])
    assert s["users"][:2] == pytest.approx([3 / 5, 4 / 5])
    assert s["f1"][0] == pytest.approx(2 * 3 / (4 + 5))
    assert s["iou"][:2] == pytest.approx([3 / 6, 4 / 7])
    assert np.isnan(s["iou"][2])  # class 2 is neither in the reference nor predicted
    assert s["miou"] == pytest.approx((3 / 6 + 4 / 7) / 2)  # over classes present in the reference


def test_miou_counts_a_present_class_that_is_never_right_as_zero():
    s = scores(confusion_matrix([0, 0, 1], [0, 0, 0], 2))
    assert s["miou"] == pytest.approx((2 / 3 + 0) / 2)


def test_scores_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 5, 400)
    pred = np.where(rng.random(400) < 0.7, ref, rng.integers(0, 5, 400))
    cm = confusion_matrix(ref, pred, 5)
    s = scores(cm)
    labels = list(range(5))
    assert cm.tolist() == sk.confusion_matrix(ref, pred, labels=labels).tolist()
    assert s["oa"] == pytest.approx(sk.accuracy_score(ref, pred))
    assert s["kappa"] == pytest.approx(sk.cohen_kappa_score(ref, pred))
    assert s["producers"] == pytest.approx(sk.recall_score(ref, pred, labels=labels, average=None))
    assert s["users"] == pytest.approx(sk.precision_score(ref, pred, labels=labels, average=None))
    assert s["f1"] == pytest.approx(sk.f1_score(ref, pred, labels=labels, average=None))
    assert s["iou"] == pytest.approx(sk.jaccard_score(ref, pred, labels=labels, average=None))
    assert s["miou"] == pytest.approx(sk.jaccard_score(ref, pred, average="macro"))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 3, 300)
    pred = np.where(rng.random(300) < 0.8, ref, (ref + 1) % 3)
    a = bootstrap_scores(ref, pred, 3, 300, seed=7)
    b = bootstrap_scores(ref, pred, 3, 300, seed=7)
    c = bootstrap_scores(ref, pred, 3, 300, seed=8)
    assert np.array_equal(a["oa"], b["oa"]) and not np.array_equal(a["oa"], c["oa"])
    oa = scores(confusion_matrix(ref, pred, 3))["oa"]
    lo, hi = a["oa"]
    assert lo < oa < hi and 0.03 < hi - lo < 0.15  # about ±1.96·sqrt(.8·.2/300) = ±0.045
    assert a["iou"].shape == (3, 2)


def test_stratified_bootstrap_keeps_the_strata_sizes():
    """Resampling within strata: with strata = reference classes, every resample has the same class counts,
    so the producer's accuracy of a class whose points are all right has no spread at all."""
    ref = np.array([0] * 50 + [1] * 10)
    pred = np.array([0] * 50 + [1] * 5 + [0] * 5)
    ci = bootstrap_scores(ref, pred, 2, 200, seed=0, strata=ref)
    assert ci["producers"][0].tolist() == [1.0, 1.0]
    free = bootstrap_scores(ref, pred, 2, 200, seed=0)
    assert free["users"][0][0] < ci["users"][0][1]


def _olofsson_sample():
    """Olofsson et al. (2014), Remote Sens. Environ. 148, Table 8: sample counts, strata = map classes
    (deforestation, forest gain, stable forest, stable non-forest); mapped areas in 30 m pixels."""
    rows = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]
    ref, pred = [], []
    for i, row in enumerate(rows):
        for j, count in enumerate(row):
            ref += [j] * count
            pred += [i] * count
    areas_ha = {i: px * 0.09 for i, px in enumerate([200_000, 150_000, 3_200_000, 6_450_000])}
    return np.array(ref), np.array(pred), areas_ha


def test_stratified_estimates_reproduce_olofsson_2014():
    ref, pred, areas = _olofsson_sample()
    est = stratified_estimates(ref, pred, 4, pred, areas)
    # the paper's section 5: accuracies (± 95 % half-widths), rounded to two decimals
    oa, se = est["oa"]
    assert (round(oa, 2), round(Z95 * se, 2)) == (0.95, 0.02)
    assert np.round(est["users"][:, 0], 2).tolist() == [0.88, 0.73, 0.93, 0.96]
    assert np.round(Z95 * est["users"][:, 1], 2).tolist() == [0.07, 0.10, 0.04, 0.02]
    assert np.round(est["producers"][:2, 0], 2).tolist() == [0.75, 0.85]
    assert np.round(Z95 * est["producers"][:2, 1], 2).tolist() == [0.21, 0.25]
    # area of deforestation in ha: 21,158 ± 6,158 (Olofsson et al. 2014, eq. 9-11)
    area, half = est["area_share"][0, 0] * est["area"], Z95 * est["area_share"][0, 1] * est["area"]
    assert round(area) == 21158 and abs(half - 6158) < 1.5
    # hand-computed: p̂_.1 = Σ_i W_i n_i1/n_i. and its variance Σ_i W_i² p_i1(1 - p_i1)/(n_i. - 1)
    w = np.array([0.02, 0.015, 0.32, 0.645])
    p = np.array([66 / 75, 0 / 75, 1 / 165, 2 / 325])
    n = np.array([75, 75, 165, 325])
    assert est["area_share"][0, 0] == pytest.approx((w * p).sum())
    assert est["area_share"][0, 1] == pytest.approx(np.sqrt((w**2 * p * (1 - p) / (n - 1)).sum()))


def test_stratified_estimates_with_strata_that_are_not_map_classes():
    """Strata = reference classes (the demo's design): OA = Σ_h W_h · (share right in h)."""
    ref = np.array([0] * 4 + [1] * 4)
    pred = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    est = stratified_estimates(ref, pred, 2, ref, {0: 90.0, 1: 10.0})
    assert est["oa"][0] == pytest.approx(0.9 * 3 / 4 + 0.1 * 2 / 4)
    assert est["area_share"][:, 0] == pytest.approx([0.9, 0.1])  # exact: the strata are the classes
    assert est["area_share"][:, 1] == pytest.approx([0, 0])
    # user's accuracy of class 0: right 0s / predicted 0s, each weighted by W_h / n_h
    assert est["users"][0, 0] == pytest.approx((0.9 * 3 / 4) / (0.9 * 3 / 4 + 0.1 * 2 / 4))


# --------------------------------------------------------------------------- points, map, products
def _write_points(path, rows, header="x,y,crs,class"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def _cfg(path, legend=IDENTITY, **extra):
    return {"file": str(path), "x": "x", "y": "y", "crs_column": "crs", "class_column": "class", **legend, **extra}


def test_a_reference_class_without_mapping_names_value_and_file(tmp_path):
    pts = _write_points(tmp_path / "ref.csv", [(500010, 10, "EPSG:32650", 2), (500020, 10, "EPSG:32650", 5)])
    legend = Legend.from_config({**FOUR["legend"], 5: "cloud"}, FOUR["mapping"])
    with pytest.raises(InputError, match=r"ref.csv: class value\(s\) '5' \(1 points\) in column 'class' are not "
                                         r"covered by config evaluation.points.mapping"):
        read_points(_cfg(pts, FOUR), legend)


def _tiny_map(path, nodata_cols=2):
    """A 10 x 10 m map at 1 m in EPSG:32650, origin (500000, 10): left columns nodata, else classes by row."""
    data = np.repeat(np.array([1, 1, 3, 3, 4, 4, 5, 5, 7, 7], np.uint8)[:, None], 10, axis=1)
    data[:, :nodata_cols] = 0
    write_class_raster(path, data, "EPSG:32650", from_origin(500000, 10, 1, 1))
    return path


def test_points_outside_and_on_nodata_are_counted(tmp_path):
    _tiny_map(tmp_path / "map.tif")
    rows = [(500005.5, 9.5, "EPSG:32650", 1),      # row 0: tree, right
            (500005.5, 5.5, "EPSG:32650", 3),      # row 4: grass, wrong (crop in the reference)
            (500000.5, 9.5, "EPSG:32650", 1),      # nodata column
            (500050.0, 5.0, "EPSG:32650", 1)]      # off the map
    legend = Legend.from_config(IDENTITY["legend"], IDENTITY["mapping"])
    points = read_points(_cfg(_write_points(tmp_path / "p.csv", rows)), legend)
    pred = sample_map(tmp_path / "map.tif", points, legend)
    assert pred.tolist() == [0, 3, NODATA, OUTSIDE]  # reference indices: tree 0, grass 3
    result = score_source("map", pred, points, legend, 0, 0, None)
    assert result.status == {"scored": 2, "outside": 1, "nodata": 1, "no_information": 0, "unknown_code": 0}
    assert result.n == 2 and result.scores["oa"] == pytest.approx(0.5)


def test_geopackage_points_in_another_crs_and_a_four_class_legend(tmp_path):
    import geopandas as gpd
    from pyproj import Transformer

    _tiny_map(tmp_path / "map.tif")
    lon, lat = Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True).transform(
        [500005.5, 500005.5, 500005.5], [9.5, 3.5, 1.5])
    frame = gpd.GeoDataFrame({"lc": ["2", "4", "1"]}, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    frame.to_file(tmp_path / "ref.gpkg", engine="pyogrio")
    legend = Legend.from_config(FOUR["legend"], FOUR["mapping"])
    points = read_points({"file": str(tmp_path / "ref.gpkg"), "class_column": "lc", **FOUR}, legend)
    pred = sample_map(tmp_path / "map.tif", points, legend)
    # rows 0 (tree -> 2), 6 (building -> 4), 8 (water -> 1): indices 1, 3, 0
    assert pred.tolist() == [1, 3, 0] and (pred == points.ref).all()


def _product(tmp_path, codes: dict, data: np.ndarray, nodata=(0,)):
    """A custom product: one EPSG:32650 10 m tile and its manifest (the format l2h.inputs.fetch_product writes)."""
    tile = tmp_path / "tile.tif"
    with rasterio.open(tile, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint8", crs="EPSG:32650", transform=from_origin(500000, 40, 10, 10)) as dst:
        dst.write(data, 1)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({
        "id": "prod", "preset": "custom", "nodata": list(nodata),
        "codes": {str(c): {"name": n, "classes": cls} for c, (n, cls) in codes.items()},
        "files": [{"path": str(tile), "label": "prod file", "refetchable": False, "expected_crs": None,
                   "expected_resolution": None}], "missing": []}))
    return manifest


def test_set_valued_product_codes_are_scored_leniently(tmp_path):
    # codes: 11 rangeland = {shrub 2, grass 4}; 10 clouds = {}; 1 water; 200 not in the table; 0 nodata
    manifest = _product(tmp_path, {11: ("rangeland", [2, 4]), 10: ("clouds", []), 1: ("water", [7])},
                        np.array([[11, 11, 10, 0], [1, 200, 1, 1]], np.uint8))
    rows = [(500005, 35, "EPSG:32650", 4),   # rangeland, reference grass: right, resolves to grass
            (500015, 35, "EPSG:32650", 1),   # rangeland, reference tree: wrong, resolves to shrub (lowest)
            (500025, 35, "EPSG:32650", 7),   # clouds: no information
            (500035, 35, "EPSG:32650", 7),   # nodata
            (500005, 25, "EPSG:32650", 7),   # water: right
            (500015, 25, "EPSG:32650", 7),   # code 200: unknown
            (500005, 5, "EPSG:32650", 7)]    # below the tile: outside
    legend = Legend.from_config(IDENTITY["legend"], IDENTITY["mapping"])
    points = read_points(_cfg(_write_points(tmp_path / "p.csv", rows)), legend)
    product_id, pred = sample_product(manifest, points, legend)
    assert product_id == "prod"
    assert pred.tolist() == [3, 1, -3, NODATA, 6, -4, OUTSIDE]
    result = score_source(product_id, pred, points, legend, 0, 0, None)
    assert result.status == {"scored": 3, "outside": 1, "nodata": 1, "no_information": 1, "unknown_code": 1}
    assert result.scores["oa"] == pytest.approx(2 / 3)


def test_points_in_training_blocks_are_scored_apart(tmp_path):
    from l2h.evaluation.evaluate import evaluate

    _tiny_map(tmp_path / "map.tif", nodata_cols=0)
    # rows 0-1 tree, 2-3 crop: two points right in the training block (x < 500005), one right and
    # one wrong outside it
    rows = [(500001.5, 9.5, "EPSG:32650", 1), (500002.5, 7.5, "EPSG:32650", 3),
            (500007.5, 9.5, "EPSG:32650", 1), (500007.5, 7.5, "EPSG:32650", 4)]
    cfg = {**_cfg(_write_points(tmp_path / "p.csv", rows)), "bootstrap": 20}
    doc = evaluate(cfg, tmp_path / "map.tif", [], tmp_path / "out",
                   training_blocks=([(500000.0, 0.0, 500005.0, 10.0)], "EPSG:32650"))
    assert doc["held_out"]["n_points"] == 2 and doc["held_out"]["map"]["oa"] == pytest.approx(0.5)
    assert doc["in_training_blocks"]["n_points"] == 2 and doc["in_training_blocks"]["map"]["oa"] == 1.0
    assert doc["map"]["oa"] == pytest.approx(0.75)
    assert list(doc)[:3] == ["run", "reference", "held_out"]  # held out first
    saved = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert saved["held_out"] == doc["held_out"]


def test_pixel_scores_against_a_reference_raster(tmp_path):
    from l2h.core.classes import ProductCode
    from l2h.evaluation.score_pixels import score_pixels
    from l2h.inputs.fetch_product import ProductFiles

    _tiny_map(tmp_path / "map.tif", nodata_cols=0)  # rows: tree, tree, crop, crop, grass, grass, ...
    # the reference in a 4-class legend on a 0.5 m grid: low vegetation (3) everywhere but the top
    # two rows (tree, 2); its code 6 (roads) recoded to impervious (4)
    ref = np.full((20, 20), 3, np.uint8)
    ref[:4] = 2
    ref[10:12, :] = 6
    with rasterio.open(tmp_path / "ref.tif", "w", driver="GTiff", width=20, height=20, count=1, dtype="uint8",
                       crs="EPSG:32650", transform=from_origin(500000, 10, 0.5, 0.5), nodata=0) as dst:
        dst.write(ref, 1)
    legend = Legend.from_config(FOUR["legend"], FOUR["mapping"])
    # a product saying "developed open space" ({grass, tree}) everywhere: 10 m tiles
    tile = tmp_path / "p.tif"
    with rasterio.open(tile, "w", driver="GTiff", width=2, height=2, count=1, dtype="uint8", crs="EPSG:32650",
                       transform=from_origin(499990, 20, 10, 10)) as dst:
        dst.write(np.full((2, 2), 21, np.uint8), 1)
    product = ProductFiles("nlcd", {21: ProductCode(21, "open space", frozenset({1, 4}))}, [str(tile)])
    out = score_pixels(str(tmp_path / "map.tif"), [str(tmp_path / "ref.tif")], legend, {6: 4}, [product])
    assert out["n_pixels"] == 400
    m = out["sources"]["map"]
    # the map (1 m rows): 0-1 tree (right), 2-3 crop (low veg., right), 4-5 grass (low veg.: right but
    # on the recoded road, the reference's 0.5 m rows 10-11), 6-7 building and 8-9 water (wrong)
    assert m["oa"] == pytest.approx((80 + 80 + 40) / 400)
    assert m["iou"]["4"] == 0.0 and m["iou"]["2"] == 1.0
    # lenient: {grass, tree} is right wherever the reference is tree or low vegetation
    assert out["sources"]["nlcd"]["oa"] == pytest.approx((400 - 40) / 400)
    crosswalked = score_pixels(str(tmp_path / "map.tif"), [str(tmp_path / "ref.tif")], legend, {6: 4}, [product],
                               crosswalks={"nlcd": {21: 3}})
    assert crosswalked["sources"]["nlcd"]["oa"] == pytest.approx(280 / 400)
    assert crosswalked["sources"]["nlcd"]["iou"]["2"] == 0.0
    # only outside a training block (the map's west half)
    held = score_pixels(str(tmp_path / "map.tif"), [str(tmp_path / "ref.tif")], legend, {6: 4},
                        exclude=([(500000.0, 0.0, 500005.0, 10.0)], "EPSG:32650"))
    assert held["n_pixels"] == 200 and held["excluded_pixels"] == 200
    assert held["sources"]["map"]["oa"] == pytest.approx(m["oa"])  # rows are uniform across columns


# --------------------------------------------------------------------------- survey
def test_weighted_error_hand_computed():
    assert weighted_error(np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.3, 0.1])) == pytest.approx(
        0.6 * 0.1 + 0.3 * 0 + 0.1 * 0.1)


SURVEY_MAPPING = {"tree": "forest", "shrub": "forest", "crop": "farm", "grass": "other", "building": "built",
                  "bare": "other", "water": "other", "wetland": "other", "snow": "other", "moss": "other",
                  "road": "built"}


def _survey_inputs(tmp_path, rows):
    table = tmp_path / "survey.csv"
    pd.DataFrame(rows, columns=["prov", "cls", "km2"]).to_csv(table, index=False)
    cfg = {"table": str(table), "region_column": "prov", "class_column": "cls", "area_column": "km2",
           "mapping": SURVEY_MAPPING}
    a = np.zeros((10, 10), np.uint8)
    a[:, :6], a[:, 6:] = 1, 3  # 60 % forest, 40 % farm
    b = np.zeros((10, 10), np.uint8)
    b[:5], b[5:8] = 5, 11  # 80 % built over 80 px (20 px nodata)
    b[8:] = 0
    maps = {}
    for slug, data in (("north", a), ("cote_sud", b)):
        maps[slug] = str(write_class_raster(tmp_path / f"{slug}.tif", data, "EPSG:32650", from_origin(0, 10, 1, 1)))
    return cfg, maps


def test_survey_shares_and_weighted_error(tmp_path):
    cfg, maps = _survey_inputs(tmp_path, [("North", "forest", 5.0), ("North", "farm", 5.0),
                                          ("Côte Sud", "built", 1.0), ("Elsewhere", "farm", 9.0)])
    errors = compare_survey(cfg, maps, {"north": "North", "cote_sud": "Côte Sud"}, tmp_path / "out")
    e = errors.set_index("region")["weighted_error"]
    assert e["north"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.1)
    assert e["cote_sud"] == pytest.approx(0.0)
    # national: survey 5 forest, 5 farm, 1 built; map 60 forest, 40 farm, 80 built (pixels of 1 m²)
    s = np.array([5, 5, 1]) / 11
    m = np.array([60, 40, 80]) / 180
    assert e["national"] == pytest.approx((s * np.abs(m - s)).sum())
    shares = pd.read_csv(tmp_path / "out" / "survey_shares.csv")
    row = shares[(shares["region"] == "north") & (shares["class"] == "forest")].iloc[0]
    assert row["map_share"] == pytest.approx(0.6) and row["survey_share"] == pytest.approx(0.5)
    assert (tmp_path / "out" / "survey.png").stat().st_size > 10_000


def test_survey_class_without_mapping_is_an_error(tmp_path):
    cfg, maps = _survey_inputs(tmp_path, [("North", "orchard", 5.0), ("Côte Sud", "built", 1.0)])
    with pytest.raises(InputError, match=r"survey.csv: class\(es\) 'orchard' are not covered by config "
                                         r"evaluation.survey.mapping"):
        compare_survey(cfg, maps, {"north": "North", "cote_sud": "Côte Sud"}, tmp_path / "out")


@pytest.mark.parametrize("split", ["all_inside", "none_inside", "mixed"])
def test_every_split_of_the_points_is_scored_and_reported(tmp_path, split):
    """Reference points all inside the training blocks, none inside (a held-out reference set, the
    honest way to assess a map) or some: `l2h evaluate` writes accuracy.json, its tables and figures;
    a part without points says so (0 points, null scores). A region without points is listed with none."""
    import geopandas as gpd
    from shapely.geometry import box

    from l2h.cli import main

    _tiny_map(tmp_path / "map.tif", nodata_cols=0)
    gpd.GeoDataFrame({"name": ["West", "East", "Far"]},
                     geometry=[box(500000, 0, 500005, 10), box(500005, 0, 500010, 10), box(600000, 0, 600010, 10)],
                     crs="EPSG:32650").to_file(tmp_path / "regions.gpkg")
    rows = [(500001.5, 9.5, "EPSG:32650", 1), (500002.5, 7.5, "EPSG:32650", 3),  # West
            (500007.5, 9.5, "EPSG:32650", 1), (500007.5, 7.5, "EPSG:32650", 4)]  # East
    blocks = {"all_inside": [(500000, 0, 500010, 10)], "none_inside": [(500020, 0, 500030, 10)],
              "mixed": [(500000, 0, 500005, 10)]}[split]
    (tmp_path / "blocks.csv").write_text("block_id,region,xmin,ymin,xmax,ymax\n" + "".join(
        f"b{i},west,{b[0]},{b[1]},{b[2]},{b[3]}\n" for i, b in enumerate(blocks)))
    (tmp_path / "training.csv").write_text("block_id\n" + "".join(f"b{i}\n" for i in range(len(blocks))))
    cfg = {**_cfg(_write_points(tmp_path / "p.csv", rows)), "bootstrap": 20}
    out = tmp_path / "out"
    assert main(["evaluate", "--settings", json.dumps(cfg), "--map", str(tmp_path / "map.tif"),
                 "--regions", str(tmp_path / "regions.gpkg"), "--name-field", "name", "--blocks",
                 str(tmp_path / "blocks.csv"), "--training-blocks", str(tmp_path / "training.csv"),
                 "--crs", "EPSG:32650", "--out-dir", str(out)]) == 0
    doc = json.loads((out / "accuracy.json").read_text())
    inside = {"all_inside": 4, "none_inside": 0, "mixed": 2}[split]
    assert doc["in_training_blocks"]["n_points"] == inside and doc["held_out"]["n_points"] == 4 - inside
    # the map is right at both West points (rows 0 and 2: classes 1, 3) and at East's row 0, wrong at East's
    # row 2 (3, the reference 4); the "mixed" block holds the West points: in it 2 of 2, outside 1 of 2
    oa = {"all_inside": {"in_training_blocks": 0.75, "held_out": None},
          "none_inside": {"in_training_blocks": None, "held_out": 0.75},
          "mixed": {"in_training_blocks": 1.0, "held_out": 0.5}}[split]
    for part in ("held_out", "in_training_blocks"):
        assert doc[part]["map"]["oa"] == oa[part], part  # quarters: exact in binary and at 6 decimals
        assert doc[part]["map"]["n_points"] == doc[part]["n_points"]
    assert doc["map"]["oa"] == pytest.approx(0.75)
    for name in ("confusion.png", "region_oa.png", "sources.png", "legend.png", "class_metrics.csv"):
        assert (out / name).stat().st_size > 0
    by_region = {tuple(r.split(",")[1:3]) for r in (out / "region_oa.csv").read_text().splitlines()[1:]
                 if r.startswith("map,")}
    assert ("far", "0") in by_region and ("west", "2") in by_region  # the region without points is listed


def test_classes_the_model_cannot_predict_are_named_beside_the_scores(tmp_path):
    from l2h.evaluation.evaluate import evaluate

    _tiny_map(tmp_path / "map.tif", nodata_cols=0)
    rows = [(500001.5, 9.5, "EPSG:32650", 2), (500001.5, 3.5, "EPSG:32650", 4)]  # tree right; impervious (map: building)
    cfg = {**_cfg(_write_points(tmp_path / "p.csv", rows), FOUR), "bootstrap": 10}
    doc = evaluate(cfg, tmp_path / "map.tif", [], tmp_path / "out", unpredictable=[5, 6, 9, 11])
    assert doc["classes_the_model_cannot_predict"][0] == {"code": 5, "class": "building / built-up",
                                                           "reference_class": "4"}
    assert [c["code"] for c in doc["classes_the_model_cannot_predict"]] == [5, 6, 9, 11]
    table = (tmp_path / "out" / "class_metrics.csv").read_text().splitlines()
    assert table[0].endswith(",model_can_predict")
    by_class = {r.split(",")[1]: r.split(",")[-1] for r in table[1:] if r.startswith("map,")}
    # the four classes of our map that go to impervious (4) are all off: the map can never say 4
    assert by_class == {"1": "yes", "2": "yes", "3": "yes", "4": "no"}
    evaluate(cfg, tmp_path / "map.tif", [], tmp_path / "out2", unpredictable=[5])
    assert {r.split(",")[1]: r.split(",")[-1] for r in (tmp_path / "out2" / "class_metrics.csv").read_text()
            .splitlines()[1:] if r.startswith("map,")}["4"] == "yes"  # roads and bare ground still give 4
