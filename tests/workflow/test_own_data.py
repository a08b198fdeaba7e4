"""examples/own-data.yaml on real data: NAIP imagery + NLCD 2011 (one custom product, no OSM), scored
against reference points drawn from the Chesapeake 1 m labels, which never reach training."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
import yaml
from helpers import ROOT, SHARED, shell_commands

from l2h.cli import main

# the example's imagery and NLCD are in the repository (examples/chesapeake_wv/); the Chesapeake 1 m labels
# that score it are not: they are the project's test fixtures, beside the checkout on its machines only
LABELS = SHARED / "data" / "real" / "chesapeake_wv_train"
EXAMPLE = ROOT / "examples" / "own-data.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
pytestmark = pytest.mark.workflow
needs_labels = pytest.mark.skipif(not LABELS.is_dir(), reason=f"the Chesapeake 1 m labels are not at {LABELS} (the "
                                                              f"project's fixtures, not in the repository)")
# The example as it is, with fewer bootstrap resamples.
FAST = {"infer": {"threads": 1}, "evaluation": {"points": {"bootstrap": 20}}}

def snakemake(workdir: Path, *args: str, configfiles=(EXAMPLE,)) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-d", str(workdir), "--cores", "2", *args, "--configfile", *map(str, configfiles)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> str:
    """The example's whole DAG, every shell command printed."""
    result = snakemake(tmp_path_factory.mktemp("dry"), "-n", "-p", "--forceall")
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_1m_labels_never_reach_training(dry_run, tmp_path):
    model = snakemake(tmp_path, "-n", "-p", "--forceall", "results/model/l2hnet.pt")
    assert model.returncode == 0, model.stderr
    commands = shell_commands(model.stdout + model.stderr)
    assert any(c.startswith("l2h --log logs/train.log train") for c in commands)
    everything = " ".join(commands)  # every job the model depends on, the training job included
    assert "train0_naip.tif" in everything and "train0_nlcd.tif" in everything
    for reference in ("_lc.tif", "points.csv", "strata.csv", "evaluate"):
        assert reference not in everything
    evaluate = [c for c in shell_commands(dry_run) if " evaluate " in c]  # the points do reach the evaluation
    assert len(evaluate) == 1 and "chesapeake_wv/points.csv" in evaluate[0]


def test_a_complete_config_replaces_the_demo_defaults(dry_run, tmp_path):
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry_run, flags=re.M))
    assert jobs["fetch_product"] == "1" and "roads" not in jobs and "survey" not in jobs
    assert jobs["infer"] == "17" and jobs["imagery_vrt"] == "1"
    assert "esa_worldcover" not in dry_run and "resources/demo" not in dry_run
    partial = tmp_path / "partial.yaml"  # a second, partial file still merges over the example
    partial.write_text(yaml.safe_dump({"grid": {"block_size": 256}}))
    merged = snakemake(tmp_path, "-n", "--forceall", configfiles=(EXAMPLE, partial))
    assert re.search(r"^infer\s+30$", merged.stdout, flags=re.M), merged.stdout[-2000:]


@needs_labels
def test_committed_points_are_the_documented_draw(tmp_path):
    out, areas = tmp_path / "points.csv", tmp_path / "strata.csv"
    labels = sorted(str(p) for p in LABELS.glob("train*_lc.tif"))
    assert main(["reference-points", "--raster", *labels, "--n", "2000", "--stratified", "--min-per-class", "100",
                 "--recode", "5=4", "6=4", "--seed", "0", "--out", str(out), "--strata-areas", str(areas)]) == 0
    assert out.read_text() == (ROOT / "examples/chesapeake_wv/points.csv").read_text()
    assert areas.read_text() == (ROOT / "examples/chesapeake_wv/strata.csv").read_text()
    rows = list(csv.DictReader(out.open()))
    for path in labels[:2]:  # spot check: each point's 1 m label, recoded, is its class
        with rasterio.open(path) as src:
            inside = [r for r in rows if src.bounds.left < float(r["x"]) < src.bounds.right
                      and src.bounds.bottom < float(r["y"]) < src.bounds.top]
            values = [v[0] for v in src.sample([(float(r["x"]), float(r["y"])) for r in inside])]
        assert inside and all({5: 4, 6: 4}.get(int(v), int(v)) == int(r["class"]) for v, r in zip(values, inside))


# examples/chesapeake_wv/folds.geojson: patches 0, 1, 2, 5 (west) and 3, 4, 6, 7 (east)
FOLDS = ROOT / "examples" / "chesapeake_wv" / "folds.geojson"
NLCD_4_CLASSES = {11: 1, 41: 2, 42: 2, 43: 2, 52: 2, 90: 2, 95: 2, 21: 3, 71: 3, 81: 3, 82: 3, 22: 4, 23: 4, 24: 4, 31: 4}
# The example's settings trained on the west fold, scored on the east fold, three seeds each in
# bench/results/cv.json and detail_own_data_example.json: map OA 0.765-0.860, mIoU(tree, low veg.)
# 0.514-0.709 (the worst both from seed 1 in cv.json); NLCD 0.764 / 0.527 on the same pixels. Floors
# 0.015 below the worst seed on each (another CPU trains to slightly different weights). Not every
# seed beats NLCD here (the worst is level on OA, behind on mIoU: docs/own-data.md), so the test
# guards the floors and prints NLCD beside them.
FLOOR_OA, FLOOR_MIOU = 0.750, 0.499


@needs_labels
def test_the_map_holds_its_held_out_score_on_land_it_was_not_trained_on(tmp_path):
    """One fold of bench/cv.py: trained on the west patches only, every east pixel scored against the
    Chesapeake 1 m labels beside NLCD on the same pixels."""
    fold = tmp_path / "fold.yaml"
    fold.write_text(yaml.safe_dump({**FAST, "regions": {"file": str(FOLDS)}, "sampling": {"train_regions": ["west"]}}))
    result = snakemake(tmp_path, "results/maps/national.tif", configfiles=(EXAMPLE, fold))
    assert result.returncode == 0, result.stderr[-3000:]
    example = yaml.safe_load(EXAMPLE.read_text())
    out = tmp_path / "scores.json"
    assert main(["score-pixels", "--map", str(tmp_path / "results/maps/national.tif"),
                 "--reference", *sorted(str(p) for p in LABELS.glob("train*_lc.tif")),
                 "--settings", json.dumps(example["evaluation"]["points"]), "--recode", "5=4", "6=4",
                 "--product", str(tmp_path / "resources/raw/nlcd/manifest.json"),
                 "--crosswalk", "nlcd=" + json.dumps(NLCD_4_CLASSES),
                 "--region", str(tmp_path / "resources/regions/east.gpkg"),
                 "--blocks", str(tmp_path / "resources/blocks.csv"),
                 "--training-blocks", str(tmp_path / "resources/training_blocks.csv"), "--crs", "EPSG:26917",
                 "--out", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["n_pixels"] == 4 * 256 * 256 and scores["excluded_pixels"] == 0  # the 4 east patches, all held out
    sources = scores["sources"]
    miou = {k: (v["iou"]["2"] + v["iou"]["3"]) / 2 for k, v in sources.items()}
    print(f"held-out east fold: map OA {sources['map']['oa']:.3f} mIoU(tree, low veg.) {miou['map']:.3f}; "
          f"NLCD OA {sources['nlcd']['oa']:.3f} mIoU {miou['nlcd']:.3f}")
    assert sources["map"]["oa"] > FLOOR_OA and miou["map"] > FLOOR_MIOU, (sources["map"], miou)
    # NLCD read with the crosswalk on the same pixels: the bench's value, whatever the map does
    assert sources["nlcd"]["oa"] == pytest.approx(0.763939, abs=1e-6) and miou["nlcd"] == pytest.approx(0.5266, abs=1e-4)
